// The configuration as workers see it: an immutable snapshot (VIP table, Maglev tables,
// backend slots, addresses) built by the control thread and swapped in atomically.
//
// Backends and VIPs are identified by slots that stay the same across snapshots for the
// life of the process (see SlotRegistry), so connection entries and counters, which store
// slots, remain meaningful after a reload.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "cluster/ownership.h"
#include "encap.h"
#include "maglev.h"
#include "defaults.h"
#include "types.h"

namespace l4mux {

// ---- What the control plane asks for (already validated by src/config) ----

struct BackendSpec {
  BackendSpec() = default;
  BackendSpec(const IpAddr& address, uint32_t w) : addr(address), weight(w) {}

  IpAddr addr;
  uint32_t weight = 1;
  AdminState state = AdminState::kActive;
  bool healthy = true;  // false: down by health checks
  // Backends of the same VIP that take this one's share of new flows while it cannot take
  // them itself: the first able to, each following its own fall-overs in turn (depth first).
  std::vector<IpAddr> fallover;
};

struct VipSpec {
  std::string name;
  VipKey key;
  Encap encap = Encap::kIpip;
  std::optional<uint32_t> gre_key;
  uint16_t gue_port = defaults::kGuePort;
  HashFields hash_fields = HashFields::kFiveTuple;
  uint32_t table_size = kMaglevDefaultSize;
  bool icmp_echo = true;
  Scheduler scheduler = Scheduler::kMaglev;
  // New connection-table entries per second each worker makes for the VIP (its share of the
  // mux's vips[].newFlowRate); 0: no limit. Past it the VIP is in flood mode
  // (Pipeline::admit_new_flow).
  uint32_t new_flow_rate = 0;
  std::vector<BackendSpec> backends;
  // Client persistence (issue 16); absent: none.
  struct Persistence {
    uint32_t timeout_seconds = 0;
    uint8_t prefix_length = 0;  // 1..32 (IPv4 VIP) or 1..128 (IPv6 VIP)
    uint32_t max_entries = 0;
  };
  std::optional<Persistence> persistence;
};

struct ConfigSpec {
  uint64_t seed = 0;
  MacAddr source_mac{};
  MacAddr gateway_mac{};
  std::optional<IpAddr> outer_source_v4;
  std::optional<IpAddr> outer_source_v6;
  // Largest IP packet the egress link carries (its MTU); 0 = no limit (replay).
  uint32_t egress_mtu = 0;
  std::vector<VipSpec> vips;
  // Absent: no cluster (the mux decides alone).
  std::optional<cluster::ClusterSpec> cluster;
};

// ---- Stable slots ----

struct IpAddrHash {
  size_t operator()(const IpAddr& a) const;
};
struct VipKeyHash {
  size_t operator()(const VipKey& k) const;
};

// Hands out a slot per distinct key, never reusing one, up to a fixed capacity (the size of
// the per-worker counter arrays).
template <typename Key, typename KeyHash>
class SlotRegistry {
 public:
  explicit SlotRegistry(uint32_t capacity) : capacity_(capacity) {}
  // The key's slot, assigned on first sight; nullopt when the registry is full.
  std::optional<uint32_t> slot_for(const Key& key) {
    if (auto it = slots_.find(key); it != slots_.end()) return it->second;
    if (keys_.size() >= capacity_) return std::nullopt;
    const auto slot = static_cast<uint32_t>(keys_.size());
    slots_.emplace(key, slot);
    keys_.push_back(key);
    return slot;
  }
  std::optional<uint32_t> find(const Key& key) const {
    if (auto it = slots_.find(key); it != slots_.end()) return it->second;
    return std::nullopt;
  }
  const std::vector<Key>& keys() const { return keys_; }
  uint32_t capacity() const { return capacity_; }

