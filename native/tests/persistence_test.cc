// Client persistence in the fast path: the shared table (install, lookup, expiry, eviction
// under the budget, a reader racing a writer) and the pipeline's punt / answer path.
#include "persistence.h"

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "parse.h"
#include "pipeline_fixture.h"

namespace l4mux::testing {
namespace {

ClientKey client(uint32_t vip, const std::string& addr, uint8_t prefix) {
  const IpAddr a = ip(addr);
  return make_client_key(vip, a.bytes, a.family, prefix);
}

constexpr uint64_t kSec = 1'000'000'000ull;

TEST(PersistTable, InstallLookupRefreshRemove) {
  PersistTable t(64, 16);
  ClientKey evicted;
  bool did = false;
  const ClientKey c = client(3, "198.51.100.7", 32);
  EXPECT_EQ(t.install(c, 5, 10 * kSec, kSec, 100, &evicted, &did), InstallOutcome::kInstalled);
  PersistHit hit;
  ASSERT_TRUE(t.lookup(c, hash_client_key(c), 2 * kSec, &hit));
  EXPECT_EQ(hit.backend, 5u);
  EXPECT_EQ(hit.expires_ns, 10 * kSec);
  // Another VIP, another client: no hit.
  EXPECT_FALSE(t.lookup(client(4, "198.51.100.7", 32), hash_client_key(client(4, "198.51.100.7", 32)), kSec, &hit));
  EXPECT_FALSE(t.lookup(client(3, "198.51.100.8", 32), hash_client_key(client(3, "198.51.100.8", 32)), kSec, &hit));
  // Past the deadline it is gone for readers; a refresh brings it back.
  EXPECT_FALSE(t.lookup(c, hash_client_key(c), 10 * kSec, &hit));
  EXPECT_TRUE(t.refresh(c, 20 * kSec));
  EXPECT_TRUE(t.lookup(c, hash_client_key(c), 10 * kSec, &hit));
  // Update in place.
  EXPECT_EQ(t.install(c, 6, 30 * kSec, kSec, 100, &evicted, &did), InstallOutcome::kUpdated);
  EXPECT_TRUE(t.lookup(c, hash_client_key(c), kSec, &hit));
  EXPECT_EQ(hit.backend, 6u);
  EXPECT_EQ(t.stats().entries, 1u);
  // Compare-and-remove.
  EXPECT_FALSE(t.remove(c, 5));
  EXPECT_TRUE(t.remove(c, 6));
  EXPECT_FALSE(t.lookup(c, hash_client_key(c), kSec, &hit));
  EXPECT_EQ(t.stats().entries, 0u);
}

TEST(PersistTable, PrefixGranularity) {
  const ClientKey a = client(1, "198.51.100.7", 24);
  const ClientKey b = client(1, "198.51.100.200", 24);
  const ClientKey c = client(1, "198.51.101.7", 24);
  EXPECT_EQ(a, b);
  EXPECT_FALSE(a == c);
  EXPECT_EQ(client(1, "2001:db8:1:2::1", 48), client(1, "2001:db8:1:ffff::9", 48));
  EXPECT_EQ(client(1, "198.51.100.7", 200).prefix, 32);  // clamped
}

TEST(PersistTable, ExpireFreesAndReports) {
  PersistTable t(256, 16);
  ClientKey ev;
  bool did = false;
  for (int i = 0; i < 100; ++i) {
    t.install(client(1, "10.9.0." + std::to_string(i), 32), 1, (i < 40 ? 5 : 50) * kSec, kSec, 1000, &ev, &did);
  }
  EXPECT_EQ(t.stats().entries, 100u);
  std::set<std::string> gone;
  const uint32_t freed = t.expire(10 * kSec, t.capacity(), [&](const PersistEntryView& v) {
    gone.insert(std::to_string(v.key.addr[3]));
  });
  EXPECT_EQ(freed, 40u);
  EXPECT_EQ(gone.size(), 40u);
  EXPECT_TRUE(gone.count("0") == 1 && gone.count("39") == 1 && gone.count("40") == 0);
  EXPECT_EQ(t.stats().entries, 60u);
  EXPECT_EQ(t.vip_entries(1), 60u);
}

TEST(PersistTable, BudgetEvictsSoonestAndPerVipLimit) {
  PersistTable t(64, 16);  // 16 buckets of 4
  ASSERT_EQ(t.capacity(), 64u);
  ClientKey ev;
  bool did = false;
  uint32_t evictions = 0;
  for (uint32_t i = 0; i < 1000; ++i) {
    const ClientKey c = client(1, "10.8." + std::to_string(i / 256) + "." + std::to_string(i % 256), 32);
    t.install(c, i, (1000 + i) * kSec, kSec, UINT32_MAX, &ev, &did);
    if (did) ++evictions;
    EXPECT_LE(t.stats().entries, 64u);
  }
  EXPECT_EQ(t.stats().entries + evictions, 1000u);
  EXPECT_EQ(t.stats().evictions, evictions);
  EXPECT_GT(t.stats().entries, 48u);  // two-choice buckets fill the table well
  // The latest install is always there (it evicted an older one).
  PersistHit hit;
  const ClientKey last = client(1, "10.8.3.231", 32);
  EXPECT_TRUE(t.lookup(last, hash_client_key(last), kSec, &hit));
  // Per-VIP limit: VIP 2 may hold 3.
  int installed = 0;
  for (int i = 0; i < 10; ++i) {
    if (t.install(client(2, "10.7.0." + std::to_string(i), 32), 1, 5000 * kSec, kSec, 3, &ev, &did) ==
        InstallOutcome::kInstalled) {
      ++installed;
    }
  }
  EXPECT_EQ(installed, 3);
  EXPECT_EQ(t.vip_entries(2), 3u);
}

TEST(PersistTable, ConcurrentReaderSeesConsistentEntries) {
  // The writer keeps rewriting a set of entries with backend == a function of the deadline;
  // a reader must never see a backend that does not match the deadline it read with it.
  PersistTable t(1024, 16);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> reads{0};
  std::atomic<uint64_t> torn{0};
  std::thread reader([&] {
    PersistHit hit;
    while (!stop.load(std::memory_order_relaxed)) {
      for (int i = 0; i < 64; ++i) {
        const ClientKey c = client(1, "10.6.0." + std::to_string(i), 32);
        if (t.lookup(c, hash_client_key(c), 0, &hit)) {
          reads.fetch_add(1, std::memory_order_relaxed);
          if (hit.backend != static_cast<uint32_t>(hit.expires_ns % 1000) + static_cast<uint32_t>(i)) {
            torn.fetch_add(1, std::memory_order_relaxed);
          }
        }
      }
    }
  });
  ClientKey ev;
  bool did = false;
  // Until the reader has checked enough entries (bounded in rounds on a loaded machine).
  for (uint64_t round = 1; round < 20'000'000 && (round < 20000 || reads.load(std::memory_order_relaxed) < 100000);
       ++round) {
    const int i = static_cast<int>(round % 64);
    const uint64_t deadline = round * 7919;
    t.install(client(1, "10.6.0." + std::to_string(i), 32), static_cast<uint32_t>(deadline % 1000) + i, deadline, 0,
              UINT32_MAX, &ev, &did);
    if (round % 5 == 0) t.remove(client(1, "10.6.0." + std::to_string((i + 7) % 64), 32));
  }
  stop = true;
  reader.join();
  EXPECT_GT(reads.load(), 0u);
  EXPECT_EQ(torn.load(), 0u);
}

// ---- The pipeline's punt / answer path ----

class PersistPipelineTest : public PipelineTest {
 protected:
  PersistPipelineTest() {
    PipelineOptions o;
    o.persistence = &hub_;
    o.worker = 0;
    o.random_seed = 7;
    persistent_ = std::make_unique<Pipeline>(ConntrackConfig{4096, {}}, counters_, o);
    ConfigSpec spec = base_config();
    spec.vips[0].persistence = VipSpec::Persistence{60, 24, 1000};
    configure(spec);
    hub_.set_notify([this] { ++notified_; });
  }
  Packet send(const Bytes& frame) {
    buffer_.assign(kHeadroom + frame.size(), 0);
    std::memcpy(buffer_.data() + kHeadroom, frame.data(), frame.size());
    Packet pkt;
    pkt.data = buffer_.data() + kHeadroom;
    pkt.len = static_cast<uint32_t>(frame.size());
    pkt.headroom = kHeadroom;
    persistent_->process(std::span<Packet>(&pkt, 1), *snapshot_, now_ns_);
    return pkt;
  }
  uint32_t slot_of(const std::string& addr) { return *backends_.find(ip(addr)); }
  // The outer destination of an IPIP frame.
  static std::string outer_dst(const Packet& p) {
    char buf[64];
    inet_ntop(AF_INET, p.data + kEthHeaderLen + 16, buf, sizeof(buf));
    return buf;
  }

