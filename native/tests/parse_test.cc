// parse_frame on hand-built frames: every supported encapsulation, and every malformed case
// the parser names. Frames are copied into exactly-sized heap buffers before parsing, so
// that under ASan any read past the frame is reported.
#include "parse.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "bytes.h"

namespace l4mux {
namespace {

// ---- frame builders (checksums are left zero: the parser does not verify them) ------------

using Bytes = std::vector<uint8_t>;

IpAddr addr(const char* text) {
  uint8_t buf[16] = {};
  if (inet_pton(AF_INET, text, buf) == 1) return IpAddr::v4(buf);
  if (inet_pton(AF_INET6, text, buf) == 1) return IpAddr::v6(buf);
  ADD_FAILURE() << "bad address " << text;
  return IpAddr{};
}

const IpAddr kClient4 = addr("198.51.100.7");
const IpAddr kVip4 = addr("192.0.2.10");
const IpAddr kBackend4 = addr("10.1.0.2");
const IpAddr kRouter4 = addr("203.0.113.1");
const IpAddr kClient6 = addr("2001:db8:c::7");
const IpAddr kVip6 = addr("2001:db8::10");
const IpAddr kRouter6 = addr("2001:db8:ff::1");

constexpr uint8_t kSctp = 132;

Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

Bytes payload(size_t n) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>('a' + i % 26);
  return b;
}

// A TCP header with `doff` in its data offset field; its real size is max(doff, 5) words.
Bytes tcp(uint16_t sport, uint16_t dport, uint8_t flags = 0x02, uint8_t doff = 5, size_t data = 4) {
  Bytes h(std::max<size_t>(doff, 5) * 4, 0);
  store_be16(&h[0], sport);
  store_be16(&h[2], dport);
  store_be32(&h[4], 1000);
  h[12] = static_cast<uint8_t>(doff << 4);
  h[13] = flags;
  store_be16(&h[14], 65535);
  for (size_t i = 20; i + 1 < h.size(); i += 1) h[i] = 1;  // NOP options
  return cat({h, payload(data)});
}

// A UDP header; `len_field` < 0 writes the true length.
Bytes udp(uint16_t sport, uint16_t dport, size_t data = 4, int len_field = -1) {
  Bytes h(8, 0);
  store_be16(&h[0], sport);
  store_be16(&h[2], dport);
  store_be16(&h[4], static_cast<uint16_t>(len_field < 0 ? 8 + data : len_field));
  return cat({h, payload(data)});
}

// ICMP / ICMPv6: type, code, checksum, then `rest` (the second word and any body).
Bytes icmp(uint8_t type, uint8_t code, const Bytes& rest) {
  return cat({{type, code, 0, 0}, rest});
}

Bytes echo(uint8_t type) { return icmp(type, 0, cat({{0x12, 0x34, 0, 1}, payload(8)})); }

struct V4 {
  IpAddr src = kClient4;
  IpAddr dst = kVip4;
  uint8_t proto = kProtoTcp;
  uint8_t tos = 0;
  bool df = true;
  bool mf = false;
  uint16_t frag_offset = 0;  // bytes, a multiple of 8
  Bytes options{};           // a multiple of 4 bytes
  int total_length = -1;     // < 0: the true length
  int ihl = -1;              // < 0: the true header length
  uint8_t version = 4;
};

Bytes ipv4(const V4& v, const Bytes& body) {
  Bytes h(20, 0);
  const size_t hlen = 20 + v.options.size();
  h[0] =
      static_cast<uint8_t>((v.version << 4) | (v.ihl < 0 ? hlen / 4 : static_cast<size_t>(v.ihl)));
  h[1] = v.tos;
  store_be16(&h[2],
             static_cast<uint16_t>(v.total_length < 0 ? hlen + body.size() : v.total_length));
  store_be16(&h[4], 0x4242);
  store_be16(&h[6], static_cast<uint16_t>((v.df ? 0x4000 : 0) | (v.mf ? 0x2000 : 0) |
                                          (v.frag_offset / 8)));
  h[8] = 64;
  h[9] = v.proto;
  std::memcpy(&h[12], v.src.bytes.data(), 4);
  std::memcpy(&h[16], v.dst.bytes.data(), 4);
  return cat({h, v.options, body});
}

struct V6 {
  IpAddr src = kClient6;
  IpAddr dst = kVip6;
  uint8_t next = kProtoTcp;
  uint8_t tc = 0;
  int payload_length = -1;  // < 0: the true length
  uint8_t version = 6;
};

// `body` is everything after the fixed header: extension headers and the L4 segment.
Bytes ipv6(const V6& v, const Bytes& body) {
  Bytes h(40, 0);
  store_be32(&h[0], (uint32_t{v.version} << 28) | (uint32_t{v.tc} << 20) | 0x12345);
  store_be16(&h[4], static_cast<uint16_t>(v.payload_length < 0 ? body.size() : v.payload_length));
  h[6] = v.next;
  h[7] = 64;
  std::memcpy(&h[8], v.src.bytes.data(), 16);
  std::memcpy(&h[24], v.dst.bytes.data(), 16);
  return cat({h, body});
}

// Hop-by-hop, routing or destination options header of (units + 1) * 8 bytes, filled with
// one PadN option.
Bytes ext(uint8_t next, uint8_t units = 0) {
  Bytes h((size_t{units} + 1) * 8, 0);
  h[0] = next;
  h[1] = units;
  h[2] = 1;  // PadN
  h[3] = static_cast<uint8_t>(h.size() - 4);
  return h;
}

Bytes frag6(uint8_t next, uint16_t offset_bytes, bool more) {
  Bytes h(8, 0);
  h[0] = next;
  store_be16(&h[2], static_cast<uint16_t>(offset_bytes | (more ? 1 : 0)));
  store_be32(&h[4], 0xabcd0001);
  return h;
}

// Authentication header: (len_field + 2) * 4 bytes.
Bytes ah(uint8_t next, uint8_t len_field = 4) {
  Bytes h((size_t{len_field} + 2) * 4, 0);
  h[0] = next;
  h[1] = len_field;
  store_be32(&h[4], 0x100);  // SPI
  return h;
}

struct Tag {
  uint16_t tpid;
  uint16_t tci;
};

// Ethernet with optional tags, padded to the 60-byte minimum like a NIC would.
Bytes eth(uint16_t type, const Bytes& l3, std::initializer_list<Tag> tags = {}, bool pad = true) {
  Bytes f = {0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0xfe};
  for (const Tag& t : tags) {
    f.push_back(static_cast<uint8_t>(t.tpid >> 8));
    f.push_back(static_cast<uint8_t>(t.tpid));
    f.push_back(static_cast<uint8_t>(t.tci >> 8));
    f.push_back(static_cast<uint8_t>(t.tci));
  }
  f.push_back(static_cast<uint8_t>(type >> 8));
  f.push_back(static_cast<uint8_t>(type));
  f.insert(f.end(), l3.begin(), l3.end());
  if (pad && f.size() < 60) f.resize(60, 0);
  return f;
}

Bytes eth4(const Bytes& l3) { return eth(kEthTypeIpv4, l3); }
Bytes eth6(const Bytes& l3) { return eth(kEthTypeIpv6, l3); }

// Frames that end exactly with the IP packet (no padding), so that truncations are real.
Bytes raw4(const Bytes& ip) { return eth(kEthTypeIpv4, ip, {}, false); }
Bytes raw6(const Bytes& ip) { return eth(kEthTypeIpv6, ip, {}, false); }

Bytes v4_tcp(uint16_t sport = 40000, uint16_t dport = 80) {
  return eth4(ipv4({}, tcp(sport, dport)));
}

// ---- parsing helpers -------------------------------------------------------------------

struct Parsed {
  ParseResult result;
  ParsedPacket pkt;
};

// Parses the first n bytes of `f` from an exactly-sized heap copy.
Parsed parse(const Bytes& f, size_t n = SIZE_MAX) {
  n = std::min(n, f.size());
  auto buf = std::make_unique<uint8_t[]>(n);
  if (n > 0) std::memcpy(buf.get(), f.data(), n);
  Parsed out;
  out.result = parse_frame(buf.get(), static_cast<uint32_t>(n), out.pkt);
  return out;
}

std::string outcome(const ParseResult& r) {
  switch (r.status) {
    case ParseStatus::kOk:
      return "ok";
    case ParseStatus::kNotIp:
      return "not_ip";
    case ParseStatus::kMalformed:
      return "drop:" + std::string(drop_reason_name(r.reason));
  }
  return "?";
}

std::string outcome(const Bytes& f) { return outcome(parse(f).result); }

std::string drop(DropReason r) { return "drop:" + std::string(drop_reason_name(r)); }

// The invariants every kOk result must satisfy, whatever the frame.
void expect_in_bounds(const ParsedPacket& p, size_t len) {
  EXPECT_LE(p.l3_offset, len);
  EXPECT_LE(size_t{p.l3_offset} + p.l3_length, len);
  EXPECT_GE(p.l4_offset, p.l3_offset);
  EXPECT_LE(p.l4_offset, size_t{p.l3_offset} + p.l3_length);
}

// ---- valid frames ------------------------------------------------------------------------

TEST(ParseFrame, Ipv4Tcp) {
  const Bytes f = eth4(ipv4({.tos = 0xb8}, tcp(40000, 80, 0x12)));
  const Parsed r = parse(f);
  ASSERT_EQ(outcome(r.result), "ok");
  const ParsedPacket& p = r.pkt;
  EXPECT_EQ(p.family, Family::kIpv4);
  EXPECT_EQ(p.proto, kProtoTcp);
  EXPECT_EQ(p.l3_offset, 14);
  EXPECT_EQ(p.l4_offset, 34);
  EXPECT_EQ(p.l3_length, 20 + 20 + 4);
  EXPECT_EQ(p.src, kClient4);
  EXPECT_EQ(p.dst, kVip4);
  EXPECT_EQ(p.src_port, 40000);
  EXPECT_EQ(p.dst_port, 80);
  EXPECT_EQ(p.tcp_flags, 0x12);
  EXPECT_EQ(p.traffic_class, 0xb8);
  EXPECT_TRUE(p.dont_fragment);
  EXPECT_FALSE(p.is_fragment);
  EXPECT_TRUE(p.has_l4);
  EXPECT_FALSE(p.has_vlan);
  EXPECT_FALSE(p.embedded.present);
}

TEST(ParseFrame, Ipv4TcpWithOptionsInTcpHeader) {
  const Parsed r = parse(eth4(ipv4({}, tcp(1, 2, 0x10, 15, 0))));
  ASSERT_EQ(outcome(r.result), "ok");
  EXPECT_EQ(r.pkt.l3_length, 80);
  EXPECT_EQ(r.pkt.tcp_flags, 0x10);
}

TEST(ParseFrame, Ipv4Udp) {
  const Parsed r = parse(eth4(ipv4({.proto = kProtoUdp, .df = false}, udp(5353, 53, 30))));
  ASSERT_EQ(outcome(r.result), "ok");
  EXPECT_EQ(r.pkt.proto, kProtoUdp);
  EXPECT_EQ(r.pkt.src_port, 5353);
  EXPECT_EQ(r.pkt.dst_port, 53);
  EXPECT_EQ(r.pkt.l3_length, 20 + 8 + 30);
  EXPECT_EQ(r.pkt.tcp_flags, 0);
  EXPECT_FALSE(r.pkt.dont_fragment);
  EXPECT_TRUE(r.pkt.has_l4);
}

TEST(ParseFrame, Ipv4UdpLengthShorterThanPayloadIsAccepted) {
  // Trailing bytes after the UDP datagram (UDP options) are legal.
  const Parsed r = parse(eth4(ipv4({.proto = kProtoUdp}, udp(1, 2, 20, 12))));
  EXPECT_EQ(outcome(r.result), "ok");
}

TEST(ParseFrame, Ipv4IcmpEcho) {
  const Parsed r = parse(eth4(ipv4({.proto = kProtoIcmp}, echo(8))));
  ASSERT_EQ(outcome(r.result), "ok");
  EXPECT_EQ(r.pkt.proto, kProtoIcmp);
  EXPECT_EQ(r.pkt.icmp_type, 8);
  EXPECT_EQ(r.pkt.icmp_code, 0);
  EXPECT_EQ(r.pkt.src_port, 0);
  EXPECT_EQ(r.pkt.dst_port, 0);
  EXPECT_TRUE(r.pkt.has_l4);
  EXPECT_FALSE(r.pkt.embedded.present);
}

TEST(ParseFrame, Ipv4IcmpInformationalNeedsOnlyFourBytes) {
  const Parsed r = parse(eth4(ipv4({.proto = kProtoIcmp}, icmp(9, 0, {}))));  // router advert
  ASSERT_EQ(outcome(r.result), "ok");
  EXPECT_EQ(r.pkt.icmp_type, 9);
}

TEST(ParseFrame, Vlan) {
  const Parsed r =
      parse(eth(kEthTypeIpv4, ipv4({}, tcp(40000, 80)), {{kEthTypeVlan, 0x2000 | 42}}));
  ASSERT_EQ(outcome(r.result), "ok");
  EXPECT_TRUE(r.pkt.has_vlan);
  EXPECT_EQ(r.pkt.vlan_tci, 0x2000 | 42);
  EXPECT_EQ(r.pkt.l3_offset, 18);
  EXPECT_EQ(r.pkt.l4_offset, 38);
  EXPECT_EQ(r.pkt.dst_port, 80);
}

TEST(ParseFrame, QinQ) {
  const Parsed r = parse(eth(kEthTypeIpv6, ipv6({.next = kProtoUdp}, udp(1000, 53)),
                             {{kEthTypeQinQ, 100}, {kEthTypeVlan, 200}}));
  ASSERT_EQ(outcome(r.result), "ok");
  EXPECT_TRUE(r.pkt.has_vlan);
  EXPECT_EQ(r.pkt.vlan_tci, 100);  // the outer (service) tag
  EXPECT_EQ(r.pkt.l3_offset, 22);
  EXPECT_EQ(r.pkt.l4_offset, 62);
  EXPECT_EQ(r.pkt.family, Family::kIpv6);
  EXPECT_EQ(r.pkt.dst_port, 53);
}

TEST(ParseFrame, DoubleDot1qAndLoneServiceTag) {
  EXPECT_EQ(outcome(eth(kEthTypeIpv4, ipv4({}, tcp(1, 2)), {{kEthTypeVlan, 1}, {kEthTypeVlan, 2}})),
            "ok");
  const Parsed r = parse(eth(kEthTypeIpv4, ipv4({}, tcp(1, 2)), {{kEthTypeQinQ, 7}}));
  ASSERT_EQ(outcome(r.result), "ok");
  EXPECT_EQ(r.pkt.l3_offset, 18);
  EXPECT_EQ(r.pkt.vlan_tci, 7);
}

TEST(ParseFrame, ThirdTagOrServiceTagInsideIsNotIp) {
  EXPECT_EQ(outcome(eth(kEthTypeIpv4, ipv4({}, tcp(1, 2)),
                        {{kEthTypeQinQ, 1}, {kEthTypeVlan, 2}, {kEthTypeVlan, 3}})),
            "not_ip");
  EXPECT_EQ(outcome(eth(kEthTypeIpv4, ipv4({}, tcp(1, 2)), {{kEthTypeVlan, 1}, {kEthTypeQinQ, 2}})),
            "not_ip");
}

TEST(ParseFrame, NonIpEthertypeIsNotIp) {
  EXPECT_EQ(outcome(eth(0x0806, payload(28))), "not_ip");                       // ARP
  EXPECT_EQ(outcome(eth(0x88CC, payload(30), {{kEthTypeVlan, 5}})), "not_ip");  // LLDP, tagged
  EXPECT_EQ(outcome(eth(0x0800, {}, {}, false)), "drop:ipv4_truncated");        // IP, but empty
}

TEST(ParseFrame, Ipv4Options) {
  // NOP NOP NOP EOL, then a 40-byte maximum: IHL 6 and IHL 15.
  const Parsed a = parse(eth4(ipv4({.options = {1, 1, 1, 0}}, tcp(40001, 80))));
  ASSERT_EQ(outcome(a.result), "ok");
  EXPECT_EQ(a.pkt.l4_offset, 14 + 24);
  EXPECT_EQ(a.pkt.src_port, 40001);

  Bytes opts(40, 1);  // 40 NOPs
  const Parsed b = parse(eth4(ipv4({.proto = kProtoUdp, .options = opts}, udp(7, 9))));
  ASSERT_EQ(outcome(b.result), "ok");
  EXPECT_EQ(b.pkt.l4_offset, 14 + 60);
  EXPECT_EQ(b.pkt.l3_length, 60 + 12);
  EXPECT_EQ(b.pkt.dst_port, 9);
}

TEST(ParseFrame, Ipv4FirstFragment) {
  // A 1000-byte UDP datagram cut after 48 bytes: its UDP length counts the whole datagram.
  const Bytes dgram = udp(5000, 53, 992);
  const Parsed r = parse(eth4(ipv4({.proto = kProtoUdp, .df = false, .mf = true},
                                   Bytes(dgram.begin(), dgram.begin() + 48))));
  ASSERT_EQ(outcome(r.result), "ok");
  EXPECT_TRUE(r.pkt.is_fragment);
  EXPECT_TRUE(r.pkt.has_l4);
  EXPECT_EQ(r.pkt.src_port, 5000);
  EXPECT_EQ(r.pkt.dst_port, 53);
  EXPECT_FALSE(r.pkt.dont_fragment);
}

TEST(ParseFrame, Ipv4NonFirstFragment) {
  for (bool more : {true, false}) {
    const Parsed r =
        parse(eth4(ipv4({.proto = kProtoTcp, .df = false, .mf = more, .frag_offset = 1480},
                        payload(3))));  // not even a TCP header's worth: fine
    ASSERT_EQ(outcome(r.result), "ok");
    EXPECT_TRUE(r.pkt.is_fragment);
    EXPECT_FALSE(r.pkt.has_l4);
    EXPECT_EQ(r.pkt.proto, kProtoTcp);
    EXPECT_EQ(r.pkt.src_port, 0);
    EXPECT_EQ(r.pkt.dst_port, 0);
    EXPECT_EQ(r.pkt.l4_offset, 34);
    EXPECT_EQ(r.pkt.l3_length, 23);
  }
}

TEST(ParseFrame, Ipv4FirstFragmentMustHoldTheL4Header) {
  const Bytes seg = tcp(1, 2);
  EXPECT_EQ(outcome(eth4(ipv4({.mf = true}, Bytes(seg.begin(), seg.begin() + 16)))),
            drop(DropReason::kTcpTruncated));
  EXPECT_EQ(outcome(eth4(ipv4({.proto = kProtoUdp, .mf = true}, payload(4)))),
            drop(DropReason::kUdpTruncated));
  EXPECT_EQ(outcome(eth4(ipv4({.proto = kProtoIcmp, .mf = true}, payload(2)))),
            drop(DropReason::kIcmpTruncated));
  // TCP options cut off by the fragment boundary.
  const Bytes with_opts = tcp(1, 2, 0x02, 10, 0);
  EXPECT_EQ(outcome(eth4(ipv4({.mf = true}, Bytes(with_opts.begin(), with_opts.begin() + 24)))),
            drop(DropReason::kTcpBadDataOffset));
}

TEST(ParseFrame, TrailingEthernetPadding) {
  // 20 + 8 + 2 = 30 bytes of IP in a 60-byte frame: 16 bytes of padding, not in l3_length.
  const Bytes f = eth4(ipv4({.proto = kProtoUdp}, udp(1, 2, 2)));
  ASSERT_EQ(f.size(), 60u);
  Bytes dirty = f;
  for (size_t i = 44; i < dirty.size(); ++i) dirty[i] = 0xff;  // padding content is irrelevant
  for (const Bytes& frame : {f, dirty}) {
    const Parsed r = parse(frame);
    ASSERT_EQ(outcome(r.result), "ok");
    EXPECT_EQ(r.pkt.l3_length, 30);
    EXPECT_EQ(r.pkt.dst_port, 2);
  }
}

TEST(ParseFrame, Ipv6PaddingAndNoNextHeader) {
  Bytes f = eth6(ipv6({.next = kIpv6NoNextHeader}, {}));
  f.resize(f.size() + 6, 0xee);  // trailing bytes past the payload length
  const Parsed r = parse(f);
  ASSERT_EQ(outcome(r.result), "ok");
  EXPECT_EQ(r.pkt.proto, kIpv6NoNextHeader);
  EXPECT_FALSE(r.pkt.has_l4);
  EXPECT_EQ(r.pkt.l3_length, 40);
  EXPECT_EQ(r.pkt.l4_offset, 54);
}

TEST(ParseFrame, Ipv6Tcp) {
  const Parsed r = parse(eth6(ipv6({.tc = 0x2e}, tcp(40000, 443, 0x18))));
  ASSERT_EQ(outcome(r.result), "ok");
  const ParsedPacket& p = r.pkt;
  EXPECT_EQ(p.family, Family::kIpv6);
  EXPECT_EQ(p.proto, kProtoTcp);
  EXPECT_EQ(p.l3_offset, 14);
  EXPECT_EQ(p.l4_offset, 54);
  EXPECT_EQ(p.l3_length, 40 + 24);
  EXPECT_EQ(p.src, kClient6);
  EXPECT_EQ(p.dst, kVip6);
  EXPECT_EQ(p.src_port, 40000);
  EXPECT_EQ(p.dst_port, 443);
  EXPECT_EQ(p.tcp_flags, 0x18);
  EXPECT_EQ(p.traffic_class, 0x2e);
  EXPECT_TRUE(p.dont_fragment);
  EXPECT_FALSE(p.is_fragment);
  EXPECT_TRUE(p.has_l4);
}

TEST(ParseFrame, Ipv6Udp) {
  const Parsed r = parse(eth6(ipv6({.next = kProtoUdp}, udp(5353, 53, 100))));
  ASSERT_EQ(outcome(r.result), "ok");
  EXPECT_EQ(r.pkt.proto, kProtoUdp);
  EXPECT_EQ(r.pkt.src_port, 5353);
  EXPECT_EQ(r.pkt.dst_port, 53);
  EXPECT_EQ(r.pkt.l3_length, 40 + 108);
}

TEST(ParseFrame, Ipv6IcmpEcho) {
  const Parsed r = parse(eth6(ipv6({.next = kProtoIcmpv6}, echo(128))));
  ASSERT_EQ(outcome(r.result), "ok");
  EXPECT_EQ(r.pkt.proto, kProtoIcmpv6);
  EXPECT_EQ(r.pkt.icmp_type, 128);
  EXPECT_TRUE(r.pkt.has_l4);
}

TEST(ParseFrame, Ipv6ExtensionChainHbhDestOptsFragment) {
  // HBH -> destination options (24 bytes) -> fragment (first, M set) -> TCP.
  const Bytes body =
      cat({ext(kIpv6DestOptions), ext(kIpv6Fragment, 2), frag6(kProtoTcp, 0, true), tcp(40000, 443)});
  const Parsed r = parse(eth6(ipv6({.next = kIpv6HopByHop}, body)));
  ASSERT_EQ(outcome(r.result), "ok");
  EXPECT_EQ(r.pkt.proto, kProtoTcp);
  EXPECT_EQ(r.pkt.l4_offset, 14 + 40 + 8 + 24 + 8);
  EXPECT_TRUE(r.pkt.is_fragment);
  EXPECT_TRUE(r.pkt.has_l4);
  EXPECT_EQ(r.pkt.src_port, 40000);
  EXPECT_EQ(r.pkt.dst_port, 443);
}

TEST(ParseFrame, Ipv6RoutingAndAuthenticationHeaders) {
  const Bytes body = cat({ext(kIpv6Ah, 2), ah(kProtoUdp, 4), udp(1, 2)});
  const Parsed r = parse(eth6(ipv6({.next = kIpv6Routing}, body)));
  ASSERT_EQ(outcome(r.result), "ok");
  EXPECT_EQ(r.pkt.proto, kProtoUdp);
  EXPECT_EQ(r.pkt.l4_offset, 14 + 40 + 24 + 24);
  EXPECT_EQ(r.pkt.dst_port, 2);
  EXPECT_FALSE(r.pkt.is_fragment);
}

TEST(ParseFrame, Ipv6NonFirstFragment) {
  const Parsed r = parse(
      eth6(ipv6({.next = kIpv6HopByHop}, cat({ext(kIpv6Fragment), frag6(kProtoUdp, 1232, false), payload(5)}))));
  ASSERT_EQ(outcome(r.result), "ok");
  EXPECT_TRUE(r.pkt.is_fragment);
  EXPECT_FALSE(r.pkt.has_l4);
  EXPECT_EQ(r.pkt.proto, kProtoUdp);
  EXPECT_EQ(r.pkt.src_port, 0);
  EXPECT_EQ(r.pkt.l4_offset, 14 + 40 + 8 + 8);
}

TEST(ParseFrame, Ipv6FirstFragmentUdpLengthCountsTheWholeDatagram) {
  const Bytes dgram = udp(5000, 53, 1500);
  const Parsed r =
      parse(eth6(ipv6({.next = kIpv6Fragment},
                      cat({frag6(kProtoUdp, 0, true), Bytes(dgram.begin(), dgram.begin() + 64)}))));
  ASSERT_EQ(outcome(r.result), "ok");
  EXPECT_TRUE(r.pkt.is_fragment);
  EXPECT_TRUE(r.pkt.has_l4);
  EXPECT_EQ(r.pkt.src_port, 5000);
}

TEST(ParseFrame, Ipv6AtomicFragmentIsAWholePacket) {
  // RFC 6946: offset 0 and M clear.
  const Parsed r = parse(eth6(ipv6({.next = kIpv6Fragment}, cat({frag6(kProtoTcp, 0, false), tcp(1, 2)}))));
  ASSERT_EQ(outcome(r.result), "ok");
  EXPECT_FALSE(r.pkt.is_fragment);
  EXPECT_TRUE(r.pkt.has_l4);
  EXPECT_EQ(r.pkt.dst_port, 2);
}

TEST(ParseFrame, Ipv6EspIsOpaque) {
  const Parsed r = parse(eth6(ipv6({.next = kIpv6DestOptions}, cat({ext(kIpv6Esp), payload(40)}))));
  ASSERT_EQ(outcome(r.result), "ok");
  EXPECT_EQ(r.pkt.proto, kIpv6Esp);
  EXPECT_FALSE(r.pkt.has_l4);
  EXPECT_EQ(r.pkt.src_port, 0);
}

TEST(ParseFrame, Ipv6MaximumExtensionHeaders) {
  Bytes body;
  for (int i = 0; i < kMaxIpv6ExtHeaders; ++i) {
    const Bytes h = ext(i + 1 < kMaxIpv6ExtHeaders ? kIpv6DestOptions : kProtoTcp);
    body.insert(body.end(), h.begin(), h.end());
  }
  body = cat({body, tcp(1, 2)});
  const Parsed r = parse(eth6(ipv6({.next = kIpv6DestOptions}, body)));
  ASSERT_EQ(outcome(r.result), "ok");
  EXPECT_EQ(r.pkt.l4_offset, 14 + 40 + 8 * kMaxIpv6ExtHeaders);
  EXPECT_EQ(r.pkt.dst_port, 2);
}

TEST(ParseFrame, LargestPackets) {
  const Parsed a = parse(raw4(ipv4({.proto = kProtoUdp}, udp(1, 2, 65535 - 28))));
  ASSERT_EQ(outcome(a.result), "ok");
  EXPECT_EQ(a.pkt.l3_length, 65535);
  const Parsed b = parse(raw6(ipv6({.next = kProtoUdp}, udp(1, 2, 65535 - 48))));
  ASSERT_EQ(outcome(b.result), "ok");
  EXPECT_EQ(b.pkt.l3_length, 65535);
}

TEST(ParseFrame, OtherL4ProtocolsAreLeftToThePipeline) {
  for (uint8_t proto : {kProtoGre, kIpv6Esp, kSctp, kProtoIpip, kProtoIpv6}) {
    const Parsed a = parse(eth4(ipv4({.proto = proto}, payload(12))));
    ASSERT_EQ(outcome(a.result), "ok");
    EXPECT_EQ(a.pkt.proto, proto);
    EXPECT_FALSE(a.pkt.has_l4);
    EXPECT_EQ(a.pkt.src_port, 0);
    EXPECT_EQ(a.pkt.dst_port, 0);
    const Parsed b = parse(eth6(ipv6({.next = proto}, payload(2))));
    ASSERT_EQ(outcome(b.result), "ok");
    EXPECT_EQ(b.pkt.proto, proto);
    EXPECT_FALSE(b.pkt.has_l4);
  }
}

TEST(ParseFrame, IcmpOfTheWrongFamilyIsOpaque) {
  // ICMPv4 inside IPv6, ICMPv6 inside IPv4: not parsed, so never taken for an echo or error.
  const Parsed a = parse(eth6(ipv6({.next = kProtoIcmp}, echo(8))));
  ASSERT_EQ(outcome(a.result), "ok");
  EXPECT_FALSE(a.pkt.has_l4);
  EXPECT_EQ(a.pkt.icmp_type, 0);
  const Parsed b = parse(eth4(ipv4({.proto = kProtoIcmpv6}, echo(128))));
  ASSERT_EQ(outcome(b.result), "ok");
  EXPECT_FALSE(b.pkt.has_l4);
  EXPECT_EQ(b.pkt.icmp_type, 0);
}

// ---- ICMP errors --------------------------------------------------------------------------

// ICMP "fragmentation needed" (type 3 code 4, next-hop MTU 1400) quoting `quoted`.
Bytes frag_needed(const Bytes& quoted) {
  return eth4(ipv4({.src = kRouter4, .dst = kVip4, .proto = kProtoIcmp},
                   icmp(3, 4, cat({{0, 0, 0x05, 0x78}, quoted}))));
}

// ICMPv6 "packet too big" (MTU 1280) quoting `quoted`.
Bytes packet_too_big(const Bytes& quoted) {
  return eth6(ipv6({.src = kRouter6, .dst = kVip6, .next = kProtoIcmpv6},
                   icmp(2, 0, cat({{0, 0, 0x05, 0x00}, quoted}))));
}

// The start of a 1500-byte TCP packet the backend sent from the VIP to the client: as
// routers quote it, the IP header (with options) and 8 bytes of TCP, total length 1500.
Bytes quoted_v4_tcp() {
  const Bytes full =
      ipv4({.src = kVip4, .dst = kClient4, .options = {0x94, 0x04, 0, 0}, .total_length = 1500},
           tcp(80, 40000, 0x10));
  return Bytes(full.begin(), full.begin() + 24 + 8);
}

TEST(ParseFrameIcmpError, FragNeededWithEmbeddedTcp) {
  const Parsed r = parse(frag_needed(quoted_v4_tcp()));
  ASSERT_EQ(outcome(r.result), "ok");
  const ParsedPacket& p = r.pkt;
  EXPECT_EQ(p.proto, kProtoIcmp);
  EXPECT_EQ(p.icmp_type, 3);
  EXPECT_EQ(p.icmp_code, 4);
  EXPECT_EQ(p.src, kRouter4);
  EXPECT_EQ(p.src_port, 0);
  EXPECT_TRUE(p.has_l4);
  ASSERT_TRUE(p.embedded.present);
  EXPECT_EQ(p.embedded.family, Family::kIpv4);
  EXPECT_EQ(p.embedded.proto, kProtoTcp);
  EXPECT_EQ(p.embedded.src, kVip4);
  EXPECT_EQ(p.embedded.dst, kClient4);
  EXPECT_EQ(p.embedded.src_port, 80);
  EXPECT_EQ(p.embedded.dst_port, 40000);
}

TEST(ParseFrameIcmpError, EveryIcmpv4ErrorTypeQuotes) {
  for (uint8_t type : {3, 4, 5, 11, 12}) {
    const Bytes f = eth4(ipv4({.src = kRouter4, .proto = kProtoIcmp},
                              icmp(type, 0, cat({{0, 0, 0, 0}, quoted_v4_tcp()}))));
    const Parsed r = parse(f);
    ASSERT_EQ(outcome(r.result), "ok") << int{type};
    EXPECT_TRUE(r.pkt.embedded.present) << int{type};
    EXPECT_EQ(r.pkt.embedded.dst_port, 40000);
  }
}

TEST(ParseFrameIcmpError, PacketTooBigWithEmbeddedUdp) {
  const Bytes full = ipv6({.src = kVip6, .dst = kClient6, .next = kProtoUdp}, udp(53, 5353, 1400));
  const Parsed r = parse(packet_too_big(Bytes(full.begin(), full.begin() + 40 + 8 + 100)));
  ASSERT_EQ(outcome(r.result), "ok");
  const ParsedPacket& p = r.pkt;
  EXPECT_EQ(p.proto, kProtoIcmpv6);
  EXPECT_EQ(p.icmp_type, 2);
  ASSERT_TRUE(p.embedded.present);
  EXPECT_EQ(p.embedded.family, Family::kIpv6);
  EXPECT_EQ(p.embedded.proto, kProtoUdp);
  EXPECT_EQ(p.embedded.src, kVip6);
  EXPECT_EQ(p.embedded.dst, kClient6);
  EXPECT_EQ(p.embedded.src_port, 53);
  EXPECT_EQ(p.embedded.dst_port, 5353);
}

TEST(ParseFrameIcmpError, PacketTooBigWithEmbeddedExtensionChain) {
  const Bytes full = ipv6({.src = kVip6, .dst = kClient6, .next = kIpv6HopByHop},
                          cat({ext(kIpv6Routing, 1), ext(kProtoTcp), tcp(443, 40000, 0x10, 5, 1300)}));
  const Parsed r = parse(packet_too_big(Bytes(full.begin(), full.begin() + 40 + 16 + 8 + 8)));
  ASSERT_EQ(outcome(r.result), "ok");
  ASSERT_TRUE(r.pkt.embedded.present);
  EXPECT_EQ(r.pkt.embedded.proto, kProtoTcp);
  EXPECT_EQ(r.pkt.embedded.src_port, 443);
}

TEST(ParseFrameIcmpError, EveryIcmpv6ErrorTypeQuotes) {
  const Bytes full = ipv6({.src = kVip6, .dst = kClient6, .next = kProtoUdp}, udp(53, 5353, 10));
  for (uint8_t type : {1, 2, 3, 4}) {
    const Parsed r = parse(eth6(
        ipv6({.src = kRouter6, .next = kProtoIcmpv6}, icmp(type, 0, cat({{0, 0, 0, 0}, full})))));
    ASSERT_EQ(outcome(r.result), "ok") << int{type};
    EXPECT_TRUE(r.pkt.embedded.present) << int{type};
  }
}

TEST(ParseFrameIcmpError, QuotedNonFirstFragmentHasNoFlow) {
  const Bytes q4 =
      ipv4({.src = kVip4, .dst = kClient4, .proto = kProtoUdp, .frag_offset = 1480}, payload(8));
  const Parsed a = parse(frag_needed(q4));
  ASSERT_EQ(outcome(a.result), "ok");
  EXPECT_FALSE(a.pkt.embedded.present);

  const Bytes q6 = ipv6({.src = kVip6, .dst = kClient6, .next = kIpv6Fragment},
                        cat({frag6(kProtoUdp, 1232, true), payload(8)}));
  const Parsed b = parse(packet_too_big(q6));
  ASSERT_EQ(outcome(b.result), "ok");
  EXPECT_FALSE(b.pkt.embedded.present);
}

TEST(ParseFrameIcmpError, QuotedIcmpHasNoPorts) {
  const Parsed r =
      parse(frag_needed(ipv4({.src = kVip4, .dst = kClient4, .proto = kProtoIcmp}, echo(0))));
  ASSERT_EQ(outcome(r.result), "ok");
  ASSERT_TRUE(r.pkt.embedded.present);
  EXPECT_EQ(r.pkt.embedded.proto, kProtoIcmp);
  EXPECT_EQ(r.pkt.embedded.src_port, 0);
  EXPECT_EQ(r.pkt.embedded.dst_port, 0);
}

TEST(ParseFrameIcmpError, QuoteEndsAtTheOuterPacketNotTheFrame) {
  // The outer IPv4 total length stops after 4 bytes of quoted TCP; the frame continues with
  // padding-like bytes that happen to be the rest of the TCP header. They must not be used.
  Bytes f = frag_needed(quoted_v4_tcp());
  const size_t l3 = 14;
  store_be16(&f[l3 + 2], static_cast<uint16_t>(load_be16(&f[l3 + 2]) - 4));
  EXPECT_EQ(outcome(f), drop(DropReason::kIcmpEmbeddedTruncated));
}

// ---- flow key and reuse -------------------------------------------------------------------

TEST(ParseFrame, FlowKey) {
  const Parsed r = parse(v4_tcp(40000, 80));
  ASSERT_EQ(outcome(r.result), "ok");
  const FlowKey k = r.pkt.flow_key();
  EXPECT_EQ(k.family, Family::kIpv4);
  EXPECT_EQ(k.proto, kProtoTcp);
  EXPECT_EQ(k.src_port, 40000);
  EXPECT_EQ(k.dst_port, 80);
  EXPECT_EQ(std::memcmp(k.src.data(), kClient4.bytes.data(), 4), 0);
  EXPECT_EQ(std::memcmp(k.dst.data(), kVip4.bytes.data(), 4), 0);

  // Byte for byte: unused address bytes and padding are zero.
  uint8_t raw[sizeof(FlowKey)];
  std::memcpy(raw, &k, sizeof raw);
  for (size_t i = 4; i < 16; ++i) EXPECT_EQ(raw[i], 0) << i;
  for (size_t i = 20; i < 32; ++i) EXPECT_EQ(raw[i], 0) << i;
  EXPECT_EQ(raw[38], 0);
  EXPECT_EQ(raw[39], 0);

  // The same flow parsed twice (different buffers, VLAN or not) gives an identical key.
  const Parsed again =
      parse(eth(kEthTypeIpv4, ipv4({}, tcp(40000, 80, 0x10)), {{kEthTypeVlan, 9}}));
  EXPECT_TRUE(again.pkt.flow_key() == k);

  const Parsed v6 = parse(eth6(ipv6({.next = kProtoUdp}, udp(1, 2))));
  const FlowKey k6 = v6.pkt.flow_key();
  EXPECT_EQ(k6.family, Family::kIpv6);
  EXPECT_EQ(k6.src, kClient6.bytes);
  EXPECT_EQ(k6.dst, kVip6.bytes);
  EXPECT_EQ(k6.proto, kProtoUdp);
  EXPECT_FALSE(k6 == k);
}

TEST(ParseFrame, ReusedResultIsReset) {
  ParsedPacket p;
  const Bytes icmp_err = frag_needed(quoted_v4_tcp());
  const Bytes vlan_tcp = eth(kEthTypeIpv4, ipv4({}, tcp(1, 2, 0x02)), {{kEthTypeVlan, 3}});
  ASSERT_EQ(parse_frame(icmp_err.data(), static_cast<uint32_t>(icmp_err.size()), p).status,
            ParseStatus::kOk);
  ASSERT_EQ(parse_frame(vlan_tcp.data(), static_cast<uint32_t>(vlan_tcp.size()), p).status,
            ParseStatus::kOk);
  EXPECT_FALSE(p.embedded.present);
  EXPECT_EQ(p.icmp_type, 0);
  const Bytes frag = eth4(ipv4({.proto = kProtoUdp, .frag_offset = 8}, payload(8)));
  ASSERT_EQ(parse_frame(frag.data(), static_cast<uint32_t>(frag.size()), p).status,
            ParseStatus::kOk);
  EXPECT_FALSE(p.has_vlan);
  EXPECT_EQ(p.src_port, 0);
  EXPECT_EQ(p.tcp_flags, 0);
  EXPECT_FALSE(p.has_l4);
}

// ---- malformed frames: one case per way to fail, each with its DropReason -----------------

struct MalformedCase {
  const char* name;
  Bytes frame;
  DropReason reason;
};

Bytes truncate(Bytes f, size_t n) {
  f.resize(n);
  return f;
}

// kMaxIpv6ExtHeaders + 1 well-formed headers (HBH then destination options), then TCP.
Bytes too_many_ext_headers() {
  Bytes body;
  for (int i = 0; i <= kMaxIpv6ExtHeaders; ++i) {
    body = cat({body, ext(i < kMaxIpv6ExtHeaders ? kIpv6DestOptions : kProtoTcp)});
  }
  return eth6(ipv6({.next = kIpv6HopByHop}, cat({body, tcp(1, 2)})));
}

std::vector<MalformedCase> malformed_cases() {
  using D = DropReason;
  const Bytes v4 = ipv4({}, tcp(1, 2));
  const Bytes quoted6 = ipv6({.src = kVip6, .dst = kClient6, .next = kProtoUdp}, udp(53, 5353, 20));
  const Bytes many_ext = too_many_ext_headers();
  return {
      {"empty", {}, D::kEthTruncated},
      {"eth_13_bytes", truncate(v4_tcp(), 13), D::kEthTruncated},
      {"vlan_tag_cut", truncate(eth(kEthTypeIpv4, v4, {{kEthTypeVlan, 1}}), 16), D::kVlanTruncated},
      {"vlan_ethertype_cut", truncate(eth(kEthTypeIpv4, v4, {{kEthTypeVlan, 1}}), 17),
       D::kVlanTruncated},
      {"qinq_inner_tag_cut",
       truncate(eth(kEthTypeIpv4, v4, {{kEthTypeQinQ, 1}, {kEthTypeVlan, 2}}), 21),
       D::kVlanTruncated},
      {"ipv4_19_bytes", raw4(truncate(v4, 19)), D::kIpv4Truncated},
      {"ipv4_vlan_19_bytes", eth(kEthTypeIpv4, truncate(v4, 19), {{kEthTypeVlan, 1}}, false),
       D::kIpv4Truncated},
      {"ipv4_options_cut", raw4(truncate(ipv4({.options = Bytes(20, 1)}, {}), 30)),
       D::kIpv4Truncated},
      {"ipv4_version_6", raw4(ipv4({.version = 6}, tcp(1, 2))), D::kIpv4BadVersion},
      {"ipv4_version_0", raw4(ipv4({.version = 0}, tcp(1, 2))), D::kIpv4BadVersion},
      {"ipv4_ihl_4", eth4(ipv4({.ihl = 4}, tcp(1, 2))), D::kIpv4BadHeaderLength},
      {"ipv4_ihl_0", eth4(ipv4({.ihl = 0}, tcp(1, 2))), D::kIpv4BadHeaderLength},
      {"ipv4_total_length_past_frame", eth4(ipv4({.total_length = 1500}, tcp(1, 2))),
       D::kIpv4BadTotalLength},
      {"ipv4_total_length_one_past", raw4(ipv4({.total_length = 45}, tcp(1, 2))),
       D::kIpv4BadTotalLength},
      {"ipv4_total_length_below_ihl",
       eth4(ipv4({.options = {1, 1, 1, 0}, .total_length = 20}, tcp(1, 2))),
       D::kIpv4BadTotalLength},
      {"ipv4_total_length_0", eth4(ipv4({.total_length = 0}, tcp(1, 2))), D::kIpv4BadTotalLength},
      {"ipv6_39_bytes", raw6(truncate(ipv6({}, tcp(1, 2)), 39)), D::kIpv6Truncated},
      {"ipv6_version_4", eth6(ipv6({.version = 4}, tcp(1, 2))), D::kIpv6BadVersion},
      {"ipv6_payload_length_past_frame", eth6(ipv6({.payload_length = 1000}, tcp(1, 2))),
       D::kIpv6BadPayloadLength},
      {"ipv6_payload_length_one_past", raw6(ipv6({.payload_length = 25}, tcp(1, 2))),
       D::kIpv6BadPayloadLength},
      // 40 + 65535 does not fit l3_length; only a frame over 64 KiB (GRO, jumbo) can say so.
      {"ipv6_payload_length_beyond_l3_length",
       raw6(ipv6({.next = kIpv6NoNextHeader, .payload_length = 65535}, payload(65535))),
       D::kIpv6BadPayloadLength},
      {"ipv6_hbh_shorter_than_8", raw6(ipv6({.next = kIpv6HopByHop}, Bytes{kProtoTcp, 0, 1, 2})),
       D::kIpv6ExtHeaderTruncated},
      {"ipv6_hbh_length_past_payload", raw6(ipv6({.next = kIpv6HopByHop}, truncate(ext(kProtoTcp, 3), 16))),
       D::kIpv6ExtHeaderTruncated},
      {"ipv6_ext_past_payload_length_into_padding",
       eth6(ipv6({.next = kIpv6DestOptions, .payload_length = 8}, cat({ext(kProtoTcp, 1)}))),
       D::kIpv6ExtHeaderTruncated},
      {"ipv6_fragment_header_cut", raw6(ipv6({.next = kIpv6Fragment}, payload(6))),
       D::kIpv6ExtHeaderTruncated},
      {"ipv6_ah_length_past_payload", raw6(ipv6({.next = kIpv6Ah}, truncate(ah(kProtoTcp, 10), 16))),
       D::kIpv6ExtHeaderTruncated},
      {"ipv6_chain_past_first_fragment",
       raw6(ipv6({.next = kIpv6Fragment}, cat({frag6(kIpv6DestOptions, 0, true), payload(4)}))),
       D::kIpv6ExtHeaderTruncated},
      {"ipv6_too_many_ext_headers", many_ext, D::kIpv6TooManyExtHeaders},
      {"tcp_19_bytes", eth4(ipv4({}, truncate(tcp(1, 2, 2, 5, 0), 19))), D::kTcpTruncated},
      {"tcp_no_bytes", eth4(ipv4({}, {})), D::kTcpTruncated},
      {"tcp_v6_cut", eth6(ipv6({}, truncate(tcp(1, 2, 2, 5, 0), 12))), D::kTcpTruncated},
      {"tcp_data_offset_4", eth4(ipv4({}, tcp(1, 2, 0x02, 4))), D::kTcpBadDataOffset},
      {"tcp_data_offset_0", eth6(ipv6({}, tcp(1, 2, 0x02, 0))), D::kTcpBadDataOffset},
      {"tcp_data_offset_past_payload", eth4(ipv4({}, truncate(tcp(1, 2, 0x02, 15, 0), 40))),
       D::kTcpBadDataOffset},
      {"udp_7_bytes", eth4(ipv4({.proto = kProtoUdp}, truncate(udp(1, 2, 0), 7))),
       D::kUdpTruncated},
      {"udp_v6_cut", eth6(ipv6({.next = kProtoUdp}, truncate(udp(1, 2, 0), 4))), D::kUdpTruncated},
      {"udp_length_7", eth4(ipv4({.proto = kProtoUdp}, udp(1, 2, 4, 7))), D::kUdpBadLength},
      {"udp_length_0", eth6(ipv6({.next = kProtoUdp}, udp(1, 2, 4, 0))), D::kUdpBadLength},
      {"udp_length_past_payload", eth4(ipv4({.proto = kProtoUdp}, udp(1, 2, 4, 13))),
       D::kUdpBadLength},
      {"icmp_3_bytes", eth4(ipv4({.proto = kProtoIcmp}, {8, 0, 0})), D::kIcmpTruncated},
      {"icmp_echo_6_bytes", eth4(ipv4({.proto = kProtoIcmp}, truncate(echo(8), 6))),
       D::kIcmpTruncated},
      {"icmp_error_6_bytes", eth4(ipv4({.proto = kProtoIcmp}, {3, 4, 0, 0, 0, 0})),
       D::kIcmpTruncated},
      {"icmpv6_2_bytes", eth6(ipv6({.next = kProtoIcmpv6}, {128, 0})), D::kIcmpTruncated},
      {"icmpv6_echo_7_bytes", eth6(ipv6({.next = kProtoIcmpv6}, truncate(echo(129), 7))),
       D::kIcmpTruncated},
      {"icmpv6_error_4_bytes", eth6(ipv6({.next = kProtoIcmpv6}, {2, 0, 0, 0})), D::kIcmpTruncated},
      {"icmp_quote_empty", frag_needed({}), D::kIcmpEmbeddedTruncated},
      {"icmp_quote_ipv4_19_bytes", frag_needed(truncate(quoted_v4_tcp(), 19)),
       D::kIcmpEmbeddedTruncated},
      {"icmp_quote_ipv4_options_cut", frag_needed(truncate(quoted_v4_tcp(), 22)),
       D::kIcmpEmbeddedTruncated},
      {"icmp_quote_tcp_4_bytes", frag_needed(truncate(quoted_v4_tcp(), 28)),
       D::kIcmpEmbeddedTruncated},
      {"icmp_quote_tcp_7_bytes", frag_needed(truncate(quoted_v4_tcp(), 31)),
       D::kIcmpEmbeddedTruncated},
      {"icmpv6_quote_ipv6_39_bytes", packet_too_big(truncate(quoted6, 39)),
       D::kIcmpEmbeddedTruncated},
      {"icmpv6_quote_udp_cut", packet_too_big(truncate(quoted6, 44)), D::kIcmpEmbeddedTruncated},
      {"icmpv6_quote_ext_chain_cut",
       packet_too_big(truncate(
           ipv6({.src = kVip6, .dst = kClient6, .next = kIpv6HopByHop}, cat({ext(kProtoUdp, 4), udp(1, 2)})),
           60)),
       D::kIcmpEmbeddedTruncated},
      // The quoted header says its packet ends before the ports: what follows is not them.
      {"icmp_quote_total_length_excludes_ports",
       frag_needed(ipv4({.src = kVip4, .dst = kClient4, .proto = kProtoUdp, .total_length = 24},
                        udp(53, 1))),
       D::kIcmpEmbeddedTruncated},
      {"icmpv6_quote_payload_length_excludes_ports",
       packet_too_big(ipv6({.src = kVip6, .dst = kClient6, .next = kProtoUdp, .payload_length = 4},
                           udp(53, 1))),
       D::kIcmpEmbeddedTruncated},
      {"icmp_quote_version_6", frag_needed(ipv4({.version = 6}, tcp(1, 2))),
       D::kIcmpEmbeddedMalformed},
      {"icmp_quote_ihl_3", frag_needed(ipv4({.ihl = 3}, tcp(1, 2))), D::kIcmpEmbeddedMalformed},
      {"icmp_quote_total_length_below_ihl", frag_needed(ipv4({.total_length = 16}, tcp(1, 2))),
       D::kIcmpEmbeddedMalformed},
      {"icmpv6_quote_version_4", packet_too_big(ipv6({.version = 4}, udp(1, 2))),
       D::kIcmpEmbeddedMalformed},
      {"icmpv6_quote_too_many_ext_headers",
       packet_too_big(Bytes(many_ext.begin() + 14, many_ext.end())), D::kIcmpEmbeddedMalformed},
  };
}

class ParseFrameMalformed : public ::testing::TestWithParam<MalformedCase> {};

TEST_P(ParseFrameMalformed, DropsWithItsReason) {
  const MalformedCase& c = GetParam();
  EXPECT_EQ(outcome(c.frame), drop(c.reason));
}

INSTANTIATE_TEST_SUITE_P(Cases, ParseFrameMalformed, ::testing::ValuesIn(malformed_cases()),
                         [](const ::testing::TestParamInfo<MalformedCase>& info) {
                           return std::string(info.param.name);
                         });

TEST(ParseFrame, EveryParserDropReasonHasAMalformedCase) {
  const std::set<DropReason> parser_reasons = {
      DropReason::kEthTruncated,          DropReason::kVlanTruncated,
      DropReason::kIpv4Truncated,         DropReason::kIpv4BadVersion,
      DropReason::kIpv4BadHeaderLength,   DropReason::kIpv4BadTotalLength,
      DropReason::kIpv6Truncated,         DropReason::kIpv6BadVersion,
      DropReason::kIpv6BadPayloadLength,  DropReason::kIpv6ExtHeaderTruncated,
      DropReason::kIpv6TooManyExtHeaders, DropReason::kTcpTruncated,
      DropReason::kTcpBadDataOffset,      DropReason::kUdpTruncated,
      DropReason::kUdpBadLength,          DropReason::kIcmpTruncated,
      DropReason::kIcmpEmbeddedTruncated, DropReason::kIcmpEmbeddedMalformed,
  };
  std::set<DropReason> covered;
  for (const MalformedCase& c : malformed_cases()) covered.insert(c.reason);
  EXPECT_EQ(covered, parser_reasons);
  EXPECT_EQ(drop_reason_name(DropReason::kIcmpEmbeddedMalformed), "icmp_embedded_malformed");
}

// ---- truncation sweep ---------------------------------------------------------------------

std::vector<Bytes> valid_frames() {
  const Bytes quoted6 = ipv6({.src = kVip6, .dst = kClient6, .next = kProtoUdp}, udp(53, 5353, 20));
  return {
      v4_tcp(),
      eth4(ipv4({.proto = kProtoUdp}, udp(1, 2, 2))),  // padded
      eth4(ipv4({.proto = kProtoIcmp}, echo(8))),
      eth(kEthTypeIpv4, ipv4({.options = {1, 1, 1, 0}}, tcp(1, 2, 0x02, 8)), {{kEthTypeVlan, 1}}),
      eth(kEthTypeIpv6, ipv6({.next = kProtoUdp}, udp(1, 2)),
          {{kEthTypeQinQ, 1}, {kEthTypeVlan, 2}}),
      eth4(ipv4({.mf = true}, tcp(1, 2))),
      eth4(ipv4({.frag_offset = 64}, payload(16))),
      eth6(ipv6({}, tcp(1, 2, 0x02, 6))),
      eth6(ipv6({.next = kIpv6HopByHop},
                cat({ext(kIpv6DestOptions), ext(kIpv6Fragment, 1), frag6(kProtoTcp, 0, true), tcp(1, 2)}))),
      eth6(ipv6({.next = kIpv6Fragment}, cat({frag6(kProtoUdp, 8, false), payload(16)}))),
      eth6(ipv6({.next = kIpv6Routing}, cat({ext(kIpv6Ah), ah(kProtoIcmpv6), echo(128)}))),
      frag_needed(quoted_v4_tcp()),
      packet_too_big(quoted6),
      eth4(ipv4({.proto = kProtoGre}, payload(20))),
  };
}

TEST(ParseFrame, TruncatedFramesNeverParseOutOfBounds) {
  size_t checked = 0;
  for (const Bytes& f : valid_frames()) {
    const Parsed full = parse(f);
    ASSERT_EQ(outcome(full.result), "ok") << ::testing::PrintToString(f);
    expect_in_bounds(full.pkt, f.size());
    const size_t ip_end = size_t{full.pkt.l3_offset} + full.pkt.l3_length;
    for (size_t n = 0; n < f.size(); ++n) {
      const Parsed r = parse(f, n);
      ++checked;
      if (r.result.status == ParseStatus::kOk) {
        // Only Ethernet padding may go: the IP packet itself was cut otherwise.
        EXPECT_GE(n, ip_end) << "n=" << n;
        expect_in_bounds(r.pkt, n);
      } else {
        EXPECT_EQ(r.result.status, ParseStatus::kMalformed) << "n=" << n;
        EXPECT_LT(n, ip_end) << "n=" << n;
      }
    }
  }
  EXPECT_GT(checked, 1000u);
}

// ---- the plain lane's parser ----------------------------------------------------------------

// parse_plain_flow on an exactly-sized heap copy of the first n bytes of `f`; nullopt when it
// refuses the frame.
struct Plain {
  FlowKey key;
  PlainFlow flow;
};
std::optional<Plain> parse_plain(const Bytes& f, size_t n = SIZE_MAX) {
  n = std::min(n, f.size());
  auto buf = std::make_unique<uint8_t[]>(n);
  if (n > 0) std::memcpy(buf.get(), f.data(), n);
  Plain out;
  // Stale values in the outputs must not survive into the result.
  std::memset(static_cast<void*>(&out), 0xa5, sizeof out);
  if (!parse_plain_flow(buf.get(), static_cast<uint32_t>(n), out.key, out.flow)) return std::nullopt;
  return out;
}

// Accepted frames give what parse_frame() and flow_key() give.
void expect_same_as_parse_frame(const Bytes& f) {
  const std::optional<Plain> plain = parse_plain(f);
  ASSERT_TRUE(plain.has_value()) << ::testing::PrintToString(f);
  const Parsed full = parse(f);
  ASSERT_EQ(outcome(full.result), "ok");
  const ParsedPacket& p = full.pkt;
  EXPECT_TRUE(plain->key == p.flow_key());
  EXPECT_EQ(p.l3_offset, kPlainL3Offset);
  EXPECT_TRUE(p.has_l4 && !p.is_fragment && !p.has_vlan);
  EXPECT_EQ(plain->flow.l3_length, p.l3_length);
  EXPECT_EQ(plain->flow.tcp_flags, p.tcp_flags);
  EXPECT_EQ(plain->flow.traffic_class, p.traffic_class);
  EXPECT_EQ(plain->flow.dont_fragment, p.dont_fragment);
}

TEST(ParsePlainFlow, AgreesWithParseFrame) {
  expect_same_as_parse_frame(v4_tcp());
  expect_same_as_parse_frame(eth4(ipv4({.tos = 0xb9, .df = false}, tcp(1, 2, 0x11, 8))));
  expect_same_as_parse_frame(eth4(ipv4({.proto = kProtoUdp}, udp(53, 5353, 2))));  // padded
  expect_same_as_parse_frame(eth4(ipv4({.proto = kProtoUdp}, udp(53, 5353, 40, 20))));  // short UDP length
  expect_same_as_parse_frame(eth6(ipv6({.tc = 0x2e}, tcp(443, 40000, 0x18, 6))));
  expect_same_as_parse_frame(eth6(ipv6({.next = kProtoUdp}, udp(1, 2, 0))));
}

TEST(ParsePlainFlow, LeavesEverythingElseToParseFrame) {
  const Bytes refused[] = {
      eth(kEthTypeIpv4, ipv4({}, tcp(1, 2)), {{kEthTypeVlan, 1}}),  // tagged
      eth4(ipv4({.options = {1, 1, 1, 0}}, tcp(1, 2))),            // IPv4 options
      eth4(ipv4({.mf = true}, tcp(1, 2))),                         // first fragment
      eth4(ipv4({.frag_offset = 64}, payload(16))),                // later fragment
      eth4(ipv4({.proto = kProtoIcmp}, echo(8))),
      eth4(ipv4({.proto = kProtoGre}, payload(20))),
      eth6(ipv6({.next = kIpv6DestOptions}, cat({ext(kProtoTcp), tcp(1, 2)}))),  // extension header
      eth6(ipv6({.next = kIpv6Fragment}, cat({frag6(kProtoUdp, 0, false), udp(1, 2)}))),  // atomic fragment
      eth6(ipv6({.next = kProtoIcmpv6}, echo(128))),
      eth(0x0806, payload(28)),  // ARP
  };
  for (const Bytes& f : refused) {
    EXPECT_FALSE(parse_plain(f).has_value()) << ::testing::PrintToString(f);
    // Well-formed, every one: parse_frame takes them (ARP as not IP).
    EXPECT_NE(parse(f).result.status, ParseStatus::kMalformed) << outcome(f);
  }
}

// Nothing malformed is plain: every way to fail parse_frame names is refused, and so is every
// truncation of a frame the plain parser accepts that parse_frame would refuse.
TEST(ParsePlainFlow, RefusesEveryMalformedFrame) {
  for (const MalformedCase& c : malformed_cases()) {
    EXPECT_FALSE(parse_plain(c.frame).has_value()) << c.name;
  }
  for (const Bytes& f : valid_frames()) {
    for (size_t n = 0; n <= f.size(); ++n) {
      const std::optional<Plain> plain = parse_plain(f, n);
      const Parsed full = parse(f, n);
      if (full.result.status != ParseStatus::kOk) {
        EXPECT_FALSE(plain.has_value()) << "n=" << n;
      } else if (plain.has_value()) {
        EXPECT_TRUE(plain->key == full.pkt.flow_key()) << "n=" << n;
        EXPECT_EQ(plain->flow.l3_length, full.pkt.l3_length) << "n=" << n;
      }
    }
  }
}

}  // namespace
}  // namespace l4mux
