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
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "bytes.h"
#include "checksum.h"
#include "defaults.h"
#include "types.h"

namespace l4mux {

inline constexpr uint16_t kDefaultGuePort = defaults::kGuePort;
inline constexpr uint8_t kOuterTtl = defaults::kOuterTtl;

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

// GUE source ports come from the ephemeral range so that backends' RSS spreads flows.
inline constexpr uint16_t kGueSourcePortBase = 49152;
inline constexpr uint16_t kGueSourcePortSpan = 16384;

// Writes the outer headers so that the frame ends with the inner packet. `headroom_start` is
// the first writable byte of the buffer; bytes in front of the new frame may be overwritten.
// `flow_hash` spreads GUE source ports, IPv6 flow labels and IPv4 identifications. Returns
// the start of the new frame (and its length in *frame_len), or nullptr when there is not
// enough room in front of the inner packet. Inline: it is the per-packet half of the work.
inline uint8_t* encapsulate(const InnerPacket& inner, uint8_t* headroom_start, const TunnelHeader& t,
                            uint64_t flow_hash, uint32_t* frame_len) {
  const std::ptrdiff_t room = inner.ip - headroom_start;
  uint8_t* const frame = inner.ip - t.len;
  if (room >= static_cast<std::ptrdiff_t>(TunnelHeader::kCapacity)) {
    std::memcpy(inner.ip - TunnelHeader::kCapacity, t.bytes.data(), TunnelHeader::kCapacity);
  } else if (room >= t.len) {
    std::memcpy(frame, t.bytes.data() + TunnelHeader::kCapacity - t.len, t.len);
  } else {
    return nullptr;
  }

  uint8_t* ip = frame + kEthHeaderLen;
  const uint32_t ip_len = t.outer == Family::kIpv4 ? kIpv4HeaderLen : kIpv6HeaderLen;
  const uint32_t outer_payload_len = t.len - kEthHeaderLen - ip_len + inner.length;
  if (t.outer == Family::kIpv4) {
    ip[1] = inner.traffic_class;  // DSCP and ECN copied (RFC 6040 normal mode)
    const auto total = static_cast<uint16_t>(kIpv4HeaderLen + outer_payload_len);
    // IPv6 is never fragmented on path, so its tunnel must not be either. A fragmentable
    // packet's identification must differ between flows' packets in flight; the flow hash
    // does that without shared state.
    const bool df = inner.dont_fragment || inner.family == Family::kIpv6;
    const uint16_t id = df ? 0 : static_cast<uint16_t>(flow_hash >> 16);
    const uint16_t flags = df ? kIpv4DontFragment : 0;
    store_be16(ip + 2, total);
    store_be16(ip + 4, id);
    store_be16(ip + 6, flags);
    store_be16(ip + 10, csum_fold(t.fixed_sum + inner.traffic_class + total + id + flags));
  } else {
    // Version 6, traffic class, and a flow label from the flow hash for ECMP toward backends.
    const uint32_t flow_label = static_cast<uint32_t>(flow_hash >> 40) & 0xfffff;
    store_be32(ip, (6u << 28) | (uint32_t{inner.traffic_class} << 20) | flow_label);
    store_be16(ip + 4, static_cast<uint16_t>(outer_payload_len));
  }

  if (t.kind == Encap::kGue) {
    uint8_t* udp = ip + ip_len;
    const auto src_port =
        static_cast<uint16_t>(kGueSourcePortBase + (flow_hash >> 20) % kGueSourcePortSpan);
    store_be16(udp, src_port);
    store_be16(udp + 4, static_cast<uint16_t>(outer_payload_len));
    // A zero UDP checksum is valid over IPv4 (RFC 768). IPv6 requires one (RFC 8200).
    if (t.outer == Family::kIpv6) {
      // The length counts twice: in the pseudo-header and in the UDP header.
      const uint32_t sum = csum_partial(
          inner.ip, inner.length, t.fixed_sum + src_port + 2 * outer_payload_len);
      const uint16_t check = csum_fold(sum);
      store_be16(udp + 6, check == 0 ? 0xffff : check);
    }
  }
  *frame_len = t.len + inner.length;
  return frame;
}

// The same for a one-off packet (tests, tools): builds the template first.
inline uint8_t* encapsulate(const InnerPacket& inner, uint8_t* headroom_start, const EncapParams& params,
                            uint64_t flow_hash, uint32_t* frame_len) {
  const TunnelHeader header = make_tunnel_header(params, inner.family);
  if (!header.usable()) return nullptr;
  return encapsulate(inner, headroom_start, header, flow_hash, frame_len);
}

}  // namespace l4mux
