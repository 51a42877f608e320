#include "conntrack.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "hash.h"

namespace l4mux {
namespace {

// Distinct values, so that a state given the wrong timeout shows.
ConntrackTimeouts test_timeouts() {
  ConntrackTimeouts t;
  t.tcp_syn_ns = 1000;
  t.tcp_established_ns = 9000;
  t.tcp_closing_ns = 3000;
  t.udp_ns = 6000;
  t.other_ns = 2000;
  t.tcp_unproven_ns = 500;
  return t;
}

ConntrackConfig config(uint32_t capacity) { return ConntrackConfig{capacity, test_timeouts()}; }

FlowKey v4_key(uint32_t src, uint16_t src_port, uint8_t proto = kProtoTcp) {
  FlowKey k;
  k.family = Family::kIpv4;
  k.src = {10, static_cast<uint8_t>(src >> 16), static_cast<uint8_t>(src >> 8),
           static_cast<uint8_t>(src)};
  k.dst = {192, 0, 2, 1};
  k.src_port = src_port;
  k.dst_port = 443;
  k.proto = proto;
  return k;
}

FlowKey v6_key(uint8_t last, uint16_t src_port) {
  FlowKey k;
  k.family = Family::kIpv6;
  k.src = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last};
  k.dst = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0f, 0xff};
  k.src_port = src_port;
  k.dst_port = 80;
  k.proto = kProtoTcp;
  return k;
}

uint64_t hash_of(const FlowKey& k) { return hash_flow(k, HashFields::kFiveTuple, 0x1234); }

// Hashes that all land in bucket `bucket` but carry distinct tags (1, 2, ...).
uint64_t bucket_hash(uint32_t bucket, uint32_t n) { return (uint64_t{n + 1} << 32) | bucket; }

// An established, proven flow: picked up mid-flow and seen again at once.
FlowEntry* established(Conntrack& ct, const FlowKey& k, uint64_t h, uint32_t backend, uint64_t now) {
  FlowEntry* e = ct.insert(k, h, backend, 0x10, now);
  ct.touch(*e, 0x10, now);
  return e;
}

TEST(Conntrack, InsertThenLookupHits) {
  Conntrack ct(config(1024));
  const FlowKey k = v4_key(1, 1000);
  const uint64_t h = hash_of(k);
  FlowEntry* e = ct.insert(k, h, 7, kTcpSyn, 100);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(ct.lookup(k, h, 100), e);
  EXPECT_EQ(e->key, k);
  EXPECT_EQ(e->backend, 7u);
  EXPECT_EQ(e->state, FlowState::kTcpSynSeen);
  EXPECT_EQ(e->expires_ns, 100u + 1000u);
  EXPECT_EQ(ct.stats().inserts, 1u);
  EXPECT_EQ(ct.stats().live_entries, 1u);
}

TEST(Conntrack, LookupMisses) {
  Conntrack ct(config(1024));
  const FlowKey k = v4_key(1, 1000);
  EXPECT_EQ(ct.lookup(k, hash_of(k), 0), nullptr);
  ct.insert(k, hash_of(k), 1, kTcpSyn, 0);
  const FlowKey other = v4_key(1, 1001);
  EXPECT_EQ(ct.lookup(other, hash_of(other), 0), nullptr);
  // The right key under the wrong hash looks in the wrong place (or with the wrong tag).
  EXPECT_EQ(ct.lookup(k, hash_of(k) ^ (uint64_t{1} << 40), 0), nullptr);
}

// Every field of the 5-tuple is compared, even when bucket and tag are identical.
TEST(Conntrack, SameBucketAndTagKeysAreToldApart) {
  Conntrack ct(config(1024));
  const uint64_t h = 0xabcdef0012345678ull;  // one hash for all: same bucket, same tag
  const FlowKey base = v4_key(1, 1000);
  std::vector<FlowKey> keys{base};
  {
    FlowKey k = base;
    k.src[3] ^= 1;
    keys.push_back(k);
  }
  {
    FlowKey k = base;
    k.dst[0] ^= 1;
    keys.push_back(k);
  }
  {
    FlowKey k = base;
    k.src_port += 1;
    keys.push_back(k);
  }
  {
    FlowKey k = base;
    k.dst_port += 1;
    keys.push_back(k);
  }
  {
    FlowKey k = base;
    k.proto = kProtoUdp;
    keys.push_back(k);
  }
  {
    FlowKey k = base;
    k.family = Family::kIpv6;  // same bytes, other family
    keys.push_back(k);
  }
  {
    FlowKey k = base;
    k.src[15] = 1;  // a byte IPv4 leaves zero
    keys.push_back(k);
  }
  ASSERT_EQ(keys.size(), kConntrackWays);

  std::vector<FlowEntry*> entries;
  for (uint32_t i = 0; i < keys.size(); ++i) entries.push_back(ct.insert(keys[i], h, i, kTcpSyn, 0));
  EXPECT_EQ(ct.stats().evictions, 0u);
  for (uint32_t i = 0; i < keys.size(); ++i) {
    FlowEntry* e = ct.lookup(keys[i], h, 0);
    ASSERT_EQ(e, entries[i]) << "key " << i;
    EXPECT_EQ(e->backend, i);
    EXPECT_EQ(e->key, keys[i]);
  }
  // Erasing one leaves the others findable.
  ct.erase(*entries[0]);
  EXPECT_EQ(ct.lookup(keys[0], h, 0), nullptr);
  for (uint32_t i = 1; i < keys.size(); ++i) EXPECT_EQ(ct.lookup(keys[i], h, 0), entries[i]);
}

