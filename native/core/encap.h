// Encapsulation toward a backend: Ethernet + outer IP (+ GRE or UDP for GUE) written in
// front of the inner IP packet, in the buffer's headroom. The inner packet's bytes are not
// touched. The outer family follows the backend's address: IPv4-in-IPv4, IPv6-in-IPv6,
// IPv4-in-IPv6 and IPv6-in-IPv4 all come from the same code.
#pragma once

#include <cstdint>

#include "types.h"

namespace l4mux {

inline constexpr uint16_t kDefaultGuePort = 6080;
inline constexpr uint8_t kOuterTtl = 64;

// Referenced, not copied: built per packet from the snapshot, which outlives the call.
struct EncapParams {
  Encap kind = Encap::kIpip;
  const IpAddr* outer_src = nullptr;  // family == backend family
  const IpAddr* backend = nullptr;
  bool has_gre_key = false;
  uint32_t gre_key = 0;
  uint16_t gue_port = kDefaultGuePort;
  uint64_t flow_hash = 0;  // spreads GUE source ports and IPv6 flow labels
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

// Bytes written in front of the inner IP packet (Ethernet included). Inline: every forwarded
// packet asks.
inline uint32_t encap_overhead(Encap kind, Family outer, bool has_gre_key) {
  const uint32_t ip = outer == Family::kIpv4 ? kIpv4HeaderLen : kIpv6HeaderLen;
  return static_cast<uint32_t>(kEthHeaderLen) + ip + tunnel_header_len(kind, has_gre_key);
}

struct InnerPacket {
  uint8_t* ip = nullptr;    // first byte of the inner IP header
  uint32_t length = 0;      // inner IP packet length
  Family family = Family::kNone;
  uint8_t traffic_class = 0;
  bool dont_fragment = false;
};

// Writes the outer headers so that the frame ends with the inner packet. `headroom_start` is
// the first writable byte of the buffer. Returns the start of the new frame (and its length
// in *frame_len), or nullptr when there is not enough room in front of the inner packet.
uint8_t* encapsulate(const InnerPacket& inner, uint8_t* headroom_start, const EncapParams& params,
                     uint32_t* frame_len);

}  // namespace l4mux
