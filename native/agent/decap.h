// Decapsulation on the backend: the inverse of encap.h. Given an Ethernet frame the backend
// received, finds the inner IP packet of an IPv4-in-IPv4, IPv6-in-IPv6, IPv4-in-IPv6,
// IPv6-in-IPv4, GRE (RFC 2784 / 2890) or GUE variant 1 (inner IP right after UDP) tunnel
// addressed to one of the backend's own addresses, or names why the frame is not one.
//
// Pure: no I/O, no allocation, never reads outside [frame, frame + len). Every length the
// packet states is checked against the bytes actually present and against the enclosing
// header's length: the inner packet must fill the tunnel payload exactly.
//
// Deliberate limits (each has its own status, nothing is silently accepted):
//  - fragmented outer packets are refused (outer_fragment): the agent does not reassemble;
//    the mux sets DF (or uses IPv6, never fragmented on path) and handles PMTU instead;
//  - IPv6 extension headers in the outer packet are not walked (the mux sends none): the
//    next header must be the tunnel protocol itself;
//  - GRE routing (RFC 1701), strict source route, recursion and version != 0 (PPTP) are
//    refused; the optional checksum (C bit) is verified; sequence numbers (S bit) are
//    skipped, since the agent does not reorder;
//  - GUE variant 0 (a GUE header after UDP) is refused; variant 1 only.
//
// Admission (what makes a backend's tunnel more than an open relay): a tunnel packet is
// accepted only from a configured mux source (outer source inside one of `mux_sources`),
// and its inner packet only when addressed to one of the backend's VIPs. Otherwise any host
// that reaches the backend could inject packets with forged client addresses into its
// stack, reach its own services, or (with forwarding on) other hosts behind it.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

#include "types.h"

namespace l4mux {

// Outcome of decapsulate(). The order is part of the addon's API (counters by name).
#define L4MUX_DECAP_STATUSES(X)                                                    \
  X(kOk, "decapsulated")                                                           \
  /* not ours: normal traffic the kernel handles */                                \
  X(kNotIp, "not_ip")                                                              \
  X(kNotOurAddress, "not_our_address")                                             \
  X(kNotTunnel, "not_tunnel_protocol")                                             \
  X(kNotGuePort, "udp_not_gue_port")                                               \
  /* tunnel packets for us that we cannot or will not decapsulate */               \
  X(kEthTruncated, "eth_truncated")                                                \
  X(kOuterTruncated, "outer_truncated")                                            \
  X(kOuterBadHeader, "outer_bad_header")                                           \
  X(kOuterBadChecksum, "outer_bad_checksum")                                       \
  X(kOuterBadLength, "outer_bad_length")                                           \
  X(kOuterFragment, "outer_fragment")                                              \
  X(kGreTruncated, "gre_truncated")                                                \
  X(kGreUnsupported, "gre_unsupported_flags")                                      \
  X(kGreBadChecksum, "gre_bad_checksum")                                           \
  X(kGreWrongKey, "gre_wrong_key")                                                 \
  X(kGreNotIp, "gre_not_ip")                                                       \
  X(kUdpTruncated, "udp_truncated")                                                \
  X(kUdpBadLength, "udp_bad_length")                                               \
  X(kUdpBadChecksum, "udp_bad_checksum")                                           \
  X(kGueUnsupported, "gue_unsupported_variant")                                    \
  X(kInnerTruncated, "inner_truncated")                                            \
  X(kInnerVersionMismatch, "inner_version_mismatch")                               \
  X(kInnerBadHeader, "inner_bad_header")                                           \
  X(kInnerBadLength, "inner_bad_length")                                           \
  /* well-formed tunnel packets the agent must not deliver */                      \
  X(kSourceNotMux, "outer_source_not_mux")                                         \
  X(kInnerNotVip, "inner_not_vip")

enum class DecapStatus : uint8_t {
#define L4MUX_X(name, str) name,
  L4MUX_DECAP_STATUSES(L4MUX_X)
#undef L4MUX_X
  kCount
};

inline constexpr size_t kDecapStatusCount = static_cast<size_t>(DecapStatus::kCount);

inline std::string_view decap_status_name(DecapStatus s) {
  static constexpr std::string_view kNames[] = {
#define L4MUX_X(name, str) str,
      L4MUX_DECAP_STATUSES(L4MUX_X)
#undef L4MUX_X
  };
  return static_cast<size_t>(s) < kDecapStatusCount ? kNames[static_cast<size_t>(s)] : "unknown";
}

// Not ours: the frame is ordinary traffic (or someone else's tunnel), not an error.
inline bool decap_not_ours(DecapStatus s) {
  return s == DecapStatus::kNotIp || s == DecapStatus::kNotOurAddress ||
         s == DecapStatus::kNotTunnel || s == DecapStatus::kNotGuePort;
}

inline constexpr size_t kMaxGuePorts = 8;

// An address prefix (address/length); bits past the length are ignored.
struct IpPrefix {
  IpAddr addr;
  uint8_t length = 0;  // 0..32 (IPv4) or 0..128 (IPv6)

