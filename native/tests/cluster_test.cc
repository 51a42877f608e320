// Cluster sync in the fast path: export rings, rendezvous owners, the peer-entry table, and
// the pipeline's miss handling (peer entries, redirects to the owner, their receipt).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <map>
#include <random>
#include <thread>

#include "checksum.h"
#include "hash.h"
#include "cluster/export_ring.h"
#include "cluster/flow_record.h"
#include "cluster/flow_sync.h"
#include "cluster/ownership.h"
#include "cluster/peer_table.h"
#include "pipeline_fixture.h"

namespace l4mux::cluster {
namespace {

using l4mux::testing::Bytes;
using l4mux::testing::ip;

FlowKey flow(uint32_t n, uint16_t port = 80) {
  FlowKey k;
  k.family = Family::kIpv4;
  k.proto = kProtoTcp;
  const uint8_t src[4] = {198, 51, static_cast<uint8_t>(n >> 16), static_cast<uint8_t>(n >> 8)};
  store_ipv4_address16(k.src.data(), src);
  const uint8_t dst[4] = {192, 0, 2, 10};
  store_ipv4_address16(k.dst.data(), dst);
  k.src_port = static_cast<uint16_t>(1024 + (n & 0xff) * 97);
  k.dst_port = port;
  return k;
}

void put_seq(uint8_t* slot, uint64_t seq) { std::memcpy(slot, &seq, sizeof(seq)); }
uint64_t get_seq(const uint8_t* slot) {
  uint64_t v;
  std::memcpy(&v, slot, sizeof(v));
  return v;
}

// ---- Export ring ----

TEST(ExportRing, KeepsOrderAcrossTheWrapAndCountsOverflow) {
  ExportRing ring(4);
  EXPECT_EQ(ring.capacity(), 4u);
  uint8_t out[8 * kFlowRecordSize];
  uint64_t next = 0;
  for (int round = 0; round < 5; ++round) {
    for (int i = 0; i < 3; ++i) {
      uint8_t* slot = ring.claim();
      ASSERT_NE(slot, nullptr);
      put_seq(slot, next++);
      ring.publish();
    }
    ASSERT_EQ(ring.drain(out, 8), 3u);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(get_seq(out + i * kFlowRecordSize), next - 3 + i);
  }
  for (int i = 0; i < 4; ++i) {
    put_seq(ring.claim(), i);
    ring.publish();
  }
  EXPECT_EQ(ring.claim(), nullptr);  // full: the worker goes on, the record is counted
  EXPECT_EQ(ring.claim(), nullptr);
  EXPECT_EQ(ring.overflow(), 2u);
  EXPECT_EQ(ring.drain(out, 2), 2u);  // a partial drain frees room
  EXPECT_NE(ring.claim(), nullptr);
  EXPECT_EQ(ring.produced(), 19u);
  EXPECT_EQ(ring.consumed(), 17u);
}

TEST(ExportRing, OneProducerOneConsumerConcurrently) {
  ExportRing ring(256);
  constexpr uint64_t kRecords = 200000;
  std::atomic<bool> done{false};
  std::thread producer([&] {
    for (uint64_t i = 0; i < kRecords; ++i) {
      if (uint8_t* slot = ring.claim()) {
        put_seq(slot, i);
        std::memset(slot + 8, static_cast<int>(i & 0xff), kFlowRecordSize - 8);
        ring.publish();
      }
    }
    done.store(true, std::memory_order_release);
  });
  std::vector<uint8_t> out(64 * kFlowRecordSize);
  uint64_t received = 0;
  uint64_t last = 0;
  bool first = true;
  for (;;) {
    const bool finished = done.load(std::memory_order_acquire);
    const size_t n = ring.drain(out.data(), 64);
    for (size_t i = 0; i < n; ++i) {
      const uint8_t* rec = out.data() + i * kFlowRecordSize;
      const uint64_t seq = get_seq(rec);
      ASSERT_TRUE(first || seq > last) << "records out of order";
      for (size_t b = 8; b < kFlowRecordSize; ++b) ASSERT_EQ(rec[b], seq & 0xff) << "a torn record";
      first = false;
      last = seq;
    }
    received += n;
    if (finished && n == 0) break;
  }
  producer.join();
  EXPECT_EQ(received + ring.overflow(), kRecords);
  EXPECT_GT(received, 0u);
}

// ---- Ownership ----

ClusterSpec members(std::vector<uint32_t> weights, uint32_t self = 0) {
  ClusterSpec s;
  s.seed = 0xfeedface;
  s.self_index = self;
  s.redirect_port = 6666;
  for (size_t i = 0; i < weights.size(); ++i) {
    MemberSpec m;
    m.id = "mux" + std::to_string(i + 1);
    m.address = ip("10.0.0." + std::to_string(i + 1));
    m.weight = weights[i];
    s.members.push_back(m);
  }
  return s;
}

std::unique_ptr<const ClusterView> view(const ClusterSpec& s) {
  return ClusterView::build(s, l4mux::testing::base_config());
}

TEST(Ownership, SpreadsFlowsEvenlyAndGivesADistinctBackup) {
  const auto v = view(members({1, 1, 1}));
  std::map<uint8_t, int> owned;
  std::map<uint8_t, int> backed;
  constexpr int kFlows = 30000;
  for (int n = 0; n < kFlows; ++n) {
    const Owners o = v->owners(flow(n));
    ASSERT_LT(o.owner, 3);
    ASSERT_LT(o.backup, 3);
    ASSERT_NE(o.owner, o.backup);
    ++owned[o.owner];
    ++backed[o.backup];
  }
  for (uint8_t m = 0; m < 3; ++m) {
    EXPECT_NEAR(owned[m] / double(kFlows), 1.0 / 3, 0.02) << "member " << int(m);
    EXPECT_NEAR(backed[m] / double(kFlows), 1.0 / 3, 0.02) << "member " << int(m);
  }
}

TEST(Ownership, FollowsWeights) {
  const auto v = view(members({1, 2, 1}));
  std::map<uint8_t, int> owned;
  constexpr int kFlows = 40000;
  for (int n = 0; n < kFlows; ++n) ++owned[v->owners(flow(n)).owner];
  EXPECT_NEAR(owned[0] / double(kFlows), 0.25, 0.02);
  EXPECT_NEAR(owned[1] / double(kFlows), 0.50, 0.02);
  EXPECT_NEAR(owned[2] / double(kFlows), 0.25, 0.02);
}

// The integer logarithm of weighted ownership: known vectors (the same as in
// test/cluster/ownership.test.ts, which checks the control plane's copy), and within a few
// units of 2^-32 of the true -log2(u).
TEST(Ownership, WeightedScoresUseAnIntegerLogarithmWithKnownValues) {
  const std::pair<uint64_t, uint64_t> vectors[] = {
      {0x0ull, 231928233984ull},                // u = 2^-54: 54
      {0x800ull, 225120871879ull},              // u = 3 * 2^-54
      {0xabcdefull, 174270187892ull},
      {0x123456789abcdef0ull, 16380065493ull},
      {0x7fffffffffffffffull, 4294967298ull},   // u just below 1/2
      {0x8000000000000000ull, 4294967296ull},   // u just above 1/2: 1
      {0xdeadbeefcafef00dull, 864062720ull},
      {0xffffffffffffffffull, 2ull},            // u just below 1: never 0
  };
  for (const auto& [d, expected] : vectors) EXPECT_EQ(neg_log2_fixed(d), expected) << std::hex << d;
  uint64_t d = 0x9e3779b97f4a7c15ull;
  for (int n = 0; n < 100000; ++n) {
    d = d * 6364136223846793005ull + 1442695040888963407ull;
    const double x = static_cast<double>(((d >> 11) << 1) | 1);
    const double truth = (54.0 - std::log2(x)) * 0x1.0p32;
    ASSERT_NEAR(static_cast<double>(neg_log2_fixed(d)), truth, 8.0) << std::hex << d;
    ASSERT_GE(neg_log2_fixed(d), 1u);
  }
}

TEST(Ownership, ALeaveMovesOnlyTheLeaversFlowsToTheirBackup) {
  ClusterSpec spec = members({1, 1, 1, 1});
  const auto before = view(spec);
  spec.members[2].live = false;
  const auto after = view(spec);
  int moved = 0;
  for (int n = 0; n < 20000; ++n) {
    const Owners a = before->owners(flow(n));
    const Owners b = after->owners(flow(n));
    if (a.owner == 2) {
      EXPECT_EQ(b.owner, a.backup) << "the backup takes over";
      ++moved;
    } else {
      EXPECT_EQ(b.owner, a.owner) << "flow " << n << " moved although its owner stayed";
    }
    EXPECT_NE(b.owner, 2);
    EXPECT_NE(b.backup, 2);
  }
  EXPECT_NEAR(moved / 20000.0, 0.25, 0.02);
}

TEST(Ownership, DoesNotDependOnTheOrderOfMembersOrOnWhichMuxAsks) {
  ClusterSpec spec = members({1, 3, 2, 1, 1});
  const auto a = view(spec);
  ClusterSpec shuffled = spec;
  std::mt19937 rng(7);
  std::shuffle(shuffled.members.begin(), shuffled.members.end(), rng);
  shuffled.self_index = 3;
  const auto b = view(shuffled);
  for (int n = 0; n < 5000; ++n) {
    const Owners oa = a->owners(flow(n));
    const Owners ob = b->owners(flow(n));
    EXPECT_EQ(spec.members[oa.owner].id, shuffled.members[ob.owner].id);
    EXPECT_EQ(spec.members[oa.backup].id, shuffled.members[ob.backup].id);
  }
}

TEST(Ownership, OneLiveMemberOwnsEverythingWithoutBackup) {
  ClusterSpec spec = members({1, 1});
  spec.members[1].live = false;
  const auto v = view(spec);
  const Owners o = v->owners(flow(1));
  EXPECT_EQ(o.owner, 0);
  EXPECT_EQ(o.backup, kNoMember);
  spec.members[0].live = false;
  EXPECT_EQ(view(spec)->owners(flow(1)).owner, kNoMember);
}

TEST(Ownership, RefusesSpecsItCannotHonour) {
  ClusterSpec s = members({1, 1});
  s.self_index = 2;
  EXPECT_THROW(view(s), std::invalid_argument);
  s = members({1, 0});
  EXPECT_THROW(view(s), std::invalid_argument);
  s = members({1, 1});
  s.members[1].id = s.members[0].id;
  EXPECT_THROW(view(s), std::invalid_argument);
  s = members({1, 1});
  s.redirect_port = 0;
  EXPECT_THROW(view(s), std::invalid_argument);
}

// ---- Peer-entry table ----

TEST(PeerTable, InstallsUpdatesRemovesAndExpires) {
  PeerTable t(64);
  PeerHit hit;
  EXPECT_TRUE(t.empty());
  EXPECT_FALSE(t.lookup(flow(1), 0, &hit));
  t.install(flow(1), 7, kRecordMustSync, 1000, 0);
  EXPECT_FALSE(t.empty());
  ASSERT_TRUE(t.lookup(flow(1), 999, &hit));
  EXPECT_EQ(hit.backend, 7u);
  EXPECT_EQ(hit.flags, kRecordMustSync);
  EXPECT_FALSE(t.lookup(flow(1), 1000, &hit)) << "expired";
  EXPECT_FALSE(t.lookup(flow(2), 0, &hit));
  t.install(flow(1), 9, 0, 5000, 0);
  ASSERT_TRUE(t.lookup(flow(1), 10, &hit));
  EXPECT_EQ(hit.backend, 9u);
  EXPECT_EQ(t.stats().updated, 1u);
  EXPECT_TRUE(t.remove(flow(1)));
  EXPECT_FALSE(t.remove(flow(1)));
  EXPECT_FALSE(t.lookup(flow(1), 10, &hit));
  EXPECT_EQ(t.stats().live, 0u);
}

TEST(PeerTable, StaysWithinItsCapacityEvictingTheOldest) {
  PeerTable t(64);  // 8 buckets of 8
  EXPECT_EQ(t.capacity(), 64u);
  for (uint32_t n = 0; n < 1000; ++n) t.install(flow(n), n, 0, 1000 + n, 0);
  const PeerTableStats s = t.stats();
  EXPECT_LE(s.live, 64u);
  EXPECT_EQ(s.installed, 1000u);
  EXPECT_GE(s.evicted, 1000u - 64u);
  PeerHit hit;
  int found = 0;
  for (uint32_t n = 0; n < 1000; ++n) {
    if (t.lookup(flow(n), 0, &hit)) {
      EXPECT_EQ(hit.backend, n);
      ++found;
    }
  }
  EXPECT_EQ(found, static_cast<int>(s.live));
  EXPECT_EQ(PeerTable::bytes_for(64), 8u * 9u * 64u) << "eight buckets of a tag line and eight entries";
}

TEST(PeerTable, ReadersNeverSeeATornEntry) {
  PeerTable t(256);
  std::atomic<bool> stop{false};
  std::atomic<uint32_t> rounds{0};
  std::thread writer([&] {
    for (uint32_t round = 0; !stop.load(std::memory_order_relaxed); ++round) {
      rounds.store(round, std::memory_order_release);
      for (uint32_t n = 0; n < 64; ++n) {
        // The backend always encodes the key, so a mix of two writes would show.
        t.install(flow(n), n * 1000 + (round & 0xff), static_cast<uint8_t>(round & 1), UINT64_MAX, 0);
      }
      if (round % 7 == 0) t.remove(flow(round % 64));
    }
  });
  while (rounds.load(std::memory_order_acquire) < 2) std::this_thread::yield();  // the writer is busy
  uint64_t hits = 0;
  PeerHit hit;
  for (int i = 0; i < 200000; ++i) {
    const uint32_t n = static_cast<uint32_t>(i % 64);
    if (t.lookup(flow(n), 0, &hit)) {
      ASSERT_EQ(hit.backend / 1000, n);
      ++hits;
    }
  }
  stop.store(true);
  writer.join();
  EXPECT_GT(hits, 0u);
}

// ---- The pipeline ----

class ClusterPipelineTest : public ::testing::Test {
 protected:
  static constexpr uint16_t kRedirectPort = 6666;

