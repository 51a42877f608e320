// The one place where a configuration becomes what the workers read: a ConfigSpec is built
// into an immutable Snapshot (slots assigned, Maglev tables filled) and published to the
// readers of one SnapshotHolder. Used by the Engine (N worker threads) and by the addon's
// Dataplane (one pipeline driven from the calling thread).
//
// The slot registries live here, because slots must stay the same for the life of the
// process (connection entries and counters store them). Building and publishing are separate
// steps so that a build can run on any thread (it touches no JavaScript and holds this
// object's lock only to copy and merge the registries) while publishing stays with the control
// thread; apply() does both.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "snapshot.h"
#include "snapshot_holder.h"

namespace l4mux {

// What the slots of the counter arrays stand for, as of the last publish.
struct SlotNames {
  std::vector<VipKey> vip_keys;                          // VIP slot -> key
  std::unordered_map<uint32_t, std::string> vip_names;   // VIP slot -> its last name
  std::vector<IpAddr> backend_keys;                      // backend slot -> address
};

class ConfigPublisher {
 public:
  // `readers`: how many threads read the snapshots (reader ids 0..readers-1 of holder()).
  ConfigPublisher(uint32_t readers, uint32_t max_vips, uint32_t max_backends);
  ConfigPublisher(const ConfigPublisher&) = delete;
  ConfigPublisher& operator=(const ConfigPublisher&) = delete;

  // Builds the snapshot for `spec` without publishing it, reusing the Maglev tables of the
  // last successful build for VIPs whose inputs are unchanged (see MaglevTable). Thread-safe,
  // and builds on several threads run side by side (each on a copy of the slot registries,
  // merged back under the lock; the published snapshots are not read). Throws
  // std::invalid_argument, nothing changed, when the spec cannot be honoured.
  std::unique_ptr<const Snapshot> build(const ConfigSpec& spec);
  // Swaps `snapshot` in for the readers and remembers its VIP names. Thread-safe: of publishes
  // from several threads, the last one's snapshot and names are in place.
  void publish(std::unique_ptr<const Snapshot> snapshot);
  // build + publish; throws before publishing.
  void apply(const ConfigSpec& spec) { publish(build(spec)); }

  SnapshotHolder<Snapshot>& holder() { return holder_; }
  // The published snapshot (nullptr before the first publish). Control thread only.
  const Snapshot* current() const { return holder_.current_for_control(); }
  // Frees retired snapshots no reader can still hold.
  void reclaim() { holder_.reclaim(); }

  SlotNames slot_names() const;
  std::optional<uint32_t> backend_slot(const IpAddr& addr) const;
  // The address of a backend slot (nullopt: not handed out yet).
  std::optional<IpAddr> backend_address(uint32_t slot) const;
  uint32_t vip_slot_count() const;
  uint32_t backend_slot_count() const;
  uint32_t max_vips() const { return vips_.capacity(); }
  uint32_t max_backends() const { return backends_.capacity(); }

 private:
  mutable std::mutex mutex_;  // registries and names
  BackendRegistry backends_;
  VipRegistry vips_;
  std::unordered_map<uint32_t, std::string> vip_names_;
  MaglevTables last_tables_;  // of the last build: what the next one may reuse
  mutable SnapshotHolder<Snapshot> holder_;
};

}  // namespace l4mux
