#include "snapshot.h"

#include <algorithm>
#include <bit>
#include <cstdio>
#include <functional>
#include <queue>
#include <stdexcept>

#include "hash.h"

namespace l4mux {
namespace {

constexpr uint64_t kIndexSeedPurpose = 0x1d3;

std::string describe(const VipKey& k) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "proto %u port %u", k.proto, k.port);
  return buf;
}

uint64_t hash_addr(const IpAddr& a, uint64_t seed) { return hash_vip_key(VipKey{a, 0, 0}, seed); }

// Index sizes: a power of two at least twice the entry count keeps linear probes short.
size_t index_size_for(size_t n) { return std::bit_ceil(std::max<size_t>(4, n * 2)); }

// Who takes the new flows a backend would get: itself while it is active and up, else the
// first of its fall-overs able to, each following its own fall-overs in turn (depth first).
// -1 when nobody can. `visiting` guards against loops validation should already have refused.
int32_t fallover_target(const VipSpec& vs, size_t i, std::vector<uint8_t>& visiting) {
  const BackendSpec& b = vs.backends[i];
  if (b.state == AdminState::kActive && b.healthy) return static_cast<int32_t>(i);
  if (visiting[i] != 0) return -1;
  visiting[i] = 1;
  int32_t target = -1;
  for (const IpAddr& next : b.fallover) {
    for (size_t j = 0; j < vs.backends.size() && target < 0; ++j) {
      if (j != i && vs.backends[j].addr == next) target = fallover_target(vs, j, visiting);
    }
    if (target >= 0) break;
  }
  visiting[i] = 0;
  return target;
}

// Stride scheduling: each pick goes to the backend whose next turn comes first, turns spaced
// by 1/weight; ties go to the earlier backend. Deterministic and smooth.
std::vector<uint32_t> wrr_order(const std::vector<uint32_t>& backends, std::vector<uint64_t> weights) {
  uint64_t total = 0;
  for (uint64_t w : weights) total += w;
  if (total == 0) return {};
  if (total > kWrrMaxSequence) {  // keep proportions, bound the length
    uint64_t scaled_total = 0;
    for (uint64_t& w : weights) {
      w = std::max<uint64_t>(1, w * kWrrMaxSequence / total);
      scaled_total += w;
    }
    total = scaled_total;
  }
  constexpr uint64_t kStrideScale = uint64_t{1} << 40;
  using Turn = std::pair<uint64_t, uint32_t>;  // (pass, index)
  std::priority_queue<Turn, std::vector<Turn>, std::greater<Turn>> turns;
  for (uint32_t i = 0; i < backends.size(); ++i) {
    if (weights[i] > 0) turns.emplace(kStrideScale / weights[i] / 2, i);
  }
  std::vector<uint32_t> order;
  order.reserve(total);
  while (order.size() < total) {
    const auto [pass, i] = turns.top();
    turns.pop();
    order.push_back(backends[i]);
    turns.emplace(pass + kStrideScale / weights[i], i);
  }
  return order;
}

// The canonical inputs of a VIP's table: size, seed, (slot, weight) of each backend given to
// build_maglev_table in order, then each (slot, fall-over slot) pair applied afterwards. A
// backend's slot stands for its address for the life of the process, so the slot is enough.
std::vector<uint64_t> table_inputs(uint32_t size, uint64_t seed, const std::vector<MaglevBackend>& maglev,
                                   const std::vector<uint32_t>& remap) {
  std::vector<uint64_t> in;
  in.reserve(3 + maglev.size());
  in.push_back(size);
  in.push_back(seed);
  in.push_back(maglev.size());
  for (const MaglevBackend& b : maglev) in.push_back(uint64_t{b.id} << 32 | b.weight);
  for (uint32_t slot = 0; slot < remap.size(); ++slot) {
    if (remap[slot] != kMaglevNoBackend) in.push_back(uint64_t{slot} << 32 | remap[slot]);
  }
  return in;
}