  ClusterPipelineTest() {
    PipelineOptions options;
    options.sync = &hub_.worker(0);
    pipeline_ = std::make_unique<Pipeline>(ConntrackConfig{4096, {}}, counters_, options);
  }

  ConfigSpec spec(uint32_t self, Scheduler scheduler = Scheduler::kMaglev) {
    ConfigSpec c = l4mux::testing::base_config();
    c.vips[0].scheduler = scheduler;
    c.vips.push_back(l4mux::testing::make_vip("web6", "2001:db8::10", kProtoTcp, 80, Encap::kIpip,
                                              {"10.1.0.1", "10.1.0.2", "10.1.0.3"}));
    ClusterSpec cs = members({1, 1, 1}, self);
    cs.redirect_port = kRedirectPort;
    c.outer_source_v4 = cs.members[self].address;
    c.cluster = cs;
    return c;
  }
  void configure(const ConfigSpec& c) { snapshot_ = Snapshot::build(c, backends_, vips_); }

  Packet run(const Bytes& frame) {
    buffer_.assign(kHeadroom + frame.size(), 0);
    std::memcpy(buffer_.data() + kHeadroom, frame.data(), frame.size());
    Packet pkt;
    pkt.data = buffer_.data() + kHeadroom;
    pkt.len = static_cast<uint32_t>(frame.size());
    pkt.headroom = kHeadroom;
    pipeline_->process(std::span<Packet>(&pkt, 1), *snapshot_, now_ns_);
    return pkt;
  }

