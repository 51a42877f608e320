#include "encap.h"

#include <cstring>

#include "bytes.h"
#include "checksum.h"

namespace l4mux {
namespace {

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
  store_be16(p + kEthTypeOffset, outer == Family::kIpv4 ? kEthTypeIpv4 : kEthTypeIpv6);
  p += kEthHeaderLen;

  const uint8_t outer_proto = params.kind == Encap::kGre   ? kProtoGre
                              : params.kind == Encap::kGue ? kProtoUdp
                                                           : inner_ip_proto(inner);
  if (outer == Family::kIpv4) {
    // Per packet: traffic class, total length, identification, DF, checksum.
    p[0] = kIpv4VersionIhl;
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

}  // namespace l4mux