// The previous build's table when its inputs are the same, else a new one.
std::shared_ptr<const MaglevTable> maglev_table_for(std::vector<uint64_t> inputs, const std::vector<MaglevBackend>& maglev,
                                                    const std::vector<uint32_t>& remap, bool any_remap,
                                                    const MaglevTable* previous) {
  const uint64_t digest = hash_bytes(inputs.data(), inputs.size() * sizeof(uint64_t), 0);
  if (previous != nullptr && previous->digest == digest && previous->inputs == inputs) return nullptr;
  auto table = std::make_shared<MaglevTable>();
  table->entries = build_maglev_table(maglev, static_cast<uint32_t>(inputs[0]), inputs[1]);
  if (any_remap) {
    for (uint32_t& entry : table->entries) {
      if (entry != kMaglevNoBackend && remap[entry] != kMaglevNoBackend) entry = remap[entry];
    }
  }
  table->inputs = std::move(inputs);
  table->digest = digest;
  return table;
}

// The backend-dependent part of a VIP: Maglev table with fall-overs, what happens to
// existing flows per backend, and the new-flow set of the per-worker schedulers. Returns
// whether the table was taken over from `previous`.
bool plan_backends(const VipSpec& vs, const std::vector<uint32_t>& slots, size_t slot_count,
                   uint64_t seed, const std::shared_ptr<const MaglevTable>& previous, Vip& vip) {
  const size_t n = vs.backends.size();
  std::vector<int32_t> target(n, -1);
  std::vector<uint8_t> visiting(n, 0);
  for (size_t i = 0; i < n; ++i) target[i] = fallover_target(vs, i, visiting);

  std::vector<MaglevBackend> maglev;
  maglev.reserve(n);
  vip.members.resize(n);
  vip.member_by_slot.assign(slot_count, kNotMember);
  std::vector<uint64_t> share(n, 0);
  for (size_t i = 0; i < n; ++i) {
    const BackendSpec& b = vs.backends[i];
    if (target[i] >= 0 && b.weight > 0) {
      maglev.push_back(MaglevBackend{slots[i], b.addr, b.weight});
      share[static_cast<size_t>(target[i])] += b.weight;
    }
    vip.member_by_slot[slots[i]] = static_cast<uint32_t>(i);
    vip.members[i].fate = b.state == AdminState::kOffline ? FlowFate::kCut
                          : b.healthy                     ? FlowFate::kKeep
                                                          : FlowFate::kReschedule;
    vip.members[i].accepts_new_flows = b.state == AdminState::kActive && b.healthy && b.weight > 0;
  }
  std::vector<uint32_t> remap(slot_count, kMaglevNoBackend);
  bool any_remap = false;
  for (size_t i = 0; i < n; ++i) {
    if (target[i] >= 0 && static_cast<size_t>(target[i]) != i) {
      remap[slots[i]] = slots[static_cast<size_t>(target[i])];
      any_remap = true;
    }
  }
  std::shared_ptr<const MaglevTable> built =
      maglev_table_for(table_inputs(vs.table_size, seed, maglev, remap), maglev, remap, any_remap, previous.get());
  const bool reused = built == nullptr;
  vip.maglev = reused ? previous : std::move(built);
  vip.table = vip.maglev->entries;

  std::vector<uint64_t> weights;
  for (size_t i = 0; i < n; ++i) {
    if (share[i] == 0) continue;
    vip.new_flow_backends.push_back(slots[i]);
    weights.push_back(share[i]);
    vip.new_flow_weights.push_back(static_cast<uint32_t>(std::min<uint64_t>(share[i], UINT32_MAX)));
  }
  if (vs.scheduler == Scheduler::kWrr) vip.wrr_sequence = wrr_order(vip.new_flow_backends, weights);
  return reused;
}

// The outer headers toward each member, for packets of the VIP's family.
void make_tunnels(const ConfigSpec& spec, const VipSpec& vs, Vip& vip) {
  for (size_t i = 0; i < vs.backends.size(); ++i) {
    const IpAddr& backend = vs.backends[i].addr;
    const std::optional<IpAddr>& outer_src = backend.is_v4() ? spec.outer_source_v4 : spec.outer_source_v6;
    EncapParams params;
    params.kind = vip.encap;
    params.outer_src = outer_src ? &*outer_src : nullptr;
    params.backend = &backend;
    params.has_gre_key = vip.has_gre_key;
    params.gre_key = vip.gre_key;
    params.gue_port = vip.gue_port;
    params.src_mac = &spec.source_mac;
    params.dst_mac = &spec.gateway_mac;
    vip.members[i].tunnel = make_tunnel_header(params, vs.key.addr.family);
  }
}

}  // namespace