  PersistenceHub hub_{1024, 64, 1, PuntSettings{}};
  std::unique_ptr<Pipeline> persistent_;
  int notified_ = 0;
};

TEST_F(PersistPipelineTest, MissIsHeldAndAnswerReleasesToTheAnsweredBackend) {
  L4Spec syn;
  syn.src_port = 41000;
  const Packet p = send(flow_frame("198.51.100.7", "192.0.2.10", syn));
  EXPECT_EQ(p.verdict, Verdict::kHeld);
  EXPECT_EQ(notified_, 1);
  PuntQueue& q = hub_.worker(0);
  EXPECT_EQ(q.counters().misses.get(), 1u);
  EXPECT_EQ(q.held(), 1u);
  PuntRecord r;
  ASSERT_TRUE(q.next_punt(&r));
  EXPECT_EQ(r.client.prefix, 24);
  EXPECT_EQ(r.client.addr[3], 0);  // masked
  EXPECT_NE(r.proposed, kPersistNoBackend);
  EXPECT_EQ(r.recorded, kPersistNoBackend);
  // No wakeup again until re-armed.
  syn.src_port = 41001;
  EXPECT_EQ(send(flow_frame("198.51.100.9", "192.0.2.10", syn)).verdict, Verdict::kHeld);
  EXPECT_EQ(notified_, 1);
  EXPECT_EQ(hub_.arm(), 1u);
  PuntRecord r2;
  ASSERT_TRUE(q.next_punt(&r2));

  // Answer: the first to 10.1.0.3 (whatever was proposed), the second refused (no backend).
  const uint32_t b3 = slot_of("10.1.0.3");
  ASSERT_TRUE(q.answer(AnswerRecord{r.slot, r.ticket, b3}));
  ASSERT_TRUE(q.answer(AnswerRecord{r2.slot, r2.ticket, kPersistNoBackend}));
  ASSERT_TRUE(q.answer(AnswerRecord{r.slot, r.ticket + 100, b3}));  // a stale ticket
  Packet out[8];
  uint32_t slots[8];
  const uint32_t n = persistent_->release_answers(*snapshot_, now_ns_, std::span<Packet>(out, 8), slots);
  ASSERT_EQ(n, 1u);
  EXPECT_EQ(out[0].verdict, Verdict::kTx);
  EXPECT_EQ(outer_dst(out[0]), "10.1.0.3");
  persistent_->finish_release(slots, n, n);
  EXPECT_EQ(q.counters().released.get(), 1u);
  EXPECT_EQ(q.counters().release_refused.get(), 2u);
  EXPECT_EQ(counters_.drops[static_cast<size_t>(DropReason::kPuntRefused)].get(), 1u);
  EXPECT_EQ(q.held(), 0u);

  // The flow now has a connection entry: its next packet goes to 10.1.0.3 without the table.
  L4Spec ack = syn;
  ack.src_port = 41000;
  ack.tcp_flags = kTcpAck;
  const Packet next = send(flow_frame("198.51.100.7", "192.0.2.10", ack));
  ASSERT_EQ(next.verdict, Verdict::kTx);
  EXPECT_EQ(outer_dst(next), "10.1.0.3");
  EXPECT_EQ(q.counters().misses.get(), 2u);  // no lookup for the established flow
}

TEST_F(PersistPipelineTest, EntryHitGoesToItsBackendAtOnceAndTouches) {
  ClientKey ev;
  bool did = false;
  const uint32_t b2 = slot_of("10.1.0.2");
  const uint32_t vip = snapshot_->vips()[0].slot;
  hub_.table().install(client(vip, "198.51.100.0", 24), b2, now_ns_ + 60 * kSec, now_ns_, 1000, &ev, &did);
  for (int i = 0; i < 20; ++i) {
    L4Spec syn;
    syn.src_port = static_cast<uint16_t>(42000 + i);
    const Packet p = send(flow_frame("198.51.100." + std::to_string(1 + i), "192.0.2.10", syn));
    ASSERT_EQ(p.verdict, Verdict::kTx);
    EXPECT_EQ(outer_dst(p), "10.1.0.2");
  }
  PuntQueue& q = hub_.worker(0);
  EXPECT_EQ(q.counters().hits.get(), 20u);
  EXPECT_EQ(q.counters().punted.get(), 0u);
  // One touch for the client prefix within the touch period.
  TouchRecord t;
  ASSERT_TRUE(q.next_touch(&t));
  EXPECT_EQ(t.client.vip, vip);
  EXPECT_FALSE(q.next_touch(&t));
  now_ns_ += 2 * kSec;
  L4Spec syn;
  syn.src_port = 43000;
  send(flow_frame("198.51.100.50", "192.0.2.10", syn));
  EXPECT_TRUE(q.next_touch(&t));
}

TEST_F(PersistPipelineTest, DrainingRecordedBackendIsPuntedWithIt) {
  ClientKey ev;
  bool did = false;
  const uint32_t b1 = slot_of("10.1.0.1");
  hub_.table().install(client(snapshot_->vips()[0].slot, "198.51.100.0", 24), b1, now_ns_ + 60 * kSec, now_ns_, 1000,
                       &ev, &did);
  ConfigSpec spec = base_config();
  spec.vips[0].persistence = VipSpec::Persistence{60, 24, 1000};
  spec.vips[0].backends[0].state = AdminState::kDraining;
  configure(spec);
  L4Spec syn;
  EXPECT_EQ(send(flow_frame("198.51.100.7", "192.0.2.10", syn)).verdict, Verdict::kHeld);
  PuntRecord r;
  ASSERT_TRUE(hub_.worker(0).next_punt(&r));
  EXPECT_EQ(r.recorded, b1);
  EXPECT_NE(r.proposed, b1);
  EXPECT_EQ(hub_.worker(0).counters().repicks.get(), 1u);
}

TEST_F(PersistPipelineTest, OverflowAndExpiryAreCountedDrops) {
  PersistenceHub small(64, 64, 1, PuntSettings{4, 2048, 256, kSec, kSec});
  PipelineOptions o;
  o.persistence = &small;
  persistent_ = std::make_unique<Pipeline>(ConntrackConfig{4096, {}}, counters_, o);
  int held = 0;
  for (int i = 0; i < 10; ++i) {
    L4Spec syn;
    syn.src_port = static_cast<uint16_t>(44000 + i);
    held += send(flow_frame("203.0.113." + std::to_string(i), "192.0.2.10", syn)).verdict == Verdict::kHeld;
  }
  EXPECT_EQ(held, 4);
  EXPECT_EQ(small.worker(0).counters().punt_overflow.get(), 6u);
  EXPECT_EQ(counters_.drops[static_cast<size_t>(DropReason::kPuntOverflow)].get(), 6u);
  // Established traffic of a non-persistent path is unaffected: UDP to no VIP passes.
  Packet out[4];
  uint32_t slots[4];
  now_ns_ += 2 * kSec;
  EXPECT_EQ(persistent_->release_answers(*snapshot_, now_ns_, std::span<Packet>(out, 4), slots), 0u);
  EXPECT_EQ(small.worker(0).counters().punt_expired.get(), 4u);
  EXPECT_EQ(small.worker(0).held(), 0u);
  EXPECT_EQ(counters_.drops[static_cast<size_t>(DropReason::kPuntExpired)].get(), 4u);
}

}  // namespace
}  // namespace l4mux::testing
