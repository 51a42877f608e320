#include "config_publisher.h"

namespace l4mux {

ConfigPublisher::ConfigPublisher(uint32_t readers, uint32_t max_vips, uint32_t max_backends)
    : backends_(max_backends), vips_(max_vips), holder_(readers) {}

std::unique_ptr<const Snapshot> ConfigPublisher::build(const ConfigSpec& spec) {
  std::lock_guard lock(mutex_);
  std::unique_ptr<const Snapshot> snap = Snapshot::build(spec, backends_, vips_, &last_tables_);
  last_tables_ = snap->maglev_tables();
  return snap;
}

void ConfigPublisher::publish(std::unique_ptr<const Snapshot> snapshot) {
  const Snapshot& snap = *snapshot;
  holder_.publish(std::move(snapshot));
  std::lock_guard lock(mutex_);
  // `snap` stays alive: only this (control) thread frees snapshots, and not before the next
  // publish or reclaim.
  for (const Vip& vip : snap.vips()) vip_names_[vip.slot] = vip.name;
}

SlotNames ConfigPublisher::slot_names() const {
  std::lock_guard lock(mutex_);
  return SlotNames{vips_.keys(), vip_names_, backends_.keys()};
}

std::optional<uint32_t> ConfigPublisher::backend_slot(const IpAddr& addr) const {
  std::lock_guard lock(mutex_);
  return backends_.find(addr);
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