 private:
  uint32_t capacity_;
  std::unordered_map<Key, uint32_t, KeyHash> slots_;
  std::vector<Key> keys_;
};

using BackendRegistry = SlotRegistry<IpAddr, IpAddrHash>;
using VipRegistry = SlotRegistry<VipKey, VipKeyHash>;

// ---- The snapshot ----

// What becomes of a flow the connection table already gives to a backend.
enum class FlowFate : uint8_t {
  kReschedule = 0,  // the backend left the VIP or is down: the flow is scheduled anew
  kKeep = 1,        // active or draining: the flow stays
  kCut = 2,         // offline: the flow is cut (TCP: RST to the client) and forgotten
};

inline constexpr uint32_t kWrrMaxSequence = 1u << 16;

// A VIP's Maglev table (fall-overs applied), immutable once built and shared by every snapshot
// whose VIP has the same inputs: a change to one VIP's pool (a health flap) rebuilds that
// VIP's table only. `inputs` is everything the entries depend on, in a canonical form (table
// size, seed, the weighted backends in order, the fall-over remapping); `digest` hashes it so
// that most mismatches cost one comparison.
struct MaglevTable {
  std::vector<uint64_t> inputs;
  uint64_t digest = 0;
  std::vector<uint32_t> entries;
};
// The tables of a snapshot by VIP slot (nullptr: no VIP in that slot), the source of reuse
// for the next build.
using MaglevTables = std::vector<std::shared_ptr<const MaglevTable>>;

// A backend of a VIP's pool, as the fast path needs it.
struct VipMember {
  TunnelHeader tunnel;  // the outer headers toward it for this VIP's packets
  FlowFate fate = FlowFate::kReschedule;
  bool accepts_new_flows = false;  // active, up, weight > 0: may be given new flows itself
};
inline constexpr uint32_t kNotMember = UINT32_MAX;

struct Vip {
  VipKey key;
  uint32_t slot = 0;
  Encap encap = Encap::kIpip;
  bool has_gre_key = false;
  uint32_t gre_key = 0;
  uint16_t gue_port = defaults::kGuePort;
  HashFields hash_fields = HashFields::kFiveTuple;
  bool icmp_echo = true;
  Scheduler scheduler = Scheduler::kMaglev;
  uint32_t new_flow_rate = 0;  // VipSpec::new_flow_rate
  // Client persistence: the client prefix length (0: not persistent) and the VIP's share of
  // the persistence table.
  uint8_t persist_prefix = 0;
  uint32_t persist_max_entries = 0;
  uint32_t persist_timeout_seconds = 0;
  uint32_t table_size = 0;
  // Maglev: flow hash % table_size -> backend slot. Built over the backends that take new
  // flows plus those whose share falls over to another; their entries then name the
  // fall-over, so only the entries of a backend that stops taking flows change hands.
  // `table` views `maglev->entries` (one load less on the packet path).
  std::shared_ptr<const MaglevTable> maglev;
  std::span<const uint32_t> table;
  // The pool, in configuration order, and where each backend slot is in it (kNotMember).
  std::vector<VipMember> members;
  std::vector<uint32_t> member_by_slot;
  // The backends that take new flows, with their share: own weight plus the weights of the
  // backends falling over to them (wrr and wlc choose among these).
  std::vector<uint32_t> new_flow_backends;
  std::vector<uint32_t> new_flow_weights;
  // Weighted round robin order over new_flow_backends (smooth: no backend twice in a row
  // unless its share demands it); at most kWrrMaxSequence long.
  std::vector<uint32_t> wrr_sequence;
  std::string name;  // the configuration's name for it (counters, tools); not on the packet path

