#include "config_publisher.h"

namespace l4mux {

ConfigPublisher::ConfigPublisher(uint32_t readers, uint32_t max_vips, uint32_t max_backends)
    : backends_(max_backends), vips_(max_vips), holder_(readers) {}

std::unique_ptr<const Snapshot> ConfigPublisher::build(const ConfigSpec& spec) {
  // The heavy part (Maglev tables) runs on copies of the registries, without the lock, so that
  // builds on several threads (a reload's, a health change's) do not wait for each other.
  std::unique_lock lock(mutex_);
  BackendRegistry backends = backends_;
  VipRegistry vips = vips_;
  MaglevTables previous = last_tables_;
  const size_t backends_before = backends.keys().size();
  const size_t vips_before = vips.keys().size();
  lock.unlock();

  std::unique_ptr<const Snapshot> snap = Snapshot::build(spec, backends, vips, &previous);

  lock.lock();
  const bool added = backends.keys().size() != backends_before || vips.keys().size() != vips_before;
  const bool others_added = backends_.keys().size() != backends_before || vips_.keys().size() != vips_before;
  if (added && others_added) {
    // Both handed out slots (registries only grow, so the copy was a prefix): build again on
    // the registries themselves, reusing the tables just built where the slots agree.
    const MaglevTables built = snap->maglev_tables();
    snap = Snapshot::build(spec, backends_, vips_, &built);
  } else if (added) {
    backends_ = std::move(backends);
    vips_ = std::move(vips);
  }
  // Otherwise every slot the snapshot uses is the registries' (a snapshot shorter than the
  // registries is safe: slots beyond it are no VIP's and no member's).
  last_tables_ = snap->maglev_tables();
  return snap;
}

void ConfigPublisher::publish(std::unique_ptr<const Snapshot> snapshot) {
  // The names and the swap under one lock: with publishes from several threads, the names are
  // those of the snapshot in place, and none reads a snapshot that another publish (which
  // frees what no reader holds) has already freed.
  std::lock_guard lock(mutex_);
  for (const Vip& vip : snapshot->vips()) vip_names_[vip.slot] = vip.name;
  holder_.publish(std::move(snapshot));
}

SlotNames ConfigPublisher::slot_names() const {
  std::lock_guard lock(mutex_);
  return SlotNames{vips_.keys(), vip_names_, backends_.keys()};
}

std::optional<uint32_t> ConfigPublisher::backend_slot(const IpAddr& addr) const {
  std::lock_guard lock(mutex_);
  return backends_.find(addr);
}

std::optional<IpAddr> ConfigPublisher::backend_address(uint32_t slot) const {
  std::lock_guard lock(mutex_);
  if (slot >= backends_.keys().size()) return std::nullopt;
  return backends_.keys()[slot];
}

uint32_t ConfigPublisher::vip_slot_count() const {
  std::lock_guard lock(mutex_);
  return static_cast<uint32_t>(vips_.keys().size());
}

uint32_t ConfigPublisher::backend_slot_count() const {
  std::lock_guard lock(mutex_);
  return static_cast<uint32_t>(backends_.keys().size());
}

}  // namespace l4mux