size_t IpAddrHash::operator()(const IpAddr& a) const { return hash_addr(a, 0); }
size_t VipKeyHash::operator()(const VipKey& k) const { return hash_vip_key(k, 0); }

std::unique_ptr<const Snapshot> Snapshot::build(const ConfigSpec& spec, BackendRegistry& backends,
                                                VipRegistry& vip_registry, const MaglevTables* previous) {
  std::unique_ptr<Snapshot> snap(new Snapshot());
  snap->seed_ = spec.seed;
  snap->index_seed_ = derive_seed(spec.seed, kIndexSeedPurpose);
  snap->source_mac_ = spec.source_mac;
  snap->gateway_mac_ = spec.gateway_mac;
  snap->outer_source_v4_ = spec.outer_source_v4;
  snap->outer_source_v6_ = spec.outer_source_v6;
  snap->egress_mtu_ = spec.egress_mtu;
  if (spec.cluster) snap->cluster_ = cluster::ClusterView::build(*spec.cluster, spec);

  // Slots first, so that every table below can be sized by the registry.
  std::vector<std::vector<uint32_t>> pool_slots(spec.vips.size());
  for (size_t v = 0; v < spec.vips.size(); ++v) {
    for (const BackendSpec& b : spec.vips[v].backends) {
      const auto slot = backends.slot_for(b.addr);
      if (!slot) {
        throw std::invalid_argument("too many distinct backends (limit " +
                                    std::to_string(backends.capacity()) + ")");
      }
      pool_slots[v].push_back(*slot);
    }
  }
  snap->backends_.resize(backends.keys().size());
  for (size_t s = 0; s < backends.keys().size(); ++s) snap->backends_[s].addr = backends.keys()[s];

  snap->vips_.reserve(spec.vips.size());
  for (size_t v = 0; v < spec.vips.size(); ++v) {
    const VipSpec& vs = spec.vips[v];
    const auto slot = vip_registry.slot_for(vs.key);
    if (!slot) {
      throw std::invalid_argument("too many distinct VIPs (limit " +
                                  std::to_string(vip_registry.capacity()) + ")");
    }
    Vip vip;
    vip.name = vs.name;
    vip.key = vs.key;
    vip.slot = *slot;
    vip.encap = vs.encap;
    vip.has_gre_key = vs.gre_key.has_value();
    vip.gre_key = vs.gre_key.value_or(0);
    vip.gue_port = vs.gue_port;
    vip.hash_fields = vs.hash_fields;
    vip.icmp_echo = vs.icmp_echo;
    vip.table_size = vs.table_size;

    vip.scheduler = vs.scheduler;
    vip.new_flow_rate = vs.new_flow_rate;
    if (vs.persistence) {
      const uint32_t bits = vs.key.addr.is_v4() ? 32 : 128;
      if (vs.persistence->prefix_length == 0 || vs.persistence->prefix_length > bits) {
        throw std::invalid_argument("VIP \"" + vs.name + "\": persistence prefix length must be 1.." +
                                    std::to_string(bits));
      }
      vip.persist_prefix = vs.persistence->prefix_length;
      vip.persist_max_entries = vs.persistence->max_entries;
      vip.persist_timeout_seconds = vs.persistence->timeout_seconds;
    }
    try {
      static const std::shared_ptr<const MaglevTable> kNoTable;
      const std::shared_ptr<const MaglevTable>& before =
          previous != nullptr && *slot < previous->size() ? (*previous)[*slot] : kNoTable;
      const bool reused = plan_backends(vs, pool_slots[v], snap->backends_.size(), spec.seed, before, vip);
      ++(reused ? snap->tables_reused_ : snap->tables_built_);
      make_tunnels(spec, vs, vip);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument("VIP \"" + vs.name + "\": " + e.what());
    }
    snap->vips_.push_back(std::move(vip));
  }

  snap->vip_by_slot_.assign(vip_registry.keys().size(), -1);
  for (size_t v = 0; v < snap->vips_.size(); ++v) snap->vip_by_slot_[snap->vips_[v].slot] = static_cast<int32_t>(v);

  // VIP index.
  snap->vip_index_.assign(index_size_for(snap->vips_.size()), VipSlot{});
  const size_t vip_mask = snap->vip_index_.size() - 1;
  for (size_t v = 0; v < snap->vips_.size(); ++v) {
    const VipKey& key = snap->vips_[v].key;
    size_t i = hash_vip_key(key, snap->index_seed_) & vip_mask;
    while (snap->vip_index_[i].vip >= 0) {
      if (snap->vips_[snap->vip_index_[i].vip].key == key) {
        throw std::invalid_argument("duplicate VIP " + describe(key));
      }
      i = (i + 1) & vip_mask;
    }
    snap->vip_index_[i].vip = static_cast<int32_t>(v);
    snap->vip_index_[i].hash = hash_vip_key(key, snap->index_seed_);
  }

  // Address index: echo and the per-protocol fragment VIP.
  snap->addr_index_.assign(index_size_for(snap->vips_.size()), AddrSlot{});
  const size_t addr_mask = snap->addr_index_.size() - 1;
  for (size_t v = 0; v < snap->vips_.size(); ++v) {
    const Vip& vip = snap->vips_[v];
    size_t i = hash_addr(vip.key.addr, snap->index_seed_) & addr_mask;
    while (snap->addr_index_[i].info >= 0 && !(snap->addr_index_[i].addr == vip.key.addr)) {
      i = (i + 1) & addr_mask;
    }
    if (snap->addr_index_[i].info < 0) {
      snap->addr_index_[i].addr = vip.key.addr;
      snap->addr_index_[i].info = static_cast<int32_t>(snap->addr_infos_.size());
      snap->addr_infos_.push_back(VipAddressInfo{});
    }
    VipAddressInfo& info = snap->addr_infos_[snap->addr_index_[i].info];
    info.icmp_echo = info.icmp_echo || vip.icmp_echo;
    int32_t* fragment_vip = vip.key.proto == kProtoTcp   ? &info.fragment_vip_tcp
                            : vip.key.proto == kProtoUdp ? &info.fragment_vip_udp
                                                         : nullptr;
    if (fragment_vip != nullptr) {
      *fragment_vip = *fragment_vip == VipAddressInfo::kNone ? static_cast<int32_t>(v)
                                                             : VipAddressInfo::kAmbiguous;
    }
  }
  return snap;
}