// A hash whose tag bits are 0 (the empty marker) still finds its flow, and is told apart from
// the flow whose tag it is mapped onto.
TEST(Conntrack, ZeroTagHashesWork) {
  Conntrack ct(config(64));
  const FlowKey a = v4_key(1, 1);
  const FlowKey b = v4_key(2, 2);
  const uint64_t ha = 0x0000000000000005ull;  // tag bits 0
  const uint64_t hb = 0x0000000100000005ull;  // tag bits 1, same bucket
  FlowEntry* ea = ct.insert(a, ha, 1, kTcpSyn, 0);
  FlowEntry* eb = ct.insert(b, hb, 2, kTcpSyn, 0);
  EXPECT_NE(ea, eb);
  EXPECT_EQ(ct.lookup(a, ha, 0), ea);
  EXPECT_EQ(ct.lookup(b, hb, 0), eb);
  EXPECT_EQ(ct.lookup(a, hb, 0), ea);  // same bucket, same (mapped) tag: the key decides
}

TEST(Conntrack, NextFlowStateTcp) {
  using S = FlowState;
  const auto next = [](S s, uint8_t flags) { return next_flow_state(s, kProtoTcp, flags); };
  // First packet of a flow.
  EXPECT_EQ(next(S::kFree, kTcpSyn), S::kTcpSynSeen);
  EXPECT_EQ(next(S::kFree, kTcpAck), S::kTcpEstablished);
  EXPECT_EQ(next(S::kFree, kTcpAck | kTcpPsh), S::kTcpEstablished);
  EXPECT_EQ(next(S::kFree, kTcpSyn | kTcpAck), S::kTcpEstablished);
  EXPECT_EQ(next(S::kFree, 0), S::kTcpEstablished);
  EXPECT_EQ(next(S::kFree, kTcpFin | kTcpAck), S::kTcpClosing);
  EXPECT_EQ(next(S::kFree, kTcpRst), S::kTcpClosing);
  EXPECT_EQ(next(S::kFree, kTcpSyn | kTcpFin), S::kTcpClosing);
  // SYN seen.
  EXPECT_EQ(next(S::kTcpSynSeen, kTcpSyn), S::kTcpSynSeen);  // retransmitted SYN
  EXPECT_EQ(next(S::kTcpSynSeen, kTcpAck), S::kTcpEstablished);
  EXPECT_EQ(next(S::kTcpSynSeen, kTcpAck | kTcpPsh), S::kTcpEstablished);
  EXPECT_EQ(next(S::kTcpSynSeen, kTcpSyn | kTcpAck), S::kTcpSynSeen);
  EXPECT_EQ(next(S::kTcpSynSeen, 0), S::kTcpSynSeen);
  EXPECT_EQ(next(S::kTcpSynSeen, kTcpRst), S::kTcpClosing);
  EXPECT_EQ(next(S::kTcpSynSeen, kTcpFin | kTcpAck), S::kTcpClosing);
  // Established.
  EXPECT_EQ(next(S::kTcpEstablished, kTcpAck), S::kTcpEstablished);
  EXPECT_EQ(next(S::kTcpEstablished, kTcpSyn), S::kTcpEstablished);
  EXPECT_EQ(next(S::kTcpEstablished, kTcpFin | kTcpAck), S::kTcpClosing);
  EXPECT_EQ(next(S::kTcpEstablished, kTcpRst | kTcpAck), S::kTcpClosing);
  // Closing stays closing; a new SYN on a closing entry is the pipeline's to handle.
  EXPECT_EQ(next(S::kTcpClosing, kTcpAck), S::kTcpClosing);
  EXPECT_EQ(next(S::kTcpClosing, kTcpSyn), S::kTcpClosing);
  EXPECT_EQ(next(S::kTcpClosing, kTcpFin), S::kTcpClosing);
}

