// Vocabulary shared by every part of the fast path: addresses, flow keys, VIP keys,
// verdicts and the named drop reasons (the protocols' own numbers are in wire.h).
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "wire.h"

namespace l4mux {

// The flag combinations a TCP segment may carry (PSH, ECE and CWR aside), as Linux's
// conntrack accepts them: SYN, SYN|ACK, RST, RST|ACK, FIN|ACK, ACK, each also with URG where
// Linux allows it. SYN with FIN or RST, FIN without ACK and no flags at all are scans or
// attacks, never a connection.
inline bool tcp_flags_valid(uint8_t flags) {
  const uint32_t key = (flags & 0x07u) | ((flags & 0x30u) >> 1);  // FIN SYN RST ACK URG
  constexpr uint32_t kValid = (1u << 0x02) | (1u << 0x12) | (1u << 0x0A) | (1u << 0x04) | (1u << 0x0C) |
                              (1u << 0x09) | (1u << 0x19) | (1u << 0x08) | (1u << 0x18);
  return ((kValid >> key) & 1u) != 0;
}

enum class Family : uint8_t { kNone = 0, kIpv4 = 4, kIpv6 = 6 };

// Writes an IPv4 address as the 16 bytes addresses are kept in (its 4 bytes, then zeros), in
// two 8-byte words: the hash and the compares read them back whole, and a load that spans
// several smaller stores waits until they have retired (store-to-load forwarding fails).
inline void store_ipv4_address16(uint8_t* out16, const uint8_t* ipv4) {
  uint32_t a;
  std::memcpy(&a, ipv4, sizeof(a));
  const uint64_t word = std::endian::native == std::endian::little ? uint64_t{a} : uint64_t{a} << 32;
  const uint64_t zero = 0;
  std::memcpy(out16, &word, sizeof(word));
  std::memcpy(out16 + 8, &zero, sizeof(zero));
}

// An IPv4 or IPv6 address in network byte order. IPv4 uses bytes[0..3], the rest stays zero,
// so that two equal addresses always compare (and hash) equal byte for byte.
struct IpAddr {
  std::array<uint8_t, 16> bytes{};
  Family family = Family::kNone;

  static IpAddr v4(const uint8_t* p) {
    IpAddr a;
    store_ipv4_address16(a.bytes.data(), p);
    a.family = Family::kIpv4;
    return a;
  }
  static IpAddr v6(const uint8_t* p) {
    IpAddr a;
    std::memcpy(a.bytes.data(), p, 16);
    a.family = Family::kIpv6;
    return a;
  }
  bool is_v4() const { return family == Family::kIpv4; }
  bool is_v6() const { return family == Family::kIpv6; }
  size_t size() const { return is_v4() ? 4 : 16; }
  bool operator==(const IpAddr& o) const { return family == o.family && bytes == o.bytes; }
};

using MacAddr = std::array<uint8_t, 6>;

// The 5-tuple, laid out so that it can be hashed and compared as 40 plain bytes.
// Ports are kept in host byte order. Unused address bytes and padding are always zero.
struct FlowKey {
  std::array<uint8_t, 16> src{};
  std::array<uint8_t, 16> dst{};
  uint16_t src_port = 0;
  uint16_t dst_port = 0;
  uint8_t proto = 0;
  Family family = Family::kNone;
  uint8_t pad[2] = {0, 0};

  // Five words xored and or-ed: branch-free, where memcmp of 40 bytes is a library call.
  bool operator==(const FlowKey& o) const {
    uint64_t a[5];
    uint64_t b[5];
    std::memcpy(a, this, sizeof(a));
    std::memcpy(b, &o, sizeof(b));
    return ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (a[4] ^ b[4])) == 0;
  }
};
static_assert(sizeof(FlowKey) == 40, "FlowKey must stay 40 packed bytes");

// Which fields of the 5-tuple choose a backend for a VIP.
enum class HashFields : uint8_t {
  kFiveTuple = 0,   // src, dst, ports, protocol: the default; spreads every connection
  kThreeTuple = 1,  // src, dst, protocol: what fragments use; pick it for VIPs that see fragments
  kSrcIp = 2,       // client affinity by source address
  kSrcIpPort = 3,   // source address and source port
};

// How a VIP picks the backend of a new flow (IPVS's usual schedulers beside Maglev). Maglev and
// source-hash decide alike on every mux; the others are decided by each worker alone.
enum class Scheduler : uint8_t {
  kMaglev = 0,      // Maglev table on the VIP's hash fields
  kSourceHash = 1,  // Maglev table on the client address: client affinity across muxes
  kWrr = 2,         // weighted round robin (smooth, per worker)
  kWlc = 3,         // weighted least connections (the worker's own active flows)
  kRandom = 4,      // weighted random (a random entry of the Maglev table)
};

// Administrative state of a backend: in service, draining before a shutdown, or offline.
enum class AdminState : uint8_t {
  kActive = 0,    // new and existing flows
  kDraining = 1,  // no new flows; existing flows continue until they end
  kOffline = 2,   // no new flows; existing flows cut (TCP answered with RST)
};