  // A client port of `client` -> `vip`:80 whose owners satisfy `wanted`.
  template <typename Wanted>
  uint16_t port_where(const std::string& client, const std::string& vip, Wanted wanted) {
    for (uint16_t port = 20000;; ++port) {
      FlowKey k;
      const IpAddr c = ip(client);
      k.family = c.family;
      k.src = c.bytes;
      k.dst = ip(vip).bytes;
      k.src_port = port;
      k.dst_port = 80;
      k.proto = kProtoTcp;
      if (wanted(snapshot_->cluster()->owners(k))) return port;
    }
  }
  // A client port of `client` -> `vip`:80 whose owner and backup are not `self`.
  uint16_t port_not_owned_by(uint8_t self, const std::string& client, const std::string& vip) {
    return port_where(client, vip, [self](const Owners& o) { return o.owner != self && o.backup != self; });
  }
  // Where a mid-flow packet (an ACK of a flow this mux has no entry of) went: the member it
  // was redirected to, or kNoMember when decided here (encapsulated to a backend).
  uint8_t ack_goes_to(uint16_t port) {
    l4mux::testing::L4Spec ack;
    ack.src_port = port;
    ack.tcp_flags = kTcpAck;
    const Packet p = run(l4mux::testing::flow_frame("198.51.100.7", "192.0.2.10", ack));
    EXPECT_EQ(p.verdict, Verdict::kTx);
    const uint8_t* ip4 = p.data + kEthHeaderLen;
    if (ip4[9] == kProtoIpip) return kNoMember;
    EXPECT_EQ(ip4[9], kProtoUdp);
    EXPECT_EQ(load_be16(ip4 + 22), kRedirectPort);
    return snapshot_->cluster()->member_by_address(IpAddr::v4(ip4 + 16));
  }

