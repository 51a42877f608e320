// Builds Ethernet frames for C++ tests and benchmarks (header-only, test support only).
#pragma once

#include <arpa/inet.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "bytes.h"
#include "checksum.h"
#include "types.h"

namespace l4mux::testing {

inline IpAddr ip(const std::string& text) {
  uint8_t buf[16] = {};
  if (inet_pton(AF_INET, text.c_str(), buf) == 1) return IpAddr::v4(buf);
  if (inet_pton(AF_INET6, text.c_str(), buf) == 1) return IpAddr::v6(buf);
  throw std::invalid_argument("bad address " + text);
}

using Bytes = std::vector<uint8_t>;

struct L4Spec {
  uint8_t proto = kProtoTcp;
  uint16_t src_port = 40000;
  uint16_t dst_port = 80;
  uint8_t tcp_flags = 0x02;  // SYN
  Bytes payload = Bytes(2, 'x');  // not an initializer list: GCC 12 -O3 warns falsely on those
};

inline Bytes l4_segment(const IpAddr& src, const IpAddr& dst, const L4Spec& s) {
  Bytes seg;
  if (s.proto == kProtoTcp) {
    seg.assign(20, 0);
    store_be16(&seg[0], s.src_port);
    store_be16(&seg[2], s.dst_port);
    store_be32(&seg[4], 1000);
    seg[12] = 5 << 4;
    seg[13] = s.tcp_flags;
    store_be16(&seg[14], 65535);
  } else {
    seg.assign(8, 0);
    store_be16(&seg[0], s.src_port);
    store_be16(&seg[2], s.dst_port);
    store_be16(&seg[4], static_cast<uint16_t>(8 + s.payload.size()));
  }
  seg.insert(seg.end(), s.payload.begin(), s.payload.end());
  finalize_l4_checksum(seg.data(), static_cast<uint32_t>(seg.size()), src, dst, s.proto);
  return seg;
}

struct IpSpec {
  IpAddr src;
  IpAddr dst;
  uint8_t proto = kProtoTcp;
  bool dont_fragment = true;
  bool more_fragments = false;
  uint16_t fragment_offset = 0;  // bytes, multiple of 8
  uint8_t tos = 0;
};

// An IPv4 or IPv6 packet (by the family of src) carrying `payload`. IPv6 fragments get a
// fragment extension header.
inline Bytes ip_packet(const IpSpec& s, const Bytes& payload) {
  Bytes pkt;
  if (s.src.is_v4()) {
    pkt.assign(20, 0);
    pkt[0] = 0x45;
    pkt[1] = s.tos;
    store_be16(&pkt[2], static_cast<uint16_t>(20 + payload.size()));
    store_be16(&pkt[4], 0x4242);
    store_be16(&pkt[6], static_cast<uint16_t>((s.dont_fragment ? 0x4000 : 0) | (s.more_fragments ? 0x2000 : 0) |
                                              (s.fragment_offset / 8)));
    pkt[8] = 64;
    pkt[9] = s.proto;
    std::copy(s.src.bytes.begin(), s.src.bytes.begin() + 4, pkt.begin() + 12);
    std::copy(s.dst.bytes.begin(), s.dst.bytes.begin() + 4, pkt.begin() + 16);
    store_be16(&pkt[10], ipv4_header_checksum(pkt.data(), 20));
  } else {
    const bool fragment = s.more_fragments || s.fragment_offset != 0;
    pkt.assign(40, 0);
    store_be32(&pkt[0], (6u << 28) | (uint32_t{s.tos} << 20));
    store_be16(&pkt[4], static_cast<uint16_t>(payload.size() + (fragment ? 8 : 0)));
    pkt[6] = fragment ? 44 : s.proto;
    pkt[7] = 64;
    std::copy(s.src.bytes.begin(), s.src.bytes.end(), pkt.begin() + 8);
    std::copy(s.dst.bytes.begin(), s.dst.bytes.end(), pkt.begin() + 24);
    if (fragment) {
      uint8_t frag[8] = {s.proto, 0, 0, 0, 0, 0, 0x42, 0x42};
      store_be16(frag + 2, static_cast<uint16_t>(s.fragment_offset | (s.more_fragments ? 1 : 0)));
      pkt.insert(pkt.end(), frag, frag + 8);
    }
  }
  pkt.insert(pkt.end(), payload.begin(), payload.end());
  return pkt;
}

inline Bytes ethernet(const Bytes& ip_pkt, int vlan = -1) {
  Bytes f = {0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0xfe};
  if (vlan >= 0) {
    f.push_back(0x81);
    f.push_back(0x00);
    f.push_back(static_cast<uint8_t>(vlan >> 8));
    f.push_back(static_cast<uint8_t>(vlan));
  }
  const uint16_t type = (ip_pkt[0] >> 4) == 6 ? kEthTypeIpv6 : kEthTypeIpv4;
  f.push_back(static_cast<uint8_t>(type >> 8));
  f.push_back(static_cast<uint8_t>(type));
  f.insert(f.end(), ip_pkt.begin(), ip_pkt.end());
  if (f.size() < 60) f.resize(60, 0);
  return f;
}

// A complete TCP/UDP frame: the common case of tests and benchmarks.
inline Bytes flow_frame(const std::string& src, const std::string& dst, const L4Spec& l4, int vlan = -1) {
  const IpAddr s = ip(src);
  const IpAddr d = ip(dst);
  return ethernet(ip_packet(IpSpec{s, d, l4.proto}, l4_segment(s, d, l4)), vlan);
}

}  // namespace l4mux::testing