enum class Encap : uint8_t {
  kIpip = 0,  // IPv4-in-IPv4, IPv6-in-IPv6, IPv4-in-IPv6 or IPv6-in-IPv4 by the two families
  kGre = 1,   // GRE (RFC 2784/2890), optional key
  kGue = 2,   // GUE variant 1: the inner IP packet straight after a UDP header
};

// A VIP is matched on (address, protocol, port). Port 0 means "all ports" of that protocol.
struct VipKey {
  IpAddr addr;
  uint8_t proto = 0;
  uint16_t port = 0;
  bool operator==(const VipKey& o) const {
    return addr == o.addr && proto == o.proto && port == o.port;
  }
};

enum class Verdict : uint8_t {
  kDrop = 0,  // counted under a DropReason
  kTx = 1,    // the packet buffer now holds a frame to transmit (encapsulated, or a reply)
  kPass = 2,  // not VIP traffic: hand it to the kernel (ARP, ND, BGP, SSH, ...)
  kHeld = 3,  // copied into a persistence hold slot (persistence.h): the buffer is free again
};

// Every drop has a name. Order is part of the addon's API (counters are reported by name).
#define L4MUX_DROP_REASONS(X)                                                          \
  X(kEthTruncated, "eth_truncated")                                                    \
  X(kVlanTruncated, "vlan_truncated")                                                  \
  X(kIpv4Truncated, "ipv4_truncated")                                                  \
  X(kIpv4BadVersion, "ipv4_bad_version")                                               \
  X(kIpv4BadHeaderLength, "ipv4_bad_header_length")                                    \
  X(kIpv4BadTotalLength, "ipv4_bad_total_length")                                      \
  X(kIpv6Truncated, "ipv6_truncated")                                                  \
  X(kIpv6BadVersion, "ipv6_bad_version")                                               \
  X(kIpv6BadPayloadLength, "ipv6_bad_payload_length")                                  \
  X(kIpv6ExtHeaderTruncated, "ipv6_ext_header_truncated")                              \
  X(kIpv6TooManyExtHeaders, "ipv6_too_many_ext_headers")                               \
  X(kTcpTruncated, "tcp_truncated")                                                    \
  X(kTcpBadDataOffset, "tcp_bad_data_offset")                                          \
  X(kUdpTruncated, "udp_truncated")                                                    \
  X(kUdpBadLength, "udp_bad_length")                                                   \
  X(kIcmpTruncated, "icmp_truncated")                                                  \
  X(kIcmpEmbeddedTruncated, "icmp_embedded_truncated")                                 \
  X(kUnsupportedL4, "unsupported_l4_protocol")                                         \
  X(kNoVipForPort, "no_vip_for_port")                                                  \
  X(kFragmentNoVip, "fragment_no_unique_vip")                                          \
  X(kNoBackend, "no_backend")                                                          \
  X(kIcmpEchoDisabled, "icmp_echo_disabled")                                           \
  X(kIcmpUnsupported, "icmp_unsupported")                                              \
  X(kIcmpErrorNoFlow, "icmp_error_no_vip")                                             \
  X(kHeadroomExhausted, "headroom_exhausted")                                          \
  X(kOuterSourceMissing, "outer_source_missing")                                       \
  X(kIcmpEmbeddedMalformed, "icmp_embedded_malformed")                                 \
  X(kMtuExceeded, "mtu_exceeded")                                                      \
  X(kIcmpRateLimited, "icmp_too_big_rate_limited")                                     \
  X(kBackendOffline, "backend_offline")                                               \
  X(kRedirectMalformed, "redirect_malformed")                                          \
  X(kRedirectUnknownPeer, "redirect_unknown_peer")                                    \
  X(kFragmentTooLong, "fragment_past_65535")                                           \
  X(kFragmentOverlapsHeader, "fragment_overlaps_tcp_header")                           \
  X(kTcpBadFlags, "tcp_bad_flags")                                                     \
  X(kIcmpTooBigMtuTooSmall, "icmp_too_big_mtu_below_minimum")                          \
  X(kIcmpEchoRateLimited, "icmp_echo_rate_limited")                                   \
  X(kPuntOverflow, "persistence_punt_overflow")                                        \
  X(kPuntTooLarge, "persistence_punt_too_large")                                       \
  X(kPuntExpired, "persistence_punt_expired")                                          \
  X(kPuntRefused, "persistence_answer_refused")

enum class DropReason : uint8_t {
#define L4MUX_X(name, str) name,
  L4MUX_DROP_REASONS(L4MUX_X)
#undef L4MUX_X
  kCount
};

inline constexpr size_t kDropReasonCount = static_cast<size_t>(DropReason::kCount);

inline std::string_view drop_reason_name(DropReason r) {
  static constexpr std::string_view kNames[] = {
#define L4MUX_X(name, str) str,
      L4MUX_DROP_REASONS(L4MUX_X)
#undef L4MUX_X
  };
  return static_cast<size_t>(r) < kDropReasonCount ? kNames[static_cast<size_t>(r)] : "unknown";
}

}  // namespace l4mux
