// Flow records: the 64-byte layout shared with src/cluster/record.ts. The golden bytes here
// are the same as in test/cluster/record.test.ts, so both sides agree on every field.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cluster/flow_record.h"
#include "cluster/wire_entry.h"
#include "frame_builder.h"

namespace l4mux::cluster {
namespace {

using l4mux::testing::ip;

std::vector<uint8_t> from_hex(const std::string& hex) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<uint8_t>(std::stoul(hex.substr(i, 2), nullptr, 16)));
  return out;
}

// IPv4 TCP, new, proven + must-sync, owner 1, backup 2.
const std::string kGoldenV4 =
    "01010406030102ff"
    "00000000000000000000ffffc6336407"
    "00000000000000000000ffffc000020a"
    "00000000000000000000ffff0a010002"
    "9c40005000000384";
// IPv6 UDP, teach for member 1, proven, owner 0, backup 2, an IPv4 backend (4-in-6 tunnel).
const std::string kGoldenV6 =
    "0104061101000201"
    "20010db8000000000000000000000007"
    "20010db8000100000000000000000010"
    "00000000000000000000ffff0a010003"
    "14e900350000003c";

FlowKey key(const std::string& client, uint16_t cport, const std::string& vip, uint16_t vport, uint8_t proto) {
  FlowKey k;
  const IpAddr c = ip(client);
  const IpAddr v = ip(vip);
  k.family = c.family;
  k.src = c.bytes;
  k.dst = v.bytes;
  k.src_port = cport;
  k.dst_port = vport;
  k.proto = proto;
  return k;
}

FlowRecord golden_v4() {
  FlowRecord r;
  r.kind = RecordKind::kNew;
  r.flags = kRecordProven | kRecordMustSync;
  r.owner = 1;
  r.backup = 2;
  r.key = key("198.51.100.7", 40000, "192.0.2.10", 80, kProtoTcp);
  r.backend = ip("10.1.0.2");
  r.lifetime_s = 900;
  return r;
}

FlowRecord golden_v6() {
  FlowRecord r;
  r.kind = RecordKind::kTeach;
  r.flags = kRecordProven;
  r.owner = 0;
  r.backup = 2;
  r.peer = 1;
  r.key = key("2001:db8::7", 5353, "2001:db8:1::10", 53, kProtoUdp);
  r.backend = ip("10.1.0.3");
  r.lifetime_s = 60;
  return r;
}

void expect_same(const FlowRecord& a, const FlowRecord& b) {
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.flags, b.flags);
  EXPECT_EQ(a.owner, b.owner);
  EXPECT_EQ(a.backup, b.backup);
  EXPECT_EQ(a.peer, b.peer);
  EXPECT_TRUE(a.key == b.key);
  EXPECT_TRUE(a.backend == b.backend);
  EXPECT_EQ(a.lifetime_s, b.lifetime_s);
}

TEST(FlowRecord, EncodesTheGoldenBytes) {
  uint8_t out[kFlowRecordSize];
  encode_flow_record(golden_v4(), out);
  EXPECT_EQ(std::vector<uint8_t>(out, out + kFlowRecordSize), from_hex(kGoldenV4));
  encode_flow_record(golden_v6(), out);
  EXPECT_EQ(std::vector<uint8_t>(out, out + kFlowRecordSize), from_hex(kGoldenV6));
}

TEST(FlowRecord, DecodesTheGoldenBytes) {
  FlowRecord r;
  const auto v4 = from_hex(kGoldenV4);
  ASSERT_EQ(decode_flow_record(v4.data(), v4.size(), &r), RecordError::kOk);
  expect_same(r, golden_v4());
  const auto v6 = from_hex(kGoldenV6);
  ASSERT_EQ(decode_flow_record(v6.data(), v6.size(), &r), RecordError::kOk);
  expect_same(r, golden_v6());
  EXPECT_TRUE(r.backend.is_v4());
}

TEST(FlowRecord, AnEndRecordMayOmitTheBackend) {
  FlowRecord r = golden_v4();
  r.kind = RecordKind::kEnd;
  r.backend = IpAddr{};
  r.lifetime_s = 0;
  uint8_t out[kFlowRecordSize];
  encode_flow_record(r, out);
  FlowRecord back;
  ASSERT_EQ(decode_flow_record(out, sizeof(out), &back), RecordError::kOk);
  EXPECT_EQ(back.backend.family, Family::kNone);
  r.kind = RecordKind::kNew;
  encode_flow_record(r, out);
  EXPECT_EQ(decode_flow_record(out, sizeof(out), &back), RecordError::kBadAddress);
}

TEST(FlowRecord, RefusesWhatWouldMisplaceAFlow) {
  const auto good = from_hex(kGoldenV4);
  FlowRecord r;
  auto with = [&](size_t at, uint8_t value) {
    auto b = good;
    b[at] = value;
    return decode_flow_record(b.data(), b.size(), &r);
  };
  EXPECT_EQ(decode_flow_record(good.data(), 63, &r), RecordError::kTruncated);
  EXPECT_EQ(with(0, 2), RecordError::kBadVersion);
  EXPECT_EQ(with(1, 0), RecordError::kBadKind);
  EXPECT_EQ(with(1, 5), RecordError::kBadKind);
  EXPECT_EQ(with(2, 5), RecordError::kBadFamily);
  EXPECT_EQ(with(3, 1), RecordError::kBadProtocol);
  EXPECT_EQ(with(4, 0x08), RecordError::kBadFlags);
  EXPECT_EQ(with(7, 1), RecordError::kBadMember);       // a peer on a non-teach record
  EXPECT_EQ(with(1, 4), RecordError::kBadMember);       // a teach record without a peer
  EXPECT_EQ(with(2, 6), RecordError::kBadAddress);      // IPv4-mapped addresses in an IPv6 flow
  EXPECT_EQ(with(18, 0xfe), RecordError::kBadAddress);  // the client not IPv4-mapped
}

