#include "encap.h"

#include <cstring>

#include "bytes.h"
#include "checksum.h"

namespace l4mux {
namespace {

constexpr uint16_t kGreKeyPresent = 0x2000;
// GUE source ports come from the ephemeral range so that backends' RSS spreads flows.
constexpr uint16_t kGueSourcePortBase = 49152;
constexpr uint16_t kGueSourcePortSpan = 16384;

uint8_t inner_ip_proto(Family inner) { return inner == Family::kIpv4 ? kProtoIpip : kProtoIpv6; }

uint16_t inner_ethertype(Family inner) {
  return inner == Family::kIpv4 ? kEthTypeIpv4 : kEthTypeIpv6;
}

}  // namespace

uint8_t* encapsulate(const InnerPacket& inner, uint8_t* headroom_start, const EncapParams& params,
                     uint32_t* frame_len) {
  const Family outer = params.backend->family;
  const uint32_t overhead = encap_overhead(params.kind, outer, params.has_gre_key);
  if (inner.ip - headroom_start < static_cast<std::ptrdiff_t>(overhead)) return nullptr;

  uint8_t* frame = inner.ip - overhead;
  uint8_t* p = frame;

  std::memcpy(p, params.dst_mac->data(), 6);
  std::memcpy(p + 6, params.src_mac->data(), 6);
  store_be16(p + 12, outer == Family::kIpv4 ? kEthTypeIpv4 : kEthTypeIpv6);
  p += kEthHeaderLen;

  const uint32_t tunnel_len = tunnel_header_len(params.kind, params.has_gre_key);
  const uint32_t outer_payload_len = tunnel_len + inner.length;
  const uint8_t outer_proto = params.kind == Encap::kGre   ? kProtoGre
                              : params.kind == Encap::kGue ? kProtoUdp
                                                           : inner_ip_proto(inner.family);
  if (outer == Family::kIpv4) {
    p[0] = 0x45;
    p[1] = inner.traffic_class;  // DSCP and ECN copied (RFC 6040 normal mode)
    store_be16(p + 2, static_cast<uint16_t>(kIpv4HeaderLen + outer_payload_len));
    // IPv6 is never fragmented on path, so its tunnel must not be either.
    const bool df = inner.dont_fragment || inner.family == Family::kIpv6;
    store_be16(p + 4, df ? 0 : static_cast<uint16_t>(params.flow_hash >> 16));
    store_be16(p + 6, df ? 0x4000 : 0);
    p[8] = kOuterTtl;
    p[9] = outer_proto;
    store_be16(p + 10, 0);
    std::memcpy(p + 12, params.outer_src->bytes.data(), 4);
    std::memcpy(p + 16, params.backend->bytes.data(), 4);
    store_be16(p + 10, ipv4_header_checksum(p, kIpv4HeaderLen));
    p += kIpv4HeaderLen;
  } else {
    // Version 6, traffic class, and a flow label from the flow hash for ECMP toward backends.
    const uint32_t flow_label = static_cast<uint32_t>(params.flow_hash >> 40) & 0xfffff;
    store_be32(p, (6u << 28) | (uint32_t{inner.traffic_class} << 20) | flow_label);
    store_be16(p + 4, static_cast<uint16_t>(outer_payload_len));
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
      store_be16(p + 2, inner_ethertype(inner.family));
      if (params.has_gre_key) store_be32(p + 4, params.gre_key);
      break;
    case Encap::kGue: {
      const auto src_port = static_cast<uint16_t>(
          kGueSourcePortBase + (params.flow_hash >> 20) % kGueSourcePortSpan);
      store_be16(p, src_port);
      store_be16(p + 2, params.gue_port);
      store_be16(p + 4, static_cast<uint16_t>(outer_payload_len));
      store_be16(p + 6, 0);
      // A zero UDP checksum is valid over IPv4 (RFC 768). IPv6 requires one (RFC 8200).
      if (outer == Family::kIpv6) {
        uint32_t sum = pseudo_header_sum(*params.outer_src, *params.backend, kProtoUdp, outer_payload_len);
        sum = csum_partial(p, kUdpHeaderLen, sum);
        sum = csum_partial(inner.ip, inner.length, sum);
        uint16_t check = csum_fold(sum);
        store_be16(p + 6, check == 0 ? 0xffff : check);
      }
      break;
    }
  }
  *frame_len = overhead + inner.length;
  return frame;
}

}  // namespace l4mux