  uint32_t backend_for(uint64_t hash) const {
    return table[static_cast<uint32_t>(hash % table_size)];
  }
  const VipMember* member(uint32_t backend_slot) const {
    const uint32_t i = backend_slot < member_by_slot.size() ? member_by_slot[backend_slot] : kNotMember;
    return i != kNotMember ? &members[i] : nullptr;
  }
  // kReschedule beyond the VIP's pool: the backend left it.
  FlowFate fate_of(uint32_t backend_slot) const {
    const VipMember* m = member(backend_slot);
    return m != nullptr ? m->fate : FlowFate::kReschedule;
  }
};

// What the fast path knows of a backend slot in this snapshot.
struct BackendState {
  IpAddr addr;
};

// Per VIP address: what ICMP and fragments sent to the address resolve to.
struct VipAddressInfo {
  static constexpr int32_t kNone = -1;
  static constexpr int32_t kAmbiguous = -2;
  bool icmp_echo = false;
  // Fragments carry no ports (only the first one does), so every fragment of a datagram
  // resolves the VIP by (address, protocol) alone: the one VIP for that pair, else none.
  int32_t fragment_vip_tcp = kNone;
  int32_t fragment_vip_udp = kNone;
};

class Snapshot {
 public:
  // Builds the snapshot: a VIP's Maglev table is taken from `previous` (by VIP slot) when its
  // inputs are unchanged, else built. Throws std::invalid_argument with a readable message
  // when the spec cannot be honoured (e.g. slot capacity exhausted, non-prime table size).
  // Touches nothing but its arguments: callable from any thread that owns them.
  static std::unique_ptr<const Snapshot> build(const ConfigSpec& spec, BackendRegistry& backends,
                                               VipRegistry& vips, const MaglevTables* previous = nullptr);

  // The VIP for (address, protocol, port): an exact port match first, then the all-ports VIP.
  const Vip* find_vip(const IpAddr& addr, uint8_t proto, uint16_t port) const;
  // nullptr when `addr` is not the address of any VIP.
  const VipAddressInfo* find_address(const IpAddr& addr) const;
  // The VIP holding `slot` in this snapshot, or nullptr. A slot always stands for the same
  // (address, protocol, port), so a flow scheduled under it still belongs to it.
  const Vip* vip_by_slot(uint32_t slot) const {
    return slot < vip_by_slot_.size() && vip_by_slot_[slot] >= 0 ? &vips_[vip_by_slot_[slot]] : nullptr;
  }
  const Vip* fragment_vip(const VipAddressInfo& info, uint8_t proto) const;

  const std::vector<Vip>& vips() const { return vips_; }
  const std::vector<BackendState>& backends() const { return backends_; }

  uint64_t seed() const { return seed_; }
  const MacAddr& source_mac() const { return source_mac_; }
  const MacAddr& gateway_mac() const { return gateway_mac_; }
  const std::optional<IpAddr>& outer_source_v4() const { return outer_source_v4_; }
  const std::optional<IpAddr>& outer_source_v6() const { return outer_source_v6_; }
  uint32_t egress_mtu() const { return egress_mtu_; }
  // This snapshot's Maglev tables by VIP slot: the `previous` of the next build.
  MaglevTables maglev_tables() const;
  // How many of this snapshot's tables its build took over from `previous` / computed.
  uint32_t tables_reused() const { return tables_reused_; }
  uint32_t tables_built() const { return tables_built_; }
  // nullptr without a cluster.
  const cluster::ClusterView* cluster() const { return cluster_.get(); }

 private:
  Snapshot() = default;

  // Open-addressing index from VipKey to position in vips_ (power-of-two size, built once).
  struct VipSlot {
    uint64_t hash = 0;  // compared first: a probe rarely needs to touch the VIP itself
    int32_t vip = -1;
  };
  struct AddrSlot {
    IpAddr addr;
    int32_t info = -1;
  };

  std::vector<Vip> vips_;
  std::vector<VipSlot> vip_index_;
  std::vector<int32_t> vip_by_slot_;  // VIP slot -> position in vips_, -1 when absent
  std::vector<AddrSlot> addr_index_;
  std::vector<VipAddressInfo> addr_infos_;
  std::vector<BackendState> backends_;
  uint64_t seed_ = 0;
  uint64_t index_seed_ = 0;
  MacAddr source_mac_{};
  MacAddr gateway_mac_{};
  std::optional<IpAddr> outer_source_v4_;
  std::optional<IpAddr> outer_source_v6_;
  uint32_t egress_mtu_ = 0;
  uint32_t tables_reused_ = 0;
  uint32_t tables_built_ = 0;
  std::unique_ptr<const cluster::ClusterView> cluster_;
};

}  // namespace l4mux