  std::vector<FlowRecord> poll() {
    std::vector<uint8_t> out(64 * kFlowRecordSize);
    const BackendAddress address = [this](uint32_t slot) -> std::optional<IpAddr> {
      if (slot >= backends_.keys().size()) return std::nullopt;
      return backends_.keys()[slot];
    };
    const size_t n = hub_.poll(*snapshot_, address, out.data(), 64, now_ns_);
    std::vector<FlowRecord> records(n);
    for (size_t i = 0; i < n; ++i) {
      EXPECT_EQ(decode_flow_record(out.data() + i * kFlowRecordSize, kFlowRecordSize, &records[i]), RecordError::kOk);
    }
    return records;
  }

  static constexpr uint32_t kHeadroom = 256;
  BackendRegistry backends_{1024};
  VipRegistry vips_{64};
  std::unique_ptr<const Snapshot> snapshot_;
  WorkerCounters counters_{64, 1024};
  SyncHub hub_{SyncSettings{1024, 256}, 1, ConntrackTimeouts{}};
  std::unique_ptr<Pipeline> pipeline_;
  std::vector<uint8_t> buffer_;
  uint64_t now_ns_ = 5'000'000'000;
};

TEST_F(ClusterPipelineTest, RedirectsAMissToTheOwnerInGueOnTheRedirectPort) {
  configure(spec(0));
  const uint16_t port = port_not_owned_by(0, "198.51.100.7", "192.0.2.10");
  l4mux::testing::L4Spec ack;
  ack.src_port = port;
  ack.tcp_flags = kTcpAck;
  const Bytes frame = l4mux::testing::flow_frame("198.51.100.7", "192.0.2.10", ack);
  const size_t inner_len = frame.size() - kEthHeaderLen - (frame.size() - kEthHeaderLen - load_be16(&frame[16]));
  const Packet p = run(frame);
  ASSERT_EQ(p.verdict, Verdict::kTx);
  const uint8_t* f = p.data;
  ASSERT_EQ(p.len, kEthHeaderLen + 20 + 8 + inner_len);
  // Ethernet toward the gateway, from the mux.
  EXPECT_EQ(f[0], 0x02);
  EXPECT_EQ(f[5], 0xfe);
  EXPECT_EQ(f[11], 0x01);
  EXPECT_EQ(load_be16(f + 12), kEthTypeIpv4);
  const uint8_t* ip4 = f + kEthHeaderLen;
  EXPECT_EQ(ip4[9], kProtoUdp);
  EXPECT_EQ(ipv4_header_checksum(ip4, 20), 0) << "a valid outer header checksum";
  const FlowKey key = [&] {
    FlowKey k;
    k.family = Family::kIpv4;
    k.proto = kProtoTcp;
    k.src = ip("198.51.100.7").bytes;
    k.dst = ip("192.0.2.10").bytes;
    k.src_port = port;
    k.dst_port = 80;
    return k;
  }();
  const Owners o = snapshot_->cluster()->owners(key);
  EXPECT_EQ(IpAddr::v4(ip4 + 12), ip("10.0.0.1")) << "from this member's address";
  EXPECT_EQ(IpAddr::v4(ip4 + 16), snapshot_->cluster()->members()[o.owner].address) << "to the owner";
  const uint8_t* udp = ip4 + 20;
  EXPECT_EQ(load_be16(udp + 2), kRedirectPort);
  EXPECT_GE(load_be16(udp), kGueSourcePortBase);
  EXPECT_EQ(load_be16(udp + 4), 8 + inner_len);
  EXPECT_TRUE(std::equal(udp + 8, udp + 8 + inner_len, frame.begin() + kEthHeaderLen)) << "the client's packet unchanged";
  EXPECT_EQ(hub_.worker(0).counters().redirected.get(), 1u);
  EXPECT_TRUE(poll().empty()) << "a redirect creates no entry here";
}

TEST_F(ClusterPipelineTest, RedirectsAnIpv6FlowOverTheMembersIpv4) {
  configure(spec(0));
  const uint16_t port = port_not_owned_by(0, "2001:db8:1::7", "2001:db8::10");
  l4mux::testing::L4Spec ack;
  ack.src_port = port;
  ack.tcp_flags = kTcpAck;
  const Packet p = run(l4mux::testing::flow_frame("2001:db8:1::7", "2001:db8::10", ack));
  ASSERT_EQ(p.verdict, Verdict::kTx);
  EXPECT_EQ(load_be16(p.data + 12), kEthTypeIpv4);
  EXPECT_EQ(p.data[kEthHeaderLen + 9], kProtoUdp);
  EXPECT_EQ(p.data[kEthHeaderLen + 28] >> 4, 6) << "IPv6 inside";
}

TEST_F(ClusterPipelineTest, DecidesItselfForSynsOfMaglevVipsWhoeverOwnsThem) {
  configure(spec(0));
  // A SYN of a Maglev VIP: decided here whoever owns it.
  const uint16_t port = port_not_owned_by(0, "198.51.100.7", "192.0.2.10");
  l4mux::testing::L4Spec syn;
  syn.src_port = port;
  const Packet p = run(l4mux::testing::flow_frame("198.51.100.7", "192.0.2.10", syn));
  ASSERT_EQ(p.verdict, Verdict::kTx);
  EXPECT_EQ(p.data[kEthHeaderLen + 9], kProtoIpip);
  const auto records = poll();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].kind, RecordKind::kNew);
  EXPECT_EQ(records[0].flags & kRecordMustSync, 0);
  EXPECT_NE(records[0].owner, 0);
  EXPECT_EQ(hub_.stats().self_installed, 0u) << "not ours to keep";
}