TEST(Conntrack, NextFlowStateOtherProtocols) {
  for (FlowState s : {FlowState::kFree, FlowState::kUdp, FlowState::kTcpEstablished}) {
    EXPECT_EQ(next_flow_state(s, kProtoUdp, 0), FlowState::kUdp);
    EXPECT_EQ(next_flow_state(s, kProtoUdp, kTcpFin | kTcpRst), FlowState::kUdp);  // flags ignored
    EXPECT_EQ(next_flow_state(s, kProtoIcmp, 0), FlowState::kOther);
    EXPECT_EQ(next_flow_state(s, kProtoGre, kTcpSyn), FlowState::kOther);
  }
}

// A flow is live strictly before its deadline and gone at it.
void expect_expires_at(Conntrack& ct, const FlowKey& k, uint64_t h, uint64_t deadline) {
  EXPECT_NE(ct.lookup(k, h, deadline - 1), nullptr) << "deadline " << deadline;
  EXPECT_EQ(ct.lookup(k, h, deadline), nullptr) << "deadline " << deadline;
  EXPECT_EQ(ct.lookup(k, h, deadline + 1), nullptr) << "deadline " << deadline;
}

TEST(Conntrack, SynSeenTimeout) {
  Conntrack ct(config(64));
  const FlowKey k = v4_key(1, 1);
  FlowEntry* e = ct.insert(k, hash_of(k), 0, kTcpSyn, 500);
  EXPECT_EQ(e->state, FlowState::kTcpSynSeen);
  expect_expires_at(ct, k, hash_of(k), 500 + 1000);
}

TEST(Conntrack, SynThenAckEstablishes) {
  Conntrack ct(config(64));
  const FlowKey k = v4_key(1, 1);
  const uint64_t h = hash_of(k);
  FlowEntry* e = ct.insert(k, h, 0, kTcpSyn, 0);
  ct.touch(*e, kTcpSyn, 400);  // retransmit: still SYN seen, deadline refreshed
  EXPECT_EQ(e->state, FlowState::kTcpSynSeen);
  EXPECT_EQ(e->expires_ns, 400u + 1000u);
  ct.touch(*e, kTcpAck, 700);
  EXPECT_EQ(e->state, FlowState::kTcpEstablished);
  expect_expires_at(ct, k, h, 700 + 9000);
}

TEST(Conntrack, EstablishedTouchRefreshesDeadline) {
  Conntrack ct(config(64));
  const FlowKey k = v4_key(1, 1);
  const uint64_t h = hash_of(k);
  FlowEntry* e = ct.insert(k, h, 0, kTcpAck, 0);
  EXPECT_EQ(e->state, FlowState::kTcpEstablished);  // mid-flow pickup: unproven
  EXPECT_TRUE(is_unproven(*e));
  EXPECT_EQ(e->expires_ns, 500u);
  ct.touch(*e, kTcpAck, 400);  // it repeats: proven, the established timeout from now on
  EXPECT_FALSE(is_unproven(*e));
  EXPECT_EQ(e->expires_ns, 400u + 9000u);
  ct.touch(*e, kTcpAck | kTcpPsh, 8000);
  EXPECT_EQ(e->state, FlowState::kTcpEstablished);
  expect_expires_at(ct, k, h, 8000 + 9000);
}

TEST(Conntrack, DeadlineMovesOnlyOnceBehindBy64thOfTheTimeout) {
  // Established timeout 9000 ns: the step is 9000 / 64 = 140 ns.
  Conntrack ct(config(64));
  const FlowKey k = v4_key(1, 1);
  const uint64_t h = hash_of(k);
  FlowEntry* e = established(ct, k, h, 0, 0);
  ct.touch(*e, kTcpAck, 139);  // would move it by 139 ns: left alone, the flow expires early
  expect_expires_at(ct, k, h, 9000);
  ct.touch(*e, kTcpAck, 140);
  expect_expires_at(ct, k, h, 140 + 9000);
  // A change of state is always written, however small the step.
  ct.touch(*e, kTcpFin | kTcpAck, 141);
  EXPECT_EQ(e->state, FlowState::kTcpClosing);
  expect_expires_at(ct, k, h, 141 + 3000);
}

TEST(Conntrack, FinCloses) {
  Conntrack ct(config(64));
  const FlowKey k = v4_key(1, 1);
  const uint64_t h = hash_of(k);
  FlowEntry* e = ct.insert(k, h, 0, kTcpAck, 0);
  ct.touch(*e, kTcpFin | kTcpAck, 100);
  EXPECT_EQ(e->state, FlowState::kTcpClosing);
  ct.touch(*e, kTcpAck, 200);  // the last ACK keeps it closing
  EXPECT_EQ(e->state, FlowState::kTcpClosing);
  expect_expires_at(ct, k, h, 200 + 3000);
}