MaglevTables Snapshot::maglev_tables() const {
  MaglevTables out(vip_by_slot_.size());
  for (const Vip& vip : vips_) out[vip.slot] = vip.maglev;
  return out;
}

const Vip* Snapshot::find_vip(const IpAddr& addr, uint8_t proto, uint16_t port) const {
  const size_t mask = vip_index_.size() - 1;
  auto probe = [&](uint16_t want) -> const Vip* {
    const uint64_t hash = hash_vip_key(addr, proto, want, index_seed_);
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
      const VipSlot& slot = vip_index_[i];
      if (slot.vip < 0) return nullptr;
      if (slot.hash != hash) continue;
      const VipKey& k = vips_[slot.vip].key;
      if (k.port == want && k.proto == proto && k.addr == addr) return &vips_[slot.vip];
    }
  };
  if (const Vip* exact = probe(port)) return exact;
  return port != 0 ? probe(0) : nullptr;
}

const VipAddressInfo* Snapshot::find_address(const IpAddr& addr) const {
  const size_t mask = addr_index_.size() - 1;
  for (size_t i = hash_addr(addr, index_seed_) & mask;; i = (i + 1) & mask) {
    const AddrSlot& slot = addr_index_[i];
    if (slot.info < 0) return nullptr;
    if (slot.addr == addr) return &addr_infos_[slot.info];
  }
}

const Vip* Snapshot::fragment_vip(const VipAddressInfo& info, uint8_t proto) const {
  const int32_t v = proto == kProtoTcp   ? info.fragment_vip_tcp
                    : proto == kProtoUdp ? info.fragment_vip_udp
                                         : VipAddressInfo::kNone;
  return v >= 0 ? &vips_[v] : nullptr;
}

}  // namespace l4mux