// After a leave whose transfer to this mux came late (commitTimeout), this mux backs flows it
// has no entry of: their owner, which held the entries as their backup, decides. While a dead
// member is still leaving, its flows' backups decide for it and the others ask them.
TEST_F(ClusterPipelineTest, ABackupWithoutTheEntryAsksTheOwnerAndStandsInForALeavingOne) {
  configure(spec(0));
  const uint16_t backed = port_where("198.51.100.7", "192.0.2.10", [](const Owners& o) { return o.backup == 0; });
  const uint16_t owned = port_where("198.51.100.7", "192.0.2.10", [](const Owners& o) { return o.owner == 0; });
  const uint16_t other = port_not_owned_by(0, "198.51.100.7", "192.0.2.10");
  const auto owners_of = [this](uint16_t port) {
    FlowKey k;
    k.family = Family::kIpv4;
    k.proto = kProtoTcp;
    k.src = ip("198.51.100.7").bytes;
    k.dst = ip("192.0.2.10").bytes;
    k.src_port = port;
    k.dst_port = 80;
    return snapshot_->cluster()->owners(k);
  };
  const Owners backed_owners = owners_of(backed);
  const Owners other_owners = owners_of(other);
  EXPECT_EQ(ack_goes_to(backed), backed_owners.owner) << "the backup asks the owner";
  EXPECT_EQ(ack_goes_to(owned), kNoMember) << "the owner decides";
  EXPECT_EQ(ack_goes_to(other), other_owners.owner);

  // The owner of `backed` dies; the survivors' transfers are still under way.
  ConfigSpec c = spec(0);
  c.cluster->members[backed_owners.owner].leaving = true;
  configure(c);
  EXPECT_EQ(owners_of(backed).owner, backed_owners.owner) << "a leaving member still owns its flows";
  EXPECT_EQ(ack_goes_to(backed), kNoMember) << "its backup stands in for it";
  const uint8_t dead = backed_owners.owner;
  const uint16_t orphan = port_where("198.51.100.7", "192.0.2.10", [dead](const Owners& o) { return o.owner == dead && o.backup != 0; });
  EXPECT_EQ(ack_goes_to(orphan), owners_of(orphan).backup) << "the others ask the leaving owner's backup";
  const uint16_t unaffected = port_where("198.51.100.7", "192.0.2.10", [dead](const Owners& o) { return o.owner != dead && o.owner != 0; });
  EXPECT_EQ(ack_goes_to(unaffected), owners_of(unaffected).owner);
}

