// decapsulate() against what the mux really produces (encapsulate()), for every tunnel
// kind and family combination, and against malformed and foreign frames.
#include "agent/decap.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "bytes.h"
#include "checksum.h"
#include "encap.h"
#include "frame_builder.h"

namespace l4mux {
namespace {

using testing::Bytes;
using testing::ip;

constexpr uint32_t kHeadroom = 128;

const IpAddr kBackend4 = ip("10.1.0.1");
const IpAddr kBackend6 = ip("fd00:1::1");
const IpAddr kMux4 = ip("10.0.0.1");
const IpAddr kMux6 = ip("fd00::1");

DecapConfig backend_config() {
  DecapConfig c;
  c.ipv4 = kBackend4;
  c.ipv6 = kBackend6;
  c.gue_ports[0] = kDefaultGuePort;
  c.gue_ports[1] = 7777;
  c.gue_port_count = 2;
  c.mux_sources = {IpPrefix{ip("10.0.0.0"), 24}, IpPrefix{ip("fd00::"), 64}};
  c.vips = {ip("2001:db8::10"), ip("192.0.2.10")};
  c.sort_vips();
  return c;
}

// An inner IP packet (TCP or UDP with payload) of the given family.
Bytes inner_packet(Family family, uint8_t proto = kProtoTcp, size_t payload = 5) {
  const IpAddr client = family == Family::kIpv4 ? ip("198.51.100.7") : ip("2001:db8:c::7");
  const IpAddr vip = family == Family::kIpv4 ? ip("192.0.2.10") : ip("2001:db8::10");
  testing::L4Spec l4;
  l4.proto = proto;
  l4.payload = Bytes(payload, 'p');
  testing::IpSpec spec{client, vip, proto};
  spec.tos = 0xb8;
  return testing::ip_packet(spec, testing::l4_segment(client, vip, l4));
}

struct Encapsulated {
  Bytes frame;
  Bytes inner;
};

Encapsulated encap(const Bytes& inner, Encap kind, Family outer, bool has_key = false, uint32_t key = 0,
                   uint16_t gue_port = kDefaultGuePort, uint64_t flow_hash = 0x0123456789abcdefULL) {
  Bytes buf(kHeadroom + inner.size());
  std::memcpy(buf.data() + kHeadroom, inner.data(), inner.size());
  InnerPacket in;
  in.ip = buf.data() + kHeadroom;
  in.length = static_cast<uint32_t>(inner.size());
  in.family = (inner[0] >> 4) == 4 ? Family::kIpv4 : Family::kIpv6;
  in.traffic_class = 0xb8;
  in.dont_fragment = true;
  EncapParams p;
  p.kind = kind;
  p.outer_src = outer == Family::kIpv4 ? &kMux4 : &kMux6;
  p.backend = outer == Family::kIpv4 ? &kBackend4 : &kBackend6;
  p.has_gre_key = has_key;
  p.gre_key = key;
  p.gue_port = gue_port;
  static const MacAddr kSrcMac = {2, 0, 0, 0, 0, 1};
  static const MacAddr kDstMac = {2, 0, 0, 0, 0, 2};
  p.src_mac = &kSrcMac;
  p.dst_mac = &kDstMac;
  uint32_t len = 0;
  uint8_t* frame = encapsulate(in, buf.data(), p, flow_hash, &len);
  if (frame == nullptr) throw std::runtime_error("encapsulate refused");
  return {Bytes(frame, frame + len), inner};
}

// Decapsulates from an exactly-sized copy so that ASan sees any read past the end.
DecapResult decap(const Bytes& frame, const DecapConfig& c = backend_config(), uint32_t flags = kDecapNone) {
  std::vector<uint8_t> exact(frame.begin(), frame.end());
  return decapsulate(exact.data(), static_cast<uint32_t>(exact.size()), c, flags);
}

const char* name(DecapStatus s) {
  static std::string n;
  n = std::string(decap_status_name(s));
  return n.c_str();
}

#define EXPECT_STATUS(result, expected) \
  EXPECT_EQ(name((result).status), std::string(decap_status_name(expected)))

// Appends raw bytes (resize + memcpy: GCC 12 -O3 warns falsely on vector::insert of arrays).
void append(Bytes& b, const uint8_t* p, size_t n) {
  const size_t at = b.size();
  b.resize(at + n);
  if (n > 0) std::memcpy(b.data() + at, p, n);
}
void append(Bytes& b, const Bytes& more) { append(b, more.data(), more.size()); }

size_t outer_l3(const Bytes& f) { return kEthHeaderLen + (load_be16(&f[12]) == kEthTypeVlan ? 4 : 0); }

void fix_ipv4_checksum(Bytes& f) {
  const size_t l3 = outer_l3(f);
  store_be16(&f[l3 + 10], 0);
  store_be16(&f[l3 + 10], ipv4_header_checksum(&f[l3], (f[l3] & 0xf) * 4u));
}

// ---------------------------------------------------------------------------------------
// Round trips

struct Combo {
  Encap kind;
  Family outer;
  Family inner;
  bool key;
  uint16_t gue_port;
  uint8_t proto;
};

std::string combo_name(const ::testing::TestParamInfo<Combo>& info) {
  const Combo& c = info.param;
  std::string n = c.kind == Encap::kIpip ? "ipip" : c.kind == Encap::kGre ? "gre" : "gue";
  n += c.inner == Family::kIpv4 ? "_4in" : "_6in";
  n += c.outer == Family::kIpv4 ? "4" : "6";
  if (c.key) n += "_key";
  if (c.kind == Encap::kGue) n += "_port" + std::to_string(c.gue_port);
  n += c.proto == kProtoTcp ? "_tcp" : "_udp";
  return n;
}

std::vector<Combo> all_combos() {
  std::vector<Combo> out;
  for (Family outer : {Family::kIpv4, Family::kIpv6}) {
    for (Family inner : {Family::kIpv4, Family::kIpv6}) {
      for (uint8_t proto : {kProtoTcp, kProtoUdp}) {
        out.push_back({Encap::kIpip, outer, inner, false, 0, proto});
        out.push_back({Encap::kGre, outer, inner, false, 0, proto});
        out.push_back({Encap::kGre, outer, inner, true, 0, proto});
        out.push_back({Encap::kGue, outer, inner, false, kDefaultGuePort, proto});
        out.push_back({Encap::kGue, outer, inner, false, 7777, proto});
      }
    }
  }
  return out;
}

class DecapRoundTrip : public ::testing::TestWithParam<Combo> {};

TEST_P(DecapRoundTrip, RecoversTheInnerPacketExactly) {
  const Combo& c = GetParam();
  DecapConfig cfg = backend_config();
  if (c.key) {
    cfg.has_gre_key = true;
    cfg.gre_key = 0xdeadbeef;
  }
  for (size_t payload : {size_t{0}, size_t{1}, size_t{5}, size_t{1400}}) {
    const Bytes inner = inner_packet(c.inner, c.proto, payload);
    for (uint64_t hash : {uint64_t{0}, uint64_t{0x0123456789abcdefULL}, ~uint64_t{0}}) {
      const Encapsulated e = encap(inner, c.kind, c.outer, c.key, 0xdeadbeef, c.gue_port, hash);
      const DecapResult r = decap(e.frame, cfg);
      ASSERT_EQ(r.status, DecapStatus::kOk) << decap_status_name(r.status) << " payload " << payload;
      EXPECT_EQ(r.kind, c.kind);
      EXPECT_EQ(r.outer, c.outer);
      EXPECT_EQ(r.inner, c.inner);
      ASSERT_EQ(r.inner_length, inner.size());
      ASSERT_LE(size_t{r.inner_offset} + r.inner_length, e.frame.size());
      EXPECT_EQ(Bytes(e.frame.begin() + r.inner_offset, e.frame.begin() + r.inner_offset + r.inner_length), inner);
      EXPECT_EQ(r.inner_offset + r.inner_length, e.frame.size());

      // Ethernet padding behind a short frame changes nothing.
      Bytes padded = e.frame;
      padded.resize(padded.size() + 17, 0);
      const DecapResult rp = decap(padded, cfg);
      ASSERT_EQ(rp.status, DecapStatus::kOk);
      EXPECT_EQ(rp.inner_offset, r.inner_offset);
      EXPECT_EQ(rp.inner_length, r.inner_length);

      // No prefix of the frame decapsulates (every length is checked against the bytes present).
      for (size_t cut = 0; cut < e.frame.size(); cut += (cut < 120 ? 1 : 97)) {
        const DecapResult rc = decap(Bytes(e.frame.begin(), e.frame.begin() + static_cast<long>(cut)), cfg);
        ASSERT_NE(rc.status, DecapStatus::kOk) << "prefix " << cut;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllTunnels, DecapRoundTrip, ::testing::ValuesIn(all_combos()), combo_name);

TEST(Decap, VlanTaggedFrame) {
  const Encapsulated e = encap(inner_packet(Family::kIpv4), Encap::kIpip, Family::kIpv4);
  for (uint16_t tpid : {kEthTypeVlan, kEthTypeQinQ}) {
    Bytes tagged(e.frame.begin(), e.frame.begin() + 12);
    const uint8_t tag[4] = {static_cast<uint8_t>(tpid >> 8), static_cast<uint8_t>(tpid), 0x00, 0x2a};
    append(tagged, tag, 4);
    tagged.insert(tagged.end(), e.frame.begin() + 12, e.frame.end());
    const DecapResult r = decap(tagged);
    ASSERT_EQ(r.status, DecapStatus::kOk);
    EXPECT_EQ(r.inner_offset, kEthHeaderLen + 4 + kIpv4HeaderLen);
  }
  // Two tags are allowed, a third is not looked through.
  Bytes qinq(e.frame.begin(), e.frame.begin() + 12);
  const uint8_t tags[8] = {0x88, 0xa8, 0, 1, 0x81, 0x00, 0, 2};
  append(qinq, tags, 8);
  qinq.insert(qinq.end(), e.frame.begin() + 12, e.frame.end());
  EXPECT_EQ(decap(qinq).status, DecapStatus::kOk);
  Bytes cut(qinq.begin(), qinq.begin() + 16);
  EXPECT_STATUS(decap(cut), DecapStatus::kEthTruncated);
}

TEST(Decap, IPv4OuterOptionsAreSkipped) {
  Encapsulated e = encap(inner_packet(Family::kIpv6), Encap::kIpip, Family::kIpv4);
  // Insert 4 bytes of options (NOP NOP NOP EOL) after the 20-byte outer header.
  Bytes f(e.frame.begin(), e.frame.begin() + 34);
  const uint8_t opts[4] = {1, 1, 1, 0};
  append(f, opts, 4);
  f.insert(f.end(), e.frame.begin() + 34, e.frame.end());
  f[14] = 0x46;
  store_be16(&f[16], static_cast<uint16_t>(load_be16(&f[16]) + 4));
  fix_ipv4_checksum(f);
  const DecapResult r = decap(f);
  ASSERT_EQ(r.status, DecapStatus::kOk);
  EXPECT_EQ(r.inner_offset, 38u);
}

// ---------------------------------------------------------------------------------------
// Not ours

TEST(Decap, NotOurs) {
  DecapConfig cfg = backend_config();
  // ARP
  Bytes arp(60, 0);
  store_be16(&arp[12], 0x0806);
  EXPECT_STATUS(decap(arp), DecapStatus::kNotIp);
  EXPECT_TRUE(decap_not_ours(decap(arp).status));

  // Tunnel packets for another address, of both families, and for a family we have no address of.
  for (Family outer : {Family::kIpv4, Family::kIpv6}) {
    Encapsulated e = encap(inner_packet(Family::kIpv4), Encap::kIpip, outer);
    Bytes other = e.frame;
    const size_t dst = outer_l3(other) + (outer == Family::kIpv4 ? 16 : 24);
    other[dst + 3] ^= 0x55;
    if (outer == Family::kIpv4) fix_ipv4_checksum(other);
    EXPECT_STATUS(decap(other), DecapStatus::kNotOurAddress);
    DecapConfig none = cfg;
    (outer == Family::kIpv4 ? none.ipv4 : none.ipv6) = IpAddr{};
    EXPECT_STATUS(decap(e.frame, none), DecapStatus::kNotOurAddress);
  }

  // Ordinary traffic to the backend's own address.
  EXPECT_STATUS(decap(testing::flow_frame("10.0.0.9", "10.1.0.1", {})), DecapStatus::kNotTunnel);
  EXPECT_STATUS(decap(testing::flow_frame("fd00::9", "fd00:1::1", {})), DecapStatus::kNotTunnel);
  testing::L4Spec dns;
  dns.proto = kProtoUdp;
  dns.dst_port = 53;
  const DecapResult r = decap(testing::flow_frame("10.0.0.9", "10.1.0.1", dns));
  EXPECT_STATUS(r, DecapStatus::kNotGuePort);
  EXPECT_TRUE(decap_not_ours(r.status));

  // GUE on a port the backend does not accept.
  const Encapsulated g = encap(inner_packet(Family::kIpv4), Encap::kGue, Family::kIpv6, false, 0, 5555);
  EXPECT_STATUS(decap(g.frame), DecapStatus::kNotGuePort);
  cfg.gue_port_count = 0;
  EXPECT_STATUS(decap(encap(inner_packet(Family::kIpv4), Encap::kGue, Family::kIpv4).frame, cfg),
                DecapStatus::kNotGuePort);
}

// ---------------------------------------------------------------------------------------
// Outer header problems

TEST(Decap, OuterHeaderProblems) {
  const Encapsulated v4 = encap(inner_packet(Family::kIpv4), Encap::kIpip, Family::kIpv4);
  const Encapsulated v6 = encap(inner_packet(Family::kIpv6), Encap::kIpip, Family::kIpv6);

  EXPECT_STATUS(decap(Bytes(v4.frame.begin(), v4.frame.begin() + 13)), DecapStatus::kEthTruncated);
  EXPECT_STATUS(decap(Bytes(v4.frame.begin(), v4.frame.begin() + 14 + 19)), DecapStatus::kOuterTruncated);
  EXPECT_STATUS(decap(Bytes(v6.frame.begin(), v6.frame.begin() + 14 + 39)), DecapStatus::kOuterTruncated);

  Bytes f = v4.frame;
  f[14] = 0x65;  // version 6 under an IPv4 ethertype
  EXPECT_STATUS(decap(f), DecapStatus::kOuterBadHeader);
  f = v4.frame;
  f[14] = 0x44;  // IHL 4
  fix_ipv4_checksum(f);
  EXPECT_STATUS(decap(f), DecapStatus::kOuterBadHeader);
  f = v4.frame;
  f[14] = 0x4f;  // IHL 15: a 60-byte header, cut at 40
  f.resize(14 + 40);
  EXPECT_STATUS(decap(f), DecapStatus::kOuterTruncated);

  f = v6.frame;
  f[14] = 0x45;  // IPv4 version under an IPv6 ethertype
  EXPECT_STATUS(decap(f), DecapStatus::kOuterBadHeader);

  // Total length shorter than the header, longer than the frame.
  f = v4.frame;
  store_be16(&f[16], 19);
  fix_ipv4_checksum(f);
  EXPECT_STATUS(decap(f), DecapStatus::kOuterBadLength);
  f = v4.frame;
  store_be16(&f[16], static_cast<uint16_t>(f.size() - 14 + 1));
  fix_ipv4_checksum(f);
  EXPECT_STATUS(decap(f), DecapStatus::kOuterTruncated);
  f = v6.frame;
  store_be16(&f[18], static_cast<uint16_t>(f.size() - 54 + 1));
  EXPECT_STATUS(decap(f), DecapStatus::kOuterTruncated);

  // Header checksum.
  f = v4.frame;
  f[14 + 8] = 3;  // TTL changed, checksum not
  EXPECT_STATUS(decap(f), DecapStatus::kOuterBadChecksum);

  // Fragments: MF, an offset, an IPv6 fragment header.
  f = v4.frame;
  store_be16(&f[20], 0x2000);
  fix_ipv4_checksum(f);
  EXPECT_STATUS(decap(f), DecapStatus::kOuterFragment);
  f = v4.frame;
  store_be16(&f[20], 0x0010);
  fix_ipv4_checksum(f);
  EXPECT_STATUS(decap(f), DecapStatus::kOuterFragment);
  f = v6.frame;
  f[14 + 6] = 44;
  EXPECT_STATUS(decap(f), DecapStatus::kOuterFragment);
  // A first fragment of GUE shows its port; one of DNS is not ours.
  Encapsulated g = encap(inner_packet(Family::kIpv4), Encap::kGue, Family::kIpv4);
  store_be16(&g.frame[20], 0x2000);
  fix_ipv4_checksum(g.frame);
  EXPECT_STATUS(decap(g.frame), DecapStatus::kOuterFragment);
  store_be16(&g.frame[14 + 20 + 2], 53);
  EXPECT_STATUS(decap(g.frame), DecapStatus::kNotGuePort);
}

// ---------------------------------------------------------------------------------------
// GRE

// Rewrites the GRE header of a keyless GRE frame (outer IPv4) with the given flags and
// optional fields, fixing lengths and checksums.
Bytes gre_frame(Family inner_family, uint16_t flags, const Bytes& fields, uint16_t proto = 0,
                bool compute_checksum = false) {
  const Bytes inner = inner_packet(inner_family);
  Encapsulated e = encap(inner, Encap::kGre, Family::kIpv4);
  Bytes f(e.frame.begin(), e.frame.begin() + 34);
  uint8_t base[4];
  store_be16(base, flags);
  store_be16(base + 2, proto != 0 ? proto : (inner_family == Family::kIpv4 ? kEthTypeIpv4 : kEthTypeIpv6));
  append(f, base, 4);
  append(f, fields);
  append(f, inner);
  store_be16(&f[16], static_cast<uint16_t>(f.size() - 14));
  fix_ipv4_checksum(f);
  if (compute_checksum) {
    store_be16(&f[38], 0);
    store_be16(&f[38], csum_fold(csum_partial(&f[34], f.size() - 34)));
  }
  return f;
}

TEST(Decap, GreOptionalFields) {
  DecapConfig cfg = backend_config();
  // Checksum present and right.
  const Bytes csum = gre_frame(Family::kIpv4, 0x8000, Bytes(4, 0), 0, true);
  DecapResult r = decap(csum, cfg);
  ASSERT_EQ(r.status, DecapStatus::kOk);
  EXPECT_EQ(r.inner_offset, 34u + 8u);
  // ... and wrong, unless the sender left it to offload.
  Bytes bad = csum;
  bad[38] ^= 0x01;
  EXPECT_STATUS(decap(bad, cfg), DecapStatus::kGreBadChecksum);
  EXPECT_EQ(decap(bad, cfg, kDecapChecksumNotReady).status, DecapStatus::kOk);

  // Sequence number: skipped.
  r = decap(gre_frame(Family::kIpv6, 0x1000, {0, 0, 0, 9}), cfg);
  ASSERT_EQ(r.status, DecapStatus::kOk);
  EXPECT_EQ(r.inner_offset, 34u + 8u);

  // Checksum, key and sequence number together.
  cfg.has_gre_key = true;
  cfg.gre_key = 0x01020304;
  r = decap(gre_frame(Family::kIpv4, 0xb000, {0, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0, 1}, 0, true), cfg);
  ASSERT_EQ(r.status, DecapStatus::kOk);
  EXPECT_EQ(r.inner_offset, 34u + 16u);
}

TEST(Decap, GreRefused) {
  const DecapConfig cfg = backend_config();
  EXPECT_STATUS(decap(gre_frame(Family::kIpv4, 0x0001, {})), DecapStatus::kGreUnsupported);  // version 1 (PPTP)
  EXPECT_STATUS(decap(gre_frame(Family::kIpv4, 0x4000, Bytes(4, 0))), DecapStatus::kGreUnsupported);  // routing
  EXPECT_STATUS(decap(gre_frame(Family::kIpv4, 0x0800, {})), DecapStatus::kGreUnsupported);  // strict source route
  EXPECT_STATUS(decap(gre_frame(Family::kIpv4, 0x0400, {})), DecapStatus::kGreUnsupported);  // recursion
  // Reserved bits 6-12 are ignored on receipt (RFC 2784).
  EXPECT_EQ(decap(gre_frame(Family::kIpv4, 0x00f8, {})).status, DecapStatus::kOk);
  // Transparent Ethernet bridging and other payloads are not IP.
  EXPECT_STATUS(decap(gre_frame(Family::kIpv4, 0, {}, 0x6558)), DecapStatus::kGreNotIp);
  // The protocol type says IPv4, the packet is IPv6.
  EXPECT_STATUS(decap(gre_frame(Family::kIpv6, 0, {}, kEthTypeIpv4)), DecapStatus::kInnerVersionMismatch);

  // Truncated: no room for the base header, or for the fields the flags announce.
  Bytes f = gre_frame(Family::kIpv4, 0, {});
  f.resize(34 + 3);
  store_be16(&f[16], 23);
  fix_ipv4_checksum(f);
  EXPECT_STATUS(decap(f), DecapStatus::kGreTruncated);
  f = gre_frame(Family::kIpv4, 0x2000, {});
  f.resize(34 + 6);
  store_be16(&f[16], 26);
  fix_ipv4_checksum(f);
  EXPECT_STATUS(decap(f), DecapStatus::kGreTruncated);
  (void)cfg;
}

TEST(Decap, GreKeys) {
  const Bytes inner = inner_packet(Family::kIpv4);
  const Bytes keyed = encap(inner, Encap::kGre, Family::kIpv6, true, 42).frame;
  const Bytes keyless = encap(inner, Encap::kGre, Family::kIpv6).frame;
  DecapConfig cfg = backend_config();
  // No key configured: keyless only.
  EXPECT_EQ(decap(keyless, cfg).status, DecapStatus::kOk);
  EXPECT_STATUS(decap(keyed, cfg), DecapStatus::kGreWrongKey);
  // Key configured: that key only.
  cfg.has_gre_key = true;
  cfg.gre_key = 42;
  EXPECT_EQ(decap(keyed, cfg).status, DecapStatus::kOk);
  EXPECT_STATUS(decap(keyless, cfg), DecapStatus::kGreWrongKey);
  cfg.gre_key = 43;
  EXPECT_STATUS(decap(keyed, cfg), DecapStatus::kGreWrongKey);
  cfg.gre_key = 0;  // zero is a key like any other
  EXPECT_STATUS(decap(keyed, cfg), DecapStatus::kGreWrongKey);
  EXPECT_EQ(decap(encap(inner, Encap::kGre, Family::kIpv4, true, 0).frame, cfg).status, DecapStatus::kOk);
}

// ---------------------------------------------------------------------------------------
// GUE

TEST(Decap, GueUdpProblems) {
  const Encapsulated v4 = encap(inner_packet(Family::kIpv4), Encap::kGue, Family::kIpv4);
  const Encapsulated v6 = encap(inner_packet(Family::kIpv4), Encap::kGue, Family::kIpv6);
  const size_t udp4 = 14 + 20;
  const size_t udp6 = 14 + 40;

  // UDP header cut.
  Bytes f(v4.frame.begin(), v4.frame.begin() + static_cast<long>(udp4 + 6));
  store_be16(&f[16], 26);
  fix_ipv4_checksum(f);
  EXPECT_STATUS(decap(f), DecapStatus::kUdpTruncated);

  // UDP length below 8, above the IP payload.
  f = v4.frame;
  store_be16(&f[udp4 + 4], 7);
  EXPECT_STATUS(decap(f), DecapStatus::kUdpBadLength);
  f = v4.frame;
  store_be16(&f[udp4 + 4], static_cast<uint16_t>(load_be16(&f[udp4 + 4]) + 1));
  EXPECT_STATUS(decap(f), DecapStatus::kUdpBadLength);
  // UDP length 8: nothing inside.
  f = Bytes(v4.frame.begin(), v4.frame.begin() + static_cast<long>(udp4 + 8));
  store_be16(&f[16], 28);
  store_be16(&f[udp4 + 4], 8);
  fix_ipv4_checksum(f);
  EXPECT_STATUS(decap(f), DecapStatus::kInnerTruncated);

  // Checksums: IPv4 without one is fine; with a wrong one it is not (unless offloaded);
  // IPv6 must have a right one.
  EXPECT_EQ(load_be16(&v4.frame[udp4 + 6]), 0);
  ASSERT_NE(load_be16(&v6.frame[udp6 + 6]), 0);
  f = v4.frame;
  store_be16(&f[udp4 + 6], 0x1234);
  EXPECT_STATUS(decap(f), DecapStatus::kUdpBadChecksum);
  EXPECT_EQ(decap(f, backend_config(), kDecapChecksumNotReady).status, DecapStatus::kOk);
  f = v6.frame;
  f[f.size() - 1] ^= 0x20;  // payload byte changed, checksum not
  // (the inner TCP checksum breaks too, which is the inner stack's business)
  EXPECT_STATUS(decap(f), DecapStatus::kUdpBadChecksum);
  f = v6.frame;
  store_be16(&f[udp6 + 6], 0);
  EXPECT_STATUS(decap(f), DecapStatus::kUdpBadChecksum);

  // A UDP checksum computed over the v4 frame is verified.
  f = v4.frame;
  const IpAddr src = IpAddr::v4(&f[14 + 12]);
  const IpAddr dst = IpAddr::v4(&f[14 + 16]);
  const uint32_t ulen = load_be16(&f[udp4 + 4]);
  store_be16(&f[udp4 + 6], csum_fold(csum_partial(&f[udp4], ulen, pseudo_header_sum(src, dst, kProtoUdp, ulen))));
  EXPECT_EQ(decap(f).status, DecapStatus::kOk);

  // Bytes after the UDP length inside the IP packet are ignored.
  f = v4.frame;
  f.push_back(0xee);
  store_be16(&f[16], static_cast<uint16_t>(f.size() - 14));
  fix_ipv4_checksum(f);
  const DecapResult r = decap(f);
  ASSERT_EQ(r.status, DecapStatus::kOk);
  EXPECT_EQ(r.inner_length, v4.inner.size());

  // Variant 0 (a GUE header: first bits 00) and nonsense versions.
  for (uint8_t first : {uint8_t{0x00}, uint8_t{0x20}, uint8_t{0x50}, uint8_t{0x70}, uint8_t{0xc0}}) {
    f = v4.frame;
    f[udp4 + 8] = first;
    EXPECT_STATUS(decap(f), DecapStatus::kGueUnsupported);
  }
}

// ---------------------------------------------------------------------------------------
// The inner packet

TEST(Decap, InnerPacketProblems) {
  const Bytes in4 = inner_packet(Family::kIpv4);
  const Bytes in6 = inner_packet(Family::kIpv6);

  // IPIP: protocol 4 must carry IPv4, 41 IPv6.
  Bytes f = encap(in6, Encap::kIpip, Family::kIpv4).frame;
  f[14 + 9] = kProtoIpip;
  fix_ipv4_checksum(f);
  EXPECT_STATUS(decap(f), DecapStatus::kInnerVersionMismatch);
  f = encap(in4, Encap::kIpip, Family::kIpv6).frame;
  f[14 + 6] = kProtoIpv6;
  EXPECT_STATUS(decap(f), DecapStatus::kInnerVersionMismatch);

  // Inner length disagreeing with the tunnel payload, both ways.
  for (int delta : {-1, 1, 100}) {
    f = encap(in4, Encap::kIpip, Family::kIpv4).frame;
    store_be16(&f[34 + 2], static_cast<uint16_t>(in4.size() + static_cast<size_t>(delta)));
    EXPECT_STATUS(decap(f), DecapStatus::kInnerBadLength) << delta;
    f = encap(in6, Encap::kGre, Family::kIpv6).frame;
    store_be16(&f[54 + 4 + 4], static_cast<uint16_t>(in6.size() - 40 + static_cast<size_t>(delta)));
    EXPECT_STATUS(decap(f), DecapStatus::kInnerBadLength) << delta;
  }

  // Inner IPv4 header length below 20, or beyond the packet.
  f = encap(in4, Encap::kIpip, Family::kIpv4).frame;
  f[34] = 0x44;
  EXPECT_STATUS(decap(f), DecapStatus::kInnerBadHeader);

  // Inner packets shorter than their minimum header.
  for (size_t len : {size_t{0}, size_t{1}, size_t{19}}) {
    Bytes small(in4.begin(), in4.begin() + static_cast<long>(len));
    Bytes frame = encap(in4, Encap::kIpip, Family::kIpv4).frame;
    frame.resize(34);
    frame.insert(frame.end(), small.begin(), small.end());
    store_be16(&frame[16], static_cast<uint16_t>(20 + len));
    fix_ipv4_checksum(frame);
    EXPECT_STATUS(decap(frame), DecapStatus::kInnerTruncated) << len;
  }
  Bytes frame = encap(in6, Encap::kIpip, Family::kIpv6).frame;
  frame.resize(54 + 39);
  store_be16(&frame[18], 39);
  EXPECT_STATUS(decap(frame), DecapStatus::kInnerTruncated);
}

// ---------------------------------------------------------------------------------------
// Admission: only from a mux, only to a VIP

TEST(Decap, RefusesTunnelPacketsFromOutsideTheMuxSources) {
  for (Encap kind : {Encap::kIpip, Encap::kGre, Encap::kGue}) {
    for (Family outer : {Family::kIpv4, Family::kIpv6}) {
      Bytes f = encap(inner_packet(Family::kIpv4), kind, outer).frame;
      EXPECT_STATUS(decap(f), DecapStatus::kOk);
      const size_t src = outer == Family::kIpv4 ? 14 + 12 : 14 + 8;
      f[src + (outer == Family::kIpv4 ? 2 : 7)] ^= 0x01;  // 10.0.1.1 / fd00:0:0:100::1: outside
      if (outer == Family::kIpv4) fix_ipv4_checksum(f);
      const DecapResult r = decap(f, backend_config(), kDecapChecksumNotReady);
      EXPECT_STATUS(r, DecapStatus::kSourceNotMux);
      EXPECT_EQ(r.kind, kind);
      DecapConfig any = backend_config();
      any.mux_sources.clear();  // not checked
      EXPECT_STATUS(decap(f, any, kDecapChecksumNotReady), DecapStatus::kOk);
    }
  }
  // Frames that are not ours stay "not ours", whatever their source.
  Bytes udp = encap(inner_packet(Family::kIpv4), Encap::kGue, Family::kIpv4, false, 0, 9999).frame;
  udp[14 + 14] ^= 0x01;
  fix_ipv4_checksum(udp);
  EXPECT_STATUS(decap(udp, backend_config(), kDecapChecksumNotReady), DecapStatus::kNotGuePort);
}

TEST(Decap, PrefixBoundaries) {
  const IpPrefix p{ip("10.0.0.128"), 25};
  EXPECT_TRUE(p.contains(ip("10.0.0.128")));
  EXPECT_TRUE(p.contains(ip("10.0.0.255")));
  EXPECT_FALSE(p.contains(ip("10.0.0.127")));
  EXPECT_FALSE(p.contains(ip("::ffff:10.0.0.200")));
  EXPECT_TRUE((IpPrefix{ip("0.0.0.0"), 0}).contains(ip("203.0.113.9")));
  EXPECT_FALSE((IpPrefix{ip("0.0.0.0"), 0}).contains(ip("2001:db8::1")));
  EXPECT_TRUE((IpPrefix{ip("fd00::1"), 128}).contains(ip("fd00::1")));
  EXPECT_FALSE((IpPrefix{ip("fd00::1"), 128}).contains(ip("fd00::2")));
  EXPECT_TRUE((IpPrefix{ip("fd00::"), 7}).contains(ip("fc00::9")));
}

TEST(Decap, DeliversOnlyInnerPacketsAddressedToAVip) {
  for (Family inner : {Family::kIpv4, Family::kIpv6}) {
    for (Encap kind : {Encap::kIpip, Encap::kGre, Encap::kGue}) {
      Bytes in = inner_packet(inner);
      // The backend's own address (its SSH, its other services) instead of the VIP.
      if (inner == Family::kIpv4) {
        std::memcpy(&in[16], kBackend4.bytes.data(), 4);
      } else {
        std::memcpy(&in[24], kBackend6.bytes.data(), 16);
      }
      const Bytes f = encap(in, kind, Family::kIpv4).frame;
      EXPECT_STATUS(decap(f, backend_config(), kDecapChecksumNotReady), DecapStatus::kInnerNotVip);
      DecapConfig any = backend_config();
      any.vips.clear();
      EXPECT_STATUS(decap(f, any, kDecapChecksumNotReady), DecapStatus::kOk);
    }
  }
}

TEST(Decap, StatusNames) {
  for (size_t i = 0; i < kDecapStatusCount; ++i) {
    const std::string_view n = decap_status_name(static_cast<DecapStatus>(i));
    EXPECT_FALSE(n.empty());
    for (size_t j = 0; j < i; ++j) EXPECT_NE(n, decap_status_name(static_cast<DecapStatus>(j)));
  }
  EXPECT_EQ(decap_status_name(DecapStatus::kOk), "decapsulated");
  EXPECT_EQ(decap_status_name(DecapStatus::kCount), "unknown");
}

}  // namespace
}  // namespace l4mux
