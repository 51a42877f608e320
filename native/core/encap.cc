#include "encap.h"

#include <cstring>

#include "bytes.h"
#include "checksum.h"

namespace l4mux {
namespace {

constexpr uint16_t kGreKeyPresent = 0x2000;
constexpr uint16_t kIpv4DontFragment = 0x4000;
// GUE source ports come from the ephemeral range so that backends' RSS spreads flows.
constexpr uint16_t kGueSourcePortBase = 49152;
constexpr uint16_t kGueSourcePortSpan = 16384;

uint8_t inner_ip_proto(Family inner) { return inner == Family::kIpv4 ? kProtoIpip : kProtoIpv6; }

uint16_t inner_ethertype(Family inner) {
  return inner == Family::kIpv4 ? kEthTypeIpv4 : kEthTypeIpv6;
}

// Sum of the big-endian 16-bit words of `len` (even) bytes, unfolded.
uint32_t word_sum(const uint8_t* p, uint32_t len) {
  uint32_t sum = 0;
  for (uint32_t i = 0; i + 1 < len; i += 2) sum += load_be16(p + i);
  return sum;
}

}  // namespace

TunnelHeader make_tunnel_header(const EncapParams& params, Family inner) {
  TunnelHeader t;
  const Family outer = params.backend->family;
  if (params.outer_src == nullptr || params.outer_src->family != outer) return t;  // not usable
  const uint32_t len = encap_overhead(params.kind, outer, params.has_gre_key);
  t.kind = params.kind;
  t.outer = outer;
  t.inner = inner;

  uint8_t* p = t.bytes.data() + TunnelHeader::kCapacity - len;
  std::memcpy(p, params.dst_mac->data(), 6);
  std::memcpy(p + 6, params.src_mac->data(), 6);
  store_be16(p + 12, outer == Family::kIpv4 ? kEthTypeIpv4 : kEthTypeIpv6);
  p += kEthHeaderLen;

  const uint8_t outer_proto = params.kind == Encap::kGre   ? kProtoGre
                              : params.kind == Encap::kGue ? kProtoUdp
                                                           : inner_ip_proto(inner);
  if (outer == Family::kIpv4) {
    // Per packet: traffic class, total length, identification, DF, checksum.
    p[0] = 0x45;
    p[8] = kOuterTtl;
    p[9] = outer_proto;
    std::memcpy(p + 12, params.outer_src->bytes.data(), 4);
    std::memcpy(p + 16, params.backend->bytes.data(), 4);
    t.fixed_sum = word_sum(p, kIpv4HeaderLen);
    p += kIpv4HeaderLen;
  } else {
    // Per packet: traffic class, flow label, payload length.
    p[6] = outer_proto;
    p[7] = kOuterTtl;
    std::memcpy(p + 8, params.outer_src->bytes.data(), 16);
    std::memcpy(p + 24, params.backend->bytes.data(), 16);
    p += kIpv6HeaderLen;
  }

  switch (params.kind) {
    case Encap::kIpip:
      break;
    case Encap::kGre:
      store_be16(p, params.has_gre_key ? kGreKeyPresent : 0);
      store_be16(p + 2, inner_ethertype(inner));
      if (params.has_gre_key) store_be32(p + 4, params.gre_key);
      break;
    case Encap::kGue:
      // Per packet: source port, length, and over IPv6 the checksum.
      store_be16(p + 2, params.gue_port);
      if (outer == Family::kIpv6) {
        t.fixed_sum = word_sum(params.outer_src->bytes.data(), 16) +
                      word_sum(params.backend->bytes.data(), 16) + kProtoUdp + params.gue_port;
      }
      break;
  }
  t.len = static_cast<uint8_t>(len);
  return t;
}

uint8_t* encapsulate(const InnerPacket& inner, uint8_t* headroom_start, const TunnelHeader& t,
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

}  // namespace l4mux