TEST_F(ClusterPipelineTest, RedirectsSynsOfPerMuxSchedulersSoThatTheOwnerDecides) {
  configure(spec(0, Scheduler::kWrr));
  const uint16_t port = port_not_owned_by(0, "198.51.100.7", "192.0.2.10");
  l4mux::testing::L4Spec syn;
  syn.src_port = port;
  const Packet p = run(l4mux::testing::flow_frame("198.51.100.7", "192.0.2.10", syn));
  ASSERT_EQ(p.verdict, Verdict::kTx);
  EXPECT_EQ(p.data[kEthHeaderLen + 9], kProtoUdp);
  EXPECT_EQ(load_be16(p.data + kEthHeaderLen + 22), kRedirectPort);
}

TEST_F(ClusterPipelineTest, TheOwnerForwardsARedirectOnceAndTeachesTheAsker) {
  // Mux 1 (index 0) redirects; the frame is then given to a pipeline configured as the owner.
  configure(spec(0));
  const uint16_t port = port_not_owned_by(0, "198.51.100.7", "192.0.2.10");
  l4mux::testing::L4Spec ack;
  ack.src_port = port;
  ack.tcp_flags = kTcpAck;
  const Packet redirected = run(l4mux::testing::flow_frame("198.51.100.7", "192.0.2.10", ack));
  ASSERT_EQ(redirected.verdict, Verdict::kTx);
  const Bytes wire(redirected.data, redirected.data + redirected.len);
  const IpAddr owner_addr = IpAddr::v4(wire.data() + kEthHeaderLen + 16);
  const uint8_t owner = snapshot_->cluster()->member_by_address(owner_addr);

  configure(spec(owner));
  const Packet forwarded = run(wire);
  ASSERT_EQ(forwarded.verdict, Verdict::kTx);
  EXPECT_EQ(forwarded.data[kEthHeaderLen + 9], kProtoIpip) << "to a backend, not to another mux";
  EXPECT_EQ(IpAddr::v4(forwarded.data + kEthHeaderLen + 12), ip("10.0.0." + std::to_string(owner + 1)));
  const auto records = poll();
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].kind, RecordKind::kNew);
  EXPECT_EQ(records[1].kind, RecordKind::kTeach);
  EXPECT_EQ(records[1].peer, 0);
  EXPECT_EQ(records[1].backend, snapshot_->backends()[forwarded.backend].addr);
  EXPECT_EQ(hub_.worker(0).counters().redirects_received.get(), 1u);

  // Redirected again at once: forwarded by the entry, and no second teach within the tick;
  // the entry, picked up mid-flow, is proven now and its copies are refreshed with the
  // established timeout.
  const Packet again = run(wire);
  EXPECT_EQ(again.backend, forwarded.backend);
  const auto proven = poll();
  ASSERT_EQ(proven.size(), 1u);
  EXPECT_EQ(proven[0].kind, RecordKind::kRefresh);
  EXPECT_GT(proven[0].lifetime_s, 800u);

  // A redirected packet is never redirected on, even when this mux (believing itself dead)
  // is neither owner nor backup of the flow: a new flow, redirected by mux 1 to this one.
  configure(spec(0));
  l4mux::testing::L4Spec other = ack;
  Packet next;
  for (other.src_port = static_cast<uint16_t>(port + 1);; ++other.src_port) {
    next = run(l4mux::testing::flow_frame("198.51.100.7", "192.0.2.10", other));
    if (next.data[kEthHeaderLen + 9] == kProtoUdp && IpAddr::v4(next.data + kEthHeaderLen + 16) == owner_addr) break;
  }
  const Bytes wire2(next.data, next.data + next.len);
  ConfigSpec stale = spec(owner);
  stale.cluster->members[owner].live = false;
  configure(stale);
  const Packet r = run(wire2);
  ASSERT_EQ(r.verdict, Verdict::kTx);
  EXPECT_EQ(r.data[kEthHeaderLen + 9], kProtoIpip) << "decided here, not sent to a third mux";
  EXPECT_EQ(hub_.worker(0).counters().redirects_received.get(), 3u);
}