TEST(Conntrack, RstCloses) {
  Conntrack ct(config(64));
  const FlowKey k = v4_key(1, 1);
  const uint64_t h = hash_of(k);
  FlowEntry* e = ct.insert(k, h, 0, kTcpSyn, 0);
  ct.touch(*e, kTcpRst, 50);
  EXPECT_EQ(e->state, FlowState::kTcpClosing);
  expect_expires_at(ct, k, h, 50 + 3000);
}

TEST(Conntrack, MidFlowFinPickupIsClosing) {
  Conntrack ct(config(64));
  const FlowKey k = v4_key(1, 1);
  FlowEntry* e = ct.insert(k, hash_of(k), 0, kTcpFin | kTcpAck, 10);
  EXPECT_EQ(e->state, FlowState::kTcpClosing);
  expect_expires_at(ct, k, hash_of(k), 10 + 500);  // unproven
}

TEST(Conntrack, UdpTimeout) {
  Conntrack ct(config(64));
  const FlowKey k = v4_key(1, 53, kProtoUdp);
  const uint64_t h = hash_of(k);
  FlowEntry* e = ct.insert(k, h, 0, 0, 1000);
  EXPECT_EQ(e->state, FlowState::kUdp);
  expect_expires_at(ct, k, h, 1000 + 6000);
  // A later datagram (looked up while still live) pushes the deadline out.
  e = ct.insert(k, h, 0, 0, 1000);
  ct.touch(*e, 0, 5000);
  EXPECT_EQ(e->state, FlowState::kUdp);
  expect_expires_at(ct, k, h, 5000 + 6000);
}

TEST(Conntrack, OtherProtocolTimeout) {
  Conntrack ct(config(64));
  const FlowKey k = v4_key(1, 0, kProtoGre);
  FlowEntry* e = ct.insert(k, hash_of(k), 0, 0, 0);
  EXPECT_EQ(e->state, FlowState::kOther);
  expect_expires_at(ct, k, hash_of(k), 2000);
}

TEST(Conntrack, DefaultTimeouts) {
  Conntrack ct(ConntrackConfig{64, {}});
  const FlowKey k = v4_key(1, 1);
  FlowEntry* e = ct.insert(k, hash_of(k), 0, kTcpSyn, 0);
  EXPECT_EQ(e->expires_ns, 30ull * 1000000000);
  ct.touch(*e, kTcpAck, 0);
  EXPECT_EQ(e->expires_ns, 900ull * 1000000000);
}

TEST(Conntrack, DeadlineSaturatesInsteadOfWrapping) {
  ConntrackConfig c = config(64);
  c.timeouts.tcp_established_ns = UINT64_MAX;
  Conntrack ct(c);
  const FlowKey k = v4_key(1, 1);
  FlowEntry* e = established(ct, k, hash_of(k), 0, 5);
  EXPECT_EQ(e->expires_ns, UINT64_MAX);
  EXPECT_EQ(ct.lookup(k, hash_of(k), UINT64_MAX - 1), e);
}

TEST(Conntrack, ExpiredSameKeyIsReplacedInPlace) {
  Conntrack ct(config(64));
  const FlowKey k = v4_key(1, 1);
  const uint64_t h = hash_of(k);
  FlowEntry* first = ct.insert(k, h, 1, kTcpSyn, 0);
  EXPECT_EQ(ct.lookup(k, h, 1000), nullptr);
  FlowEntry* second = ct.insert(k, h, 2, kTcpAck, 1000);
  EXPECT_EQ(second, first);
  EXPECT_EQ(second->backend, 2u);
  EXPECT_EQ(second->state, FlowState::kTcpEstablished);
  EXPECT_EQ(ct.lookup(k, h, 1000), second);
  EXPECT_EQ(ct.stats().expired_reused, 1u);
  EXPECT_EQ(ct.stats().evictions, 0u);
  EXPECT_EQ(ct.stats().live_entries, 1u);
}

// Against the contract, but a key must never end up in two slots.
TEST(Conntrack, InsertOfLiveKeyOverwritesIt) {
  Conntrack ct(config(64));
  const FlowKey k = v4_key(1, 1);
  const uint64_t h = hash_of(k);
  FlowEntry* first = ct.insert(k, h, 1, kTcpAck, 0);
  FlowEntry* second = ct.insert(k, h, 2, kTcpAck, 10);
  EXPECT_EQ(first, second);
  EXPECT_EQ(ct.lookup(k, h, 10)->backend, 2u);
  EXPECT_EQ(ct.stats().live_entries, 1u);
  EXPECT_EQ(ct.stats().evictions, 0u);
}