TEST(FlowRecord, NamesEveryError) {
  for (size_t e = 0; e < static_cast<size_t>(RecordError::kCount); ++e) {
    EXPECT_NE(record_error_name(static_cast<RecordError>(e)), "unknown");
  }
}

// ---- Wire entries (the channel's compact form; src/cluster/wire.ts has the same codec) ----

// kGoldenV4 on the wire: kind, flags, protocol, 0, lifetime, ports, client, VIP, backend.
const std::string kGoldenV4Wire = "0103060000000384" "9c400050c6336407" "c000020a0a010002";

TEST(WireEntry, EncodesTheGoldenBytesAndDecodesThemAsAPeerEntry) {
  std::vector<uint8_t> recs(2 * kFlowRecordSize);
  encode_flow_record(golden_v4(), recs.data());
  encode_flow_record(golden_v6(), recs.data() + kFlowRecordSize);
  EXPECT_EQ(wire_entry_size(recs.data()), 24u);
  EXPECT_EQ(wire_entry_size(recs.data() + kFlowRecordSize), 48u) << "IPv6 flow, IPv4 backend";
  std::vector<uint8_t> wire(200);
  const WireEncodeResult r = encode_wire_entries(recs.data(), 2, 0, WireSelect{}, wire.data(), wire.size());
  EXPECT_EQ(r.next, 2u);
  EXPECT_EQ(r.count, 2u);
  ASSERT_EQ(r.bytes, 72u);
  EXPECT_EQ(std::vector<uint8_t>(wire.begin(), wire.begin() + 24), from_hex(kGoldenV4Wire));

  std::vector<uint8_t> back(2 * kFlowRecordSize);
  ASSERT_TRUE(decode_wire_entries(wire.data(), r.bytes, 2, back.data()));
  FlowRecord v4, v6;
  ASSERT_EQ(decode_flow_record(back.data(), kFlowRecordSize, &v4), RecordError::kOk);
  ASSERT_EQ(decode_flow_record(back.data() + kFlowRecordSize, kFlowRecordSize, &v6), RecordError::kOk);
  FlowRecord want4 = golden_v4();
  want4.flags |= kRecordFromPeer;
  want4.owner = want4.backup = kNoMember;
  expect_same(v4, want4);
  FlowRecord want6 = golden_v6();
  want6.kind = RecordKind::kNew;  // a teach arrives as an ordinary entry
  want6.flags |= kRecordFromPeer;
  want6.owner = want6.backup = want6.peer = kNoMember;
  expect_same(v6, want6);
}

TEST(WireEntry, SelectsAMembersRecordsAndStopsWhereTheNextDoesNotFit) {
  std::vector<uint8_t> recs(3 * kFlowRecordSize);
  encode_flow_record(golden_v4(), recs.data());                     // owner 1, backup 2
  encode_flow_record(golden_v6(), recs.data() + kFlowRecordSize);   // teach for member 1
  FlowRecord refresh = golden_v4();
  refresh.kind = RecordKind::kRefresh;
  refresh.owner = 0;
  refresh.backup = 2;
  encode_flow_record(refresh, recs.data() + 2 * kFlowRecordSize);
  std::vector<uint8_t> out(200);
  auto count = [&](uint8_t member, bool is_refresh) {
    return encode_wire_entries(recs.data(), 3, 0, WireSelect{member, is_refresh}, out.data(), out.size()).count;
  };
  EXPECT_EQ(count(1, false), 2u) << "owner of the first, asker of the teach";
  EXPECT_EQ(count(1, true), 0u);
  EXPECT_EQ(count(2, false), 1u) << "backup of the first; a teach goes to its asker only";
  EXPECT_EQ(count(2, true), 1u);
  EXPECT_EQ(count(0, false), 0u);
  EXPECT_EQ(count(0, true), 1u);
  // Room for the 24-byte entry and not the 48-byte one: stops at the second record.
  const WireEncodeResult r = encode_wire_entries(recs.data(), 3, 0, WireSelect{}, out.data(), 24 + 47);
  EXPECT_EQ(r.count, 1u);
  EXPECT_EQ(r.next, 1u);
  EXPECT_EQ(r.bytes, 24u);
}

TEST(WireEntry, RefusesAMalformedBatchWhole) {
  std::vector<uint8_t> rec(kFlowRecordSize);
  encode_flow_record(golden_v4(), rec.data());
  std::vector<uint8_t> wire(48);
  ASSERT_EQ(encode_wire_entry(rec.data(), wire.data()), 24u);
  ASSERT_EQ(encode_wire_entry(rec.data(), wire.data() + 24), 24u);
  std::vector<uint8_t> out(3 * kFlowRecordSize);
  EXPECT_TRUE(decode_wire_entries(wire.data(), 48, 2, out.data()));
  EXPECT_FALSE(decode_wire_entries(wire.data(), 48, 1, out.data())) << "trailing bytes";
  EXPECT_FALSE(decode_wire_entries(wire.data(), 48, 3, out.data())) << "truncated";
  EXPECT_FALSE(decode_wire_entries(wire.data(), 47, 2, out.data())) << "truncated";
  const std::pair<size_t, uint8_t> corruptions[] = {{24, 9}, {26, 1}, {27, 1}, {25, 0x08}, {25, 0x23}};
  for (const auto& [at, value] : corruptions) {
    std::vector<uint8_t> bad = wire;
    bad[at] = value;
    EXPECT_FALSE(decode_wire_entries(bad.data(), 48, 2, out.data())) << "byte " << at << " = " << int{value};
  }
}

}  // namespace
}  // namespace l4mux::cluster