TEST_F(ClusterPipelineTest, DropsRedirectsFromStrangersAndMalformedOnes) {
  configure(spec(0));
  // UDP to the redirect port from an address that is no member.
  l4mux::testing::L4Spec u;
  u.proto = kProtoUdp;
  u.dst_port = kRedirectPort;
  u.payload = Bytes(40, 0x45);
  Packet p = run(l4mux::testing::flow_frame("10.0.0.99", "10.0.0.1", u));
  EXPECT_EQ(p.verdict, Verdict::kDrop);
  EXPECT_EQ(p.reason, DropReason::kRedirectUnknownPeer);
  // From a member, but not an IP packet inside.
  u.payload = Bytes(40, 0x00);
  p = run(l4mux::testing::flow_frame("10.0.0.2", "10.0.0.1", u));
  EXPECT_EQ(p.verdict, Verdict::kDrop);
  EXPECT_EQ(p.reason, DropReason::kRedirectMalformed);
  // Too short to hold one.
  u.payload = Bytes(4, 0x45);
  p = run(l4mux::testing::flow_frame("10.0.0.2", "10.0.0.1", u));
  EXPECT_EQ(p.reason, DropReason::kRedirectMalformed);
  // Other UDP to the mux's address is the kernel's.
  u.dst_port = 179;
  p = run(l4mux::testing::flow_frame("10.0.0.2", "10.0.0.1", u));
  EXPECT_EQ(p.verdict, Verdict::kPass);
}

TEST_F(ClusterPipelineTest, ExportsRefreshesAndEndsOfLongFlows) {
  configure(spec(0));
  l4mux::testing::L4Spec pkt;
  pkt.src_port = 33333;
  run(l4mux::testing::flow_frame("198.51.100.8", "192.0.2.10", pkt));
  pkt.tcp_flags = kTcpAck;
  run(l4mux::testing::flow_frame("198.51.100.8", "192.0.2.10", pkt));
  // The SYN's entry with the SYN's 30 s, and at once, established, a refresh with the 900 s
  // (copies left at 30 s would be gone long before the next refresh).
  auto records = poll();
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].kind, RecordKind::kNew);
  EXPECT_LE(records[0].lifetime_s, 30u);
  EXPECT_EQ(records[1].kind, RecordKind::kRefresh);
  EXPECT_GT(records[1].lifetime_s, 800u);
  run(l4mux::testing::flow_frame("198.51.100.8", "192.0.2.10", pkt));
  EXPECT_TRUE(poll().empty()) << "no refresh per packet";
  // Established: refreshed after a quarter of its 900 s timeout.
  now_ns_ += 100ull * 1'000'000'000;
  run(l4mux::testing::flow_frame("198.51.100.8", "192.0.2.10", pkt));
  EXPECT_TRUE(poll().empty());
  now_ns_ += 130ull * 1'000'000'000;
  run(l4mux::testing::flow_frame("198.51.100.8", "192.0.2.10", pkt));
  records = poll();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].kind, RecordKind::kRefresh);
  EXPECT_NE(records[0].flags & kRecordProven, 0);
  EXPECT_GT(records[0].lifetime_s, 800u);
  // Gone quiet: the sweep's end record once it expires.
  now_ns_ += 1000ull * 1'000'000'000;
  for (int i = 0; i < 600; ++i) run(l4mux::testing::flow_frame("203.0.113.1", "192.0.2.99", pkt));  // not for a VIP
  records = poll();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].kind, RecordKind::kEnd);
  EXPECT_EQ(records[0].key.src_port, 33333);
}