TEST(Conntrack, ExpiredEntryOfAnotherFlowIsReusedAndCounted) {
  Conntrack ct(config(64));
  const uint32_t bucket = 3;
  std::vector<FlowKey> keys;
  for (uint32_t i = 0; i < kConntrackWays; ++i) {
    keys.push_back(v4_key(i, 1));
    // SYNs inserted at 0 expire at 1000, except slot 5's, established and so still live.
    FlowEntry* e = ct.insert(keys[i], bucket_hash(bucket, i), i, kTcpSyn, 0);
    if (i == 5) ct.touch(*e, kTcpAck, 0);
  }
  EXPECT_EQ(ct.stats().live_entries, kConntrackWays);
  const FlowKey fresh = v4_key(100, 1);
  FlowEntry* e = ct.insert(fresh, bucket_hash(bucket, 100), 9, kTcpSyn, 1000);
  EXPECT_EQ(ct.stats().expired_reused, 1u);
  EXPECT_EQ(ct.stats().evictions, 0u);
  EXPECT_EQ(ct.stats().live_entries, kConntrackWays);
  EXPECT_EQ(ct.lookup(fresh, bucket_hash(bucket, 100), 1000), e);
  EXPECT_NE(ct.lookup(keys[5], bucket_hash(bucket, 5), 1000), nullptr);
}

// What the expiry sink saw: keys and the time it was told.
struct Expired {
  std::vector<FlowKey> keys;
  std::vector<uint64_t> at;
  static void record(void* ctx, const FlowEntry& e, uint64_t now_ns) {
    auto* x = static_cast<Expired*>(ctx);
    x->keys.push_back(e.key);
    x->at.push_back(now_ns);
  }
};

// An expired entry whose place an insert takes before the sweep came by still ends through
// the sink (the cluster exports its end from there); evictions and erases do not.
TEST(Conntrack, TheExpirySinkSeesExpiredEntriesWhoseSlotAnInsertReuses) {
  Conntrack ct(config(64));
  Expired seen;
  ct.set_expiry_sink(&Expired::record, &seen);
  // The same key again after its SYN expired.
  const FlowKey k = v4_key(1, 1);
  const uint64_t h = bucket_hash(2, 1);
  ct.insert(k, h, 1, kTcpSyn, 0);
  ct.insert(k, h, 2, kTcpSyn, 1000);
  ASSERT_EQ(seen.keys.size(), 1u);
  EXPECT_EQ(seen.keys[0], k);
  EXPECT_EQ(seen.at[0], 1000u);

  // A full bucket whose soonest entry has expired: another flow takes its place. (These
  // timeouts are far below the table's coarse deadlines, about a second: all eight are equally
  // soon, and the first slot is the one looked at.)
  const uint32_t bucket = 5;
  std::vector<FlowKey> keys;
  for (uint32_t i = 0; i < kConntrackWays; ++i) {
    keys.push_back(v4_key(10 + i, 2));
    FlowEntry* e = ct.insert(keys[i], bucket_hash(bucket, i), i, kTcpSyn, 2000);
    if (i != 0) ct.touch(*e, kTcpAck, 2000);  // established until 11000; slot 0's SYN expires at 3000
  }
  seen = Expired{};
  const FlowKey fresh = v4_key(99, 2);
  ct.insert(fresh, bucket_hash(bucket, 99), 9, kTcpSyn, 3000);
  EXPECT_EQ(ct.stats().expired_reused, 2u);
  ASSERT_EQ(seen.keys.size(), 1u);
  EXPECT_EQ(seen.keys[0], keys[0]);

  // The bucket is full of live entries: an eviction is no expiry.
  ct.insert(v4_key(100, 2), bucket_hash(bucket, 100), 9, kTcpSyn, 3000);
  EXPECT_EQ(ct.stats().evictions, 1u);
  // Nor is an erase.
  ct.erase(*ct.lookup(keys[1], bucket_hash(bucket, 1), 3000));
  EXPECT_EQ(seen.keys.size(), 1u);

  // The sweep tells each expired entry once; a slot it freed is not told again when reused.
  seen = Expired{};
  const uint64_t later = 4ull << 30;  // every coarse deadline surely past
  ct.sweep(later, 64 / kConntrackWays);
  EXPECT_EQ(seen.keys.size(), ct.stats().inserts - ct.stats().evictions - ct.stats().expired_reused - 1)
      << "every entry inserted and not pushed out, erased or reused";
  EXPECT_EQ(ct.stats().live_entries, 0u);
  const size_t swept = seen.keys.size();
  ct.insert(k, h, 3, kTcpSyn, later);
  ct.sweep(later, 64 / kConntrackWays);
  EXPECT_EQ(seen.keys.size(), swept);
}