  bool contains(const IpAddr& a) const {
    if (a.family != addr.family) return false;
    const uint32_t full = length / 8u;
    if (std::memcmp(a.bytes.data(), addr.bytes.data(), full) != 0) return false;
    const uint32_t rest = length % 8u;
    if (rest == 0) return true;
    const auto mask = static_cast<uint8_t>(0xFFu << (8 - rest));
    return ((a.bytes[full] ^ addr.bytes[full]) & mask) == 0;
  }
};

struct DecapConfig {
  IpAddr ipv4;  // the backend's IPv4 address (tunnel endpoint); family kNone: none
  IpAddr ipv6;  // the backend's IPv6 address; family kNone: none
  std::array<uint16_t, kMaxGuePorts> gue_ports{};  // host byte order
  uint8_t gue_port_count = 0;
  // GRE: with a key configured only packets carrying exactly that key are accepted; without
  // one only packets without a key (as the kernel's ip_gre matches tunnels).
  bool has_gre_key = false;
  uint32_t gre_key = 0;

  // Outer sources the tunnel packets may come from (the muxes). Empty: not checked (the
  // agent always sets it; 0.0.0.0/0 and ::/0 accept anyone, explicitly).
  std::vector<IpPrefix> mux_sources;
  // Inner destinations that are delivered (the backend's VIPs), sorted by sort_vips(). Empty:
  // not checked (the agent always sets it).
  std::vector<IpAddr> vips;

  bool from_mux(const IpAddr& source) const {
    if (mux_sources.empty()) return true;
    for (const IpPrefix& p : mux_sources) {
      if (p.contains(source)) return true;
    }
    return false;
  }
  bool is_vip(const IpAddr& destination) const;
  // Orders `vips` for is_vip()'s binary search; call once after filling it.
  void sort_vips();

  bool accepts_gue_port(uint16_t port) const {
    for (uint8_t i = 0; i < gue_port_count && i < kMaxGuePorts; ++i) {
      if (gue_ports[i] == port) return true;
    }
    return false;
  }
};

struct DecapResult {
  DecapStatus status = DecapStatus::kEthTruncated;
  Encap kind = Encap::kIpip;          // meaningful from the tunnel protocol on
  Family outer = Family::kNone;       // outer IP family once known
  Family inner = Family::kNone;       // set with kOk
  uint32_t inner_offset = 0;          // from the start of the frame; set with kOk
  uint32_t inner_length = 0;          // the inner IP packet's own length; set with kOk
};

enum DecapFlags : uint32_t {
  kDecapNone = 0,
  // The outer L4 checksum may be only partial (AF_PACKET TP_STATUS_CSUMNOTREADY, i.e. the
  // sender on this host or a veth left it to offload): skip GUE UDP checksum verification.
  kDecapChecksumNotReady = 1u << 0,
};

// Never reads outside [frame, frame + len). With kOk, [inner_offset, inner_offset +
// inner_length) lies inside the frame and holds an IP packet of family `inner` whose header
// states exactly that length.
DecapResult decapsulate(const uint8_t* frame, uint32_t len, const DecapConfig& config,
                        uint32_t flags = kDecapNone);

}  // namespace l4mux