// A flow picked up mid-flow has the unproven timeout (10 s) until it repeats; its copies get
// the established timeout when it does.
TEST_F(ClusterPipelineTest, RefreshesTheCopiesOfAMidFlowEntryOnceItIsProven) {
  configure(spec(0));
  l4mux::testing::L4Spec pkt;
  pkt.tcp_flags = kTcpAck;
  // A flow this mux owns: its first packet, an ACK, is decided here.
  pkt.src_port = port_where("198.51.100.8", "192.0.2.10", [](const Owners& o) { return o.owner == 0; });
  ASSERT_EQ(run(l4mux::testing::flow_frame("198.51.100.8", "192.0.2.10", pkt)).verdict, Verdict::kTx);
  auto records = poll();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].kind, RecordKind::kNew);
  EXPECT_LE(records[0].lifetime_s, 10u);
  run(l4mux::testing::flow_frame("198.51.100.8", "192.0.2.10", pkt));
  records = poll();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].kind, RecordKind::kRefresh);
  EXPECT_GT(records[0].lifetime_s, 800u);
  EXPECT_NE(records[0].flags & kRecordProven, 0);
  run(l4mux::testing::flow_frame("198.51.100.8", "192.0.2.10", pkt));
  EXPECT_TRUE(poll().empty());
}

// A flow that expired while its bucket filled up: a new flow takes its slot before the sweep
// comes by, and the expired flow's end is exported all the same (peers drop their copies
// instead of keeping them until their own timeout).
TEST_F(ClusterPipelineTest, ExportsTheEndOfAnExpiredEntryWhoseSlotANewFlowTakes) {
  configure(spec(0));
  // Nine flows of one bucket (4096 entries: 512 buckets), far from where the sweep goes next.
  constexpr uint32_t kBuckets = 4096 / kConntrackWays;
  const auto bucket_of = [&](uint16_t port) {
    FlowKey k = flow(0);
    k.src = ip("198.51.100.9").bytes;
    k.src_port = port;
    return static_cast<uint32_t>(hash_flow(k, HashFields::kFiveTuple, snapshot_->seed()) & (kBuckets - 1));
  };
  std::vector<uint16_t> ports;
  uint32_t bucket = 0;
  for (uint16_t port = 1024; ports.size() < kConntrackWays + 1; ++port) {
    const uint32_t b = bucket_of(port);
    if (ports.empty()) {
      if (b < 100) continue;
      bucket = b;
    }
    if (b == bucket) ports.push_back(port);
  }
  l4mux::testing::L4Spec syn;
  for (uint32_t i = 0; i < kConntrackWays; ++i) {
    syn.src_port = ports[i];
    ASSERT_EQ(run(l4mux::testing::flow_frame("198.51.100.9", "192.0.2.10", syn)).verdict, Verdict::kTx);
  }
  ASSERT_EQ(poll().size(), kConntrackWays);
  // Their SYN timeout (30 s) passes; the sweep has visited 16 of 512 buckets.
  now_ns_ += 31'000'000'000ull;
  syn.src_port = ports[kConntrackWays];
  ASSERT_EQ(run(l4mux::testing::flow_frame("198.51.100.9", "192.0.2.10", syn)).verdict, Verdict::kTx);
  const auto records = poll();
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].kind, RecordKind::kEnd);
  EXPECT_EQ(records[0].key.src_port, ports[0]) << "the first of the expired flows, whose slot was taken";
  EXPECT_EQ(records[1].kind, RecordKind::kNew);
  EXPECT_EQ(records[1].key.src_port, ports[kConntrackWays]);
}

// The worker exports the entry as it is (the backend by slot); poll names the backend by
// address, from the snapshot, or from the registry for a slot handed out after it.
TEST_F(ClusterPipelineTest, PollNamesTheBackendByAddressAndTheLifetimeInSeconds) {
  configure(spec(0));
  const uint32_t known = *backends_.find(ip("10.1.0.2"));
  const uint32_t newer = *backends_.slot_for(ip("10.9.9.9"));
  ASSERT_GE(newer, snapshot_->backends().size());
  FlowEntry a;
  a.key = flow(7);
  a.backend = known;
  a.expires_ns = now_ns_ + 30'500'000'000ull;
  FlowEntry b = a;
  b.key = flow(8);
  b.backend = newer;
  hub_.worker(0).started(a, now_ns_, kRecordMustSync);
  hub_.worker(0).started(b, now_ns_, 0);
  hub_.worker(0).ended(a, now_ns_);
  const auto records = poll();
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].kind, RecordKind::kNew);
  EXPECT_EQ(records[0].key, a.key);
  EXPECT_EQ(records[0].backend, ip("10.1.0.2"));
  EXPECT_EQ(records[0].lifetime_s, 31u) << "whole seconds, rounded up";
  EXPECT_EQ(records[0].flags, kRecordMustSync);
  EXPECT_EQ(records[0].owner, snapshot_->cluster()->owners(a.key).owner);
  EXPECT_EQ(records[0].backup, snapshot_->cluster()->owners(a.key).backup);
  EXPECT_EQ(records[1].key, b.key);
  EXPECT_EQ(records[1].backend, ip("10.9.9.9")) << "a slot newer than the snapshot, from the registry";
  EXPECT_EQ(records[2].kind, RecordKind::kEnd);
  EXPECT_EQ(records[2].backend.family, Family::kNone);
  EXPECT_EQ(records[2].lifetime_s, 0u);
}

}  // namespace
}  // namespace l4mux::cluster