TEST(Conntrack, FullBucketEvictsEntryClosestToExpiry) {
  // Real timeouts (seconds): the table orders deadlines at about one-second resolution.
  constexpr uint64_t kS = 1'000'000'000;
  Conntrack ct(ConntrackConfig{64, ConntrackTimeouts{}});  // SYN 30 s, established 900 s
  const uint32_t bucket = 1;
  std::vector<FlowKey> keys;
  std::vector<FlowEntry*> entries;
  // Inserted at different times: slot 3's flow, inserted first, expires first.
  const uint64_t insert_time[kConntrackWays] = {50, 60, 70, 10, 80, 90, 20, 30};
  for (uint32_t i = 0; i < kConntrackWays; ++i) {
    keys.push_back(v4_key(i, 7));
    entries.push_back(established(ct, keys[i], bucket_hash(bucket, i), i, insert_time[i] * kS));
  }
  const FlowKey fresh = v4_key(99, 7);
  FlowEntry* e = ct.insert(fresh, bucket_hash(bucket, 99), 42, kTcpSyn, 100 * kS);
  EXPECT_EQ(e, entries[3]);
  EXPECT_EQ(ct.stats().evictions, 1u);
  EXPECT_EQ(ct.stats().expired_reused, 0u);
  EXPECT_EQ(ct.stats().inserts, kConntrackWays + 1);
  EXPECT_EQ(ct.lookup(fresh, bucket_hash(bucket, 99), 100 * kS), e);
  EXPECT_EQ(ct.lookup(keys[3], bucket_hash(bucket, 3), 100 * kS), nullptr);
  for (uint32_t i = 0; i < kConntrackWays; ++i) {
    if (i != 3) {
      EXPECT_EQ(ct.lookup(keys[i], bucket_hash(bucket, i), 100 * kS), entries[i]) << i;
    }
  }
  // The deadline decides, not the age: the newest flow, a SYN (deadline 130 s), now expires
  // before the established flow inserted at 20 s (deadline 920 s), so it goes next.
  const FlowKey another = v4_key(98, 7);
  EXPECT_EQ(ct.insert(another, bucket_hash(bucket, 98), 43, kTcpSyn, 100 * kS), e);
  EXPECT_EQ(ct.lookup(fresh, bucket_hash(bucket, 99), 100 * kS), nullptr);
  EXPECT_NE(ct.lookup(keys[6], bucket_hash(bucket, 6), 100 * kS), nullptr);
  EXPECT_EQ(ct.stats().evictions, 2u);
}

TEST(Conntrack, UnprovenEntriesAreEvictedFirstAndNotCountedActive) {
  // A bucket of real established flows, then a flood of spoofed mid-flow ACKs into it.
  constexpr uint64_t kS = 1'000'000'000;
  WorkerCounters counters(4, 4);
  Conntrack ct(ConntrackConfig{64, ConntrackTimeouts{}}, &counters);
  const uint32_t bucket = 2;
  std::vector<FlowKey> real;
  for (uint32_t i = 0; i < kConntrackWays - 2; ++i) {
    real.push_back(v4_key(i, 9));
    established(ct, real.back(), bucket_hash(bucket, i), 1, 10 * kS);
  }
  EXPECT_EQ(counters.backend(1)->active_flows.get(), kConntrackWays - 2);
  // Flood entries: each one new, unproven, and younger (later deadline would not matter).
  for (uint32_t n = 0; n < 1000; ++n) {
    const FlowKey spoofed = v4_key(1000 + n, 9);
    FlowEntry* e = ct.insert(spoofed, bucket_hash(bucket, 100 + n), 2, kTcpAck, (20 + n / 100) * kS);
    EXPECT_TRUE(is_unproven(*e));
  }
  for (uint32_t i = 0; i < real.size(); ++i) {
    EXPECT_NE(ct.lookup(real[i], bucket_hash(bucket, i), 40 * kS), nullptr) << "real flow " << i << " survived";
  }
  EXPECT_EQ(ct.stats().unproven_inserts, 1000u + real.size());  // the real ones were picked up mid-flow too
  EXPECT_EQ(ct.stats().unproven_evicted, ct.stats().evictions);
  EXPECT_EQ(counters.backend(2)->active_flows.get(), 0u) << "unproven flows are not active connections";
  EXPECT_EQ(counters.backend(1)->active_flows.get(), kConntrackWays - 2);

  // An unproven entry that repeats becomes a real flow, counted.
  const FlowKey late = v4_key(5000, 9);
  FlowEntry* e = ct.insert(late, hash_of(late), 3, kTcpAck, 50 * kS);
  ct.touch(*e, kTcpAck, 51 * kS);
  EXPECT_FALSE(is_unproven(*e));
  EXPECT_EQ(counters.backend(3)->active_flows.get(), 1u);
  EXPECT_EQ(ct.stats().proven, real.size() + 1);
  // Expired unproven entries go by their short timeout (10 s), not the established one.
  const FlowKey quiet = v4_key(6000, 9);
  ct.insert(quiet, hash_of(quiet), 3, kTcpAck, 60 * kS);
  EXPECT_NE(ct.lookup(quiet, hash_of(quiet), 69 * kS), nullptr);
  EXPECT_EQ(ct.lookup(quiet, hash_of(quiet), 71 * kS), nullptr);
}

