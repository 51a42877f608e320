// Encapsulation toward a backend: Ethernet + outer IP (+ GRE or UDP for GUE) written in
// front of the inner IP packet, in the buffer's headroom. The inner packet's bytes are not
// touched. The outer family follows the backend's address: IPv4-in-IPv4, IPv6-in-IPv6,
// IPv4-in-IPv6 and IPv6-in-IPv4 all come from the same code.
//
// The headers toward one backend are the same for every packet of a VIP but for a few
// fields (lengths, traffic class, the flow's hash). So they are written once, when a
// snapshot is built (TunnelHeader), and encapsulating a packet is one copy of that template
// and those few fields: Katran and GLB Director do the same.
#pragma once

#include <array>
#include <cstdint>

#include "types.h"

namespace l4mux {

inline constexpr uint16_t kDefaultGuePort = 6080;
inline constexpr uint8_t kOuterTtl = 64;

// What a tunnel toward one backend is made of. Referenced, not copied.
struct EncapParams {
  Encap kind = Encap::kIpip;
  const IpAddr* outer_src = nullptr;  // family == backend family
  const IpAddr* backend = nullptr;
  bool has_gre_key = false;
  uint32_t gre_key = 0;
  uint16_t gue_port = kDefaultGuePort;
  const MacAddr* src_mac = nullptr;
  const MacAddr* dst_mac = nullptr;
};

inline constexpr uint32_t kGreBaseLen = 4;
inline constexpr uint32_t kGreKeyLen = 4;

// Bytes between the outer IP header and the inner packet: GRE (with its key), GUE's UDP header.
inline uint32_t tunnel_header_len(Encap kind, bool has_gre_key) {
  switch (kind) {
    case Encap::kIpip:
      return 0;
    case Encap::kGre:
      return kGreBaseLen + (has_gre_key ? kGreKeyLen : 0);
    case Encap::kGue:
      return kUdpHeaderLen;
  }
  return 0;
}

// Bytes written in front of the inner IP packet (Ethernet included).
inline uint32_t encap_overhead(Encap kind, Family outer, bool has_gre_key) {
  const uint32_t ip = outer == Family::kIpv4 ? kIpv4HeaderLen : kIpv6HeaderLen;
  return static_cast<uint32_t>(kEthHeaderLen) + ip + tunnel_header_len(kind, has_gre_key);
}

// The outer headers (Ethernet, IP, GRE or UDP) toward one backend for inner packets of one
// family, with the per-packet fields left zero.
struct TunnelHeader {
  // Ethernet (14) + IPv6 (40) + GRE with key or UDP (8) is the most there is: 62.
  static constexpr uint32_t kCapacity = 64;
  // Right-aligned: the headers are the last `len` bytes, so the whole array can be copied to
  // end where the inner packet begins (one fixed-size copy, which compiles to a few stores).
  alignas(16) std::array<uint8_t, kCapacity> bytes{};
  // One's-complement sum (unfolded) of the fixed 16-bit words under a checksum: the outer
  // IPv4 header's; for GUE over IPv6, those of the UDP header and its pseudo-header.
  uint32_t fixed_sum = 0;
  uint8_t len = 0;  // bytes of header; 0 when none can be built (see make_tunnel_header)
  Encap kind = Encap::kIpip;
  Family outer = Family::kNone;
  Family inner = Family::kNone;

  bool usable() const { return len != 0; }
};

// Builds the template. Not usable when the parameters lack an outer source of the backend's
// family (the packet is then dropped as outer_source_missing).
TunnelHeader make_tunnel_header(const EncapParams& params, Family inner);

struct InnerPacket {
  uint8_t* ip = nullptr;    // first byte of the inner IP header
  uint32_t length = 0;      // inner IP packet length
  Family family = Family::kNone;  // must be the family the header was made for
  uint8_t traffic_class = 0;
  bool dont_fragment = false;
};

// Writes the outer headers so that the frame ends with the inner packet. `headroom_start` is
// the first writable byte of the buffer; bytes in front of the new frame may be overwritten.
// `flow_hash` spreads GUE source ports, IPv6 flow labels and IPv4 identifications. Returns
// the start of the new frame (and its length in *frame_len), or nullptr when there is not
// enough room in front of the inner packet.
uint8_t* encapsulate(const InnerPacket& inner, uint8_t* headroom_start, const TunnelHeader& header,
                     uint64_t flow_hash, uint32_t* frame_len);

// The same for a one-off packet (tests, tools): builds the template first.
inline uint8_t* encapsulate(const InnerPacket& inner, uint8_t* headroom_start, const EncapParams& params,
                            uint64_t flow_hash, uint32_t* frame_len) {
  const TunnelHeader header = make_tunnel_header(params, inner.family);
  if (!header.usable()) return nullptr;
  return encapsulate(inner, headroom_start, header, flow_hash, frame_len);
}

}  // namespace l4mux
