#include "ownership.h"

#include <stdexcept>

#include "../hash.h"
#include "../snapshot.h"

namespace l4mux::cluster {
namespace {

// Purposes for derive_seed: the flow's hash and the members' id hashes never correlate with
// the connection table's or Maglev's.
constexpr uint64_t kFlowSeedPurpose = 0x4852572d666c6f77ull;    // "HRW-flow"
constexpr uint64_t kMemberSeedPurpose = 0x4852572d6d656d62ull;  // "HRW-memb"

// The member's draw for a flow: a keyed mix of the two hashes.
inline uint64_t draw(uint64_t flow_hash, uint64_t id_hash) {
  return hash_detail::mum(flow_hash ^ id_hash ^ hash_detail::kP1, (id_hash ^ hash_detail::kP2) + flow_hash) ^
         flow_hash;
}

}  // namespace

// -log2(u) in units of 2^-32 for u = x / 2^54, x = 2 * (d >> 11) + 1 (u in (0, 1), never 0 or
// 1): integer arithmetic only (the bit-by-bit logarithm of a 32-bit mantissa), so every mux,
// whatever its compiler or libm, and the control plane's copy (src/cluster/ownership.ts) get
// the same bits. At least 1, at most 54 * 2^32.
uint64_t neg_log2_fixed(uint64_t d) {
  const uint64_t x = ((d >> 11) << 1) | 1;
  const int ip = 63 - __builtin_clzll(x);
  uint64_t m = ip >= 31 ? x >> (ip - 31) : x << (31 - ip);  // Q1.31 in [1, 2)
  uint64_t frac = 0;
  for (int bit = 31; bit >= 0; --bit) {
    m = (m * m) >> 31;  // Q2.31 in [1, 4)
    if (m >= (uint64_t{1} << 32)) {
      m >>= 1;
      frac |= uint64_t{1} << bit;
    }
  }
  return (uint64_t{54} << 32) - ((static_cast<uint64_t>(ip) << 32) | frac);
}

namespace {

// score = weight / -log2(u) (the exponential race; log2 instead of ln only scales every
// score alike), compared exactly: a beats b when w_a * L_b > w_b * L_a, the draw breaking ties.
struct Score {
  uint64_t neg_log;
  uint32_t weight;
  uint64_t draw;
};

inline bool beats(const Score& a, const Score& b) {
  const unsigned __int128 lhs = static_cast<unsigned __int128>(a.weight) * b.neg_log;
  const unsigned __int128 rhs = static_cast<unsigned __int128>(b.weight) * a.neg_log;
  return lhs != rhs ? lhs > rhs : a.draw > b.draw;
}

[[noreturn]] void bad(const std::string& path, const std::string& reason) {
  throw std::invalid_argument(path + ": " + reason);
}

}  // namespace

std::unique_ptr<const ClusterView> ClusterView::build(const ClusterSpec& spec, const ConfigSpec& config) {
  if (spec.members.empty()) bad("cluster.members", "at least one member (this mux) is required");
  if (spec.members.size() > kMaxMembers) {
    bad("cluster.members", "at most " + std::to_string(kMaxMembers) + " members are supported");
  }
  if (spec.self_index >= spec.members.size()) {
    bad("cluster.selfIndex", std::to_string(spec.self_index) + " is not an index of members");
  }
  if (spec.redirect_port == 0) bad("cluster.redirectPort", "must be 1..65535");
  std::unique_ptr<ClusterView> view(new ClusterView());
  view->flow_seed_ = derive_seed(spec.seed, kFlowSeedPurpose);
  view->self_ = static_cast<uint8_t>(spec.self_index);
  view->redirect_port_ = spec.redirect_port;
  const uint64_t member_seed = derive_seed(spec.seed, kMemberSeedPurpose);
  const IpAddr& self_address = spec.members[spec.self_index].address;
  std::optional<uint32_t> live_weight;
  for (size_t i = 0; i < spec.members.size(); ++i) {
    const MemberSpec& ms = spec.members[i];
    const std::string path = "cluster.members[" + std::to_string(i) + "]";
    if (ms.id.empty()) bad(path + ".id", "must not be empty");
    if (ms.weight == 0) bad(path + ".weight", "must be > 0");
    for (size_t j = 0; j < i; ++j) {
      if (spec.members[j].id == ms.id) bad(path + ".id", "\"" + ms.id + "\" is listed twice");
      if (spec.members[j].address == ms.address) bad(path + ".address", "the address of members[" + std::to_string(j) + "] too");
    }
    Member m;
    m.address = ms.address;
    m.weight = ms.weight;
    m.live = ms.live;
    m.leaving = ms.leaving;
    m.id_hash = hash_bytes(ms.id.data(), ms.id.size(), member_seed);
    if (i != spec.self_index && ms.address.family == self_address.family) {
      EncapParams params;
      params.kind = Encap::kGue;
      params.outer_src = &self_address;
      params.backend = &ms.address;
      params.gue_port = spec.redirect_port;
      params.src_mac = &config.source_mac;
      params.dst_mac = &config.gateway_mac;
      m.redirect_v4 = make_tunnel_header(params, Family::kIpv4);
      m.redirect_v6 = make_tunnel_header(params, Family::kIpv6);
    }
    if (ms.live) {
      if (live_weight && *live_weight != ms.weight) view->equal_weights_ = false;
      live_weight = ms.weight;
    }
    view->members_.push_back(m);
  }
  return view;
}

Owners ClusterView::owners(const FlowKey& key) const {
  const uint64_t flow_hash = hash_flow(key, HashFields::kFiveTuple, flow_seed_);
  Owners o;
  if (equal_weights_) {
    uint64_t best = 0;
    uint64_t second = 0;
    for (size_t i = 0; i < members_.size(); ++i) {
      const Member& m = members_[i];
      if (!m.live) continue;
      const uint64_t d = draw(flow_hash, m.id_hash);
      if (o.owner == kNoMember || d > best) {
        o.backup = o.owner;
        second = best;
        o.owner = static_cast<uint8_t>(i);
        best = d;
      } else if (o.backup == kNoMember || d > second) {
        o.backup = static_cast<uint8_t>(i);
        second = d;
      }
    }
    return o;
  }
  Score best{};
  Score second{};
  for (size_t i = 0; i < members_.size(); ++i) {
    const Member& m = members_[i];
    if (!m.live) continue;
    const uint64_t d = draw(flow_hash, m.id_hash);
    const Score s{neg_log2_fixed(d), m.weight, d};
    if (o.owner == kNoMember || beats(s, best)) {
      o.backup = o.owner;
      second = best;
      o.owner = static_cast<uint8_t>(i);
      best = s;
    } else if (o.backup == kNoMember || beats(s, second)) {
      o.backup = static_cast<uint8_t>(i);
      second = s;
    }
  }
  return o;
}

uint8_t ClusterView::member_by_address(const IpAddr& addr) const {
  for (size_t i = 0; i < members_.size(); ++i) {
    if (members_[i].address == addr) return static_cast<uint8_t>(i);
  }
  return kNoMember;
}

}  // namespace l4mux::cluster