TEST(Conntrack, BucketsDoNotInterfere) {
  Conntrack ct(config(64));  // 8 buckets
  for (uint32_t i = 0; i < kConntrackWays; ++i) ct.insert(v4_key(i, 1), bucket_hash(0, i), i, kTcpAck, 0);
  for (uint32_t i = 0; i < kConntrackWays; ++i) ct.insert(v4_key(i, 2), bucket_hash(1, i), i, kTcpAck, 0);
  EXPECT_EQ(ct.stats().evictions, 0u);
  for (uint32_t i = 0; i < kConntrackWays; ++i) {
    EXPECT_NE(ct.lookup(v4_key(i, 1), bucket_hash(0, i), 0), nullptr);
    EXPECT_NE(ct.lookup(v4_key(i, 2), bucket_hash(1, i), 0), nullptr);
  }
  // Bits above the bucket mask pick the tag, not the bucket.
  ct.insert(v4_key(50, 3), bucket_hash(8, 50), 0, kTcpAck, 0);  // 8 & 7 == bucket 0: full
  EXPECT_EQ(ct.stats().evictions, 1u);
}

TEST(Conntrack, TableBytesCountATagLineAndALinePerEntryForEveryBucket) {
  ConntrackConfig config;
  config.capacity = 262144;  // 32768 buckets of 8 entries
  EXPECT_EQ(Conntrack::table_bytes(config), size_t{32768} * (1 + kConntrackWays) * 64);
  config.capacity = 100;  // rounds up to 16 buckets
  EXPECT_EQ(Conntrack::table_bytes(config), size_t{16} * (1 + kConntrackWays) * 64);
}

TEST(Conntrack, CapacityRoundsUpToPowerOfTwoBuckets) {
  EXPECT_EQ(Conntrack(config(0)).capacity(), kConntrackWays);
  EXPECT_EQ(Conntrack(config(1)).capacity(), kConntrackWays);
  EXPECT_EQ(Conntrack(config(8)).capacity(), 8u);
  EXPECT_EQ(Conntrack(config(9)).capacity(), 16u);
  EXPECT_EQ(Conntrack(config(17)).capacity(), 32u);
  EXPECT_EQ(Conntrack(config(24)).capacity(), 32u);
  EXPECT_EQ(Conntrack(config(1000)).capacity(), 1024u);
  EXPECT_EQ(Conntrack(config(1024)).capacity(), 1024u);
  EXPECT_EQ(Conntrack(config(1025)).capacity(), 2048u);
  EXPECT_EQ(Conntrack(config((1u << 18) - 3)).capacity(), 1u << 18);
}

TEST(Conntrack, SingleBucketTable) {
  Conntrack ct(config(1));
  for (uint32_t i = 0; i < 100; ++i) {
    const FlowKey k = v4_key(i, 1);
    const uint64_t h = hash_of(k);  // any hash maps to the one bucket
    EXPECT_NE(ct.insert(k, h, i, kTcpAck, i), nullptr);
    EXPECT_NE(ct.lookup(k, h, i), nullptr);
  }
  EXPECT_EQ(ct.stats().evictions, 100u - kConntrackWays);
  EXPECT_EQ(ct.stats().live_entries, kConntrackWays);
}

