// Who owns a flow in a cluster of muxes (every connection has a primary and a backup owner):
// weighted rendezvous hashing (highest random weight) of the flow's 5-tuple over the live
// members, keyed by the cluster seed and each member's id. Every mux computes the same owner
// and backup from the same member list, whatever its order, and a member's leave only moves
// the flows it owned or backed (to the next-highest scores).
//
// score(member) = weight / -log2(u), u = the member's 64-bit hash of the flow mapped into
// (0, 1): the exponential-race form of weighted HRW, so a member of weight 2 wins twice as
// often as one of weight 1. The logarithm is fixed-point integer arithmetic and the scores
// are compared as exact products (no floating point: every mux and the control plane compute
// the same owners bit for bit). When all live weights are equal the order of the scores is
// the order of the hashes, and the fast path compares the hashes alone.
//
// The ClusterView also carries what a redirect to another member needs: the GUE tunnel
// header from this mux's address to that member's on the cluster's redirect port.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "../encap.h"
#include "../types.h"
#include "flow_record.h"

namespace l4mux {
struct ConfigSpec;
}

namespace l4mux::cluster {

struct MemberSpec {
  std::string id;
  IpAddr address;
  uint32_t weight = 1;
  bool live = true;
  // Dead, but still owning its flows while the survivors' transfers come in: its flows'
  // backups stand in for it (they hold what it was sent).
  bool leaving = false;
};

struct ClusterSpec {
  uint32_t self_index = 0;
  uint64_t seed = 0;
  std::vector<MemberSpec> members;
  uint16_t redirect_port = 0;
};

struct Owners {
  uint8_t owner = kNoMember;
  uint8_t backup = kNoMember;
};

struct Member {
  IpAddr address;
  uint32_t weight = 1;
  bool live = true;
  bool leaving = false;
  uint64_t id_hash = 0;
  // GUE to this member's address on the redirect port, for inner packets of each family;
  // not usable for this mux itself or for a member of another family than this mux.
  TunnelHeader redirect_v4;
  TunnelHeader redirect_v6;
};

// -log2(u) for u = (2 * (d >> 11) + 1) / 2^54, in units of 2^-32 (integer arithmetic only).
uint64_t neg_log2_fixed(uint64_t d);

class ClusterView {
 public:
  // Throws std::invalid_argument ("cluster.members[2].weight: ...") on a spec that cannot be
  // honoured. `config` gives the MAC addresses of the redirect tunnels.
  static std::unique_ptr<const ClusterView> build(const ClusterSpec& spec, const ConfigSpec& config);

  // Owner and backup of the flow among the live members (kNoMember when there are none).
  Owners owners(const FlowKey& key) const;

  uint8_t self() const { return self_; }
  const IpAddr& self_address() const { return members_[self_].address; }
  uint16_t redirect_port() const { return redirect_port_; }
  const std::vector<Member>& members() const { return members_; }
  // The member whose address is `addr`, or kNoMember.
  uint8_t member_by_address(const IpAddr& addr) const;
  const TunnelHeader& redirect_tunnel(uint8_t member, Family inner) const {
    return inner == Family::kIpv4 ? members_[member].redirect_v4 : members_[member].redirect_v6;
  }

 private:
  ClusterView() = default;
  uint64_t flow_seed_ = 0;
  std::vector<Member> members_;
  uint8_t self_ = 0;
  uint16_t redirect_port_ = 0;
  bool equal_weights_ = true;
};

}  // namespace l4mux::cluster