TEST(Conntrack, EraseFreesTheSlot) {
  Conntrack ct(config(64));
  const uint32_t bucket = 2;
  std::vector<FlowEntry*> entries;
  for (uint32_t i = 0; i < kConntrackWays; ++i) {
    entries.push_back(ct.insert(v4_key(i, 1), bucket_hash(bucket, i), i, kTcpAck, 0));
  }
  ct.erase(*entries[4]);
  EXPECT_EQ(entries[4]->state, FlowState::kFree);
  EXPECT_EQ(ct.lookup(v4_key(4, 1), bucket_hash(bucket, 4), 0), nullptr);
  EXPECT_EQ(ct.stats().live_entries, kConntrackWays - 1);
  ct.erase(*entries[4]);  // twice is harmless
  EXPECT_EQ(ct.stats().live_entries, kConntrackWays - 1);

  // The freed slot takes the next flow: no eviction, no expired reuse.
  FlowEntry* e = ct.insert(v4_key(77, 1), bucket_hash(bucket, 77), 1, kTcpAck, 0);
  EXPECT_EQ(e, entries[4]);
  EXPECT_EQ(ct.stats().evictions, 0u);
  EXPECT_EQ(ct.stats().expired_reused, 0u);
  EXPECT_EQ(ct.stats().live_entries, kConntrackWays);

  // Erase then re-insert of the same key, as the pipeline does when rescheduling a flow.
  const FlowKey k = v4_key(3, 1);
  FlowEntry* old = ct.lookup(k, bucket_hash(bucket, 3), 0);
  ASSERT_NE(old, nullptr);
  ct.erase(*old);
  FlowEntry* again = ct.insert(k, bucket_hash(bucket, 3), 99, kTcpSyn, 0);
  EXPECT_EQ(ct.lookup(k, bucket_hash(bucket, 3), 0), again);
  EXPECT_EQ(again->backend, 99u);
}

TEST(Conntrack, IPv6Keys) {
  Conntrack ct(config(1024));
  std::vector<FlowKey> keys;
  for (uint8_t i = 0; i < 50; ++i) keys.push_back(v6_key(i, static_cast<uint16_t>(40000 + i)));
  for (uint32_t i = 0; i < keys.size(); ++i) ct.insert(keys[i], hash_of(keys[i]), i, kTcpSyn, 0);
  for (uint32_t i = 0; i < keys.size(); ++i) {
    FlowEntry* e = ct.lookup(keys[i], hash_of(keys[i]), 0);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->backend, i);
    EXPECT_EQ(e->key.family, Family::kIpv6);
  }
  // Addresses differing only in their first or last byte, under one shared hash.
  const uint64_t h = 77;
  FlowKey a = v6_key(1, 1);
  FlowKey b = a;
  b.src[0] ^= 0x80;
  FlowKey c = a;
  c.dst[15] ^= 0x01;
  FlowEntry* ea = ct.insert(a, h, 1, kTcpAck, 0);
  FlowEntry* eb = ct.insert(b, h, 2, kTcpAck, 0);
  FlowEntry* ec = ct.insert(c, h, 3, kTcpAck, 0);
  EXPECT_EQ(ct.lookup(a, h, 0), ea);
  EXPECT_EQ(ct.lookup(b, h, 0), eb);
  EXPECT_EQ(ct.lookup(c, h, 0), ec);
}

// Far more flows than slots: the table keeps its size, always takes the newest flow, and every
// insert lands in exactly one of empty slot / expired reuse / eviction.
TEST(Conntrack, OverfilledTableNeverGrowsNorCrashes) {
  Conntrack ct(config(1000));
  ASSERT_EQ(ct.capacity(), 1024u);
  constexpr uint32_t kFlows = 1000000;
  uint64_t misses = 0;
  for (uint32_t i = 0; i < kFlows; ++i) {
    FlowKey k = v4_key(i, static_cast<uint16_t>(i * 7), i % 3 == 0 ? kProtoUdp : kProtoTcp);
    const uint64_t h = hash_of(k);
    const uint64_t now = uint64_t{i} * 10;  // some flows expire along the way
    FlowEntry* e = ct.insert(k, h, i, i % 2 ? kTcpSyn : kTcpAck, now);
    ASSERT_NE(e, nullptr);
    if (ct.lookup(k, h, now) != e) ++misses;
    if (i % 5 == 0) ct.touch(*e, kTcpFin, now);
  }
  EXPECT_EQ(misses, 0u);
  const ConntrackStats& s = ct.stats();
  EXPECT_EQ(ct.capacity(), 1024u);
  EXPECT_EQ(s.inserts, kFlows);
  EXPECT_LE(s.live_entries, ct.capacity());
  EXPECT_EQ(s.live_entries + s.expired_reused + s.evictions, kFlows);
  EXPECT_GT(s.evictions, 0u);
  EXPECT_GT(s.expired_reused, 0u);
}

TEST(Conntrack, PrefetchAcceptsAnyHash) {
  Conntrack ct(config(64));
  for (uint64_t h : {uint64_t{0}, uint64_t{1}, ~uint64_t{0}, uint64_t{0x8000000000000000ull}}) {
    ct.prefetch_bucket(h);
    ct.prefetch_entry(h);
  }
  SUCCEED();
}

}  // namespace
}  // namespace l4mux
