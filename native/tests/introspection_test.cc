// Flow lookup and live capture on a running Engine: the workers keep forwarding and answer
// between batches. Packet I/O is an in-memory double (frames in, transmitted frames out).
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "frame_builder.h"
#include "engine/engine.h"
#include "pipeline_fixture.h"

namespace l4mux::testing {
namespace {

constexpr uint32_t kSlot = 2048;

// Frames pushed by the test come out of receive(); transmitted ones are kept.
class MemoryIo : public PacketIo {
 public:
  void push(const Bytes& frame) {
    std::lock_guard lock(mutex_);
    inbox_.push_back(frame);
  }
  uint32_t receive(std::span<Packet> batch, int timeout_ms) override {
    {
      std::lock_guard lock(mutex_);
      uint32_t n = 0;
      while (n < batch.size() && !inbox_.empty()) {
        const Bytes& f = inbox_.front();
        uint8_t* buf = buffers_[n].data();
        std::memcpy(buf + kHeadroom, f.data(), f.size());
        batch[n] = Packet{};
        batch[n].data = buf + kHeadroom;
        batch[n].len = static_cast<uint32_t>(f.size());
        batch[n].headroom = kHeadroom;
        inbox_.pop_front();
        ++n;
      }
      if (n > 0) return n;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(timeout_ms, 2)));
    return 0;
  }
  void complete(std::span<Packet> batch, uint32_t n) override {
    std::lock_guard lock(mutex_);
    for (uint32_t i = 0; i < n; ++i) {
      if (batch[i].verdict == Verdict::kTx) sent_.emplace_back(batch[i].data, batch[i].data + batch[i].len);
    }
  }
  IoStats stats() const override { return {}; }
  std::string describe() const override { return "memory"; }
  size_t sent() const {
    std::lock_guard lock(mutex_);
    return sent_.size();
  }
  Bytes sent_frame(size_t i) const {
    std::lock_guard lock(mutex_);
    return sent_.at(i);
  }

 private:
  mutable std::mutex mutex_;
  std::deque<Bytes> inbox_;
  std::vector<Bytes> sent_;
  std::array<std::array<uint8_t, kSlot>, kMaxBatch> buffers_{};
};

template <typename F>
bool eventually(F&& done, int timeout_ms = 5000) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

FlowKey key_of(const std::string& src, uint16_t sport, const std::string& dst, uint16_t dport) {
  FlowKey k;
  const IpAddr s = ip(src);
  const IpAddr d = ip(dst);
  k.family = s.family;
  k.src = s.bytes;
  k.dst = d.bytes;
  k.src_port = sport;
  k.dst_port = dport;
  k.proto = kProtoTcp;
  return k;
}

std::string format_ip(const IpAddr& a) {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(a.is_v4() ? AF_INET : AF_INET6, a.bytes.data(), buf, sizeof(buf));
  return buf;
}

std::string outer_dst(const Bytes& frame) {
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, frame.data() + 14 + 16, buf, sizeof(buf));
  return buf;
}

class IntrospectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EngineOptions o;
    o.interface = "mem0";
    o.workers = 2;
    o.conntrack.capacity = 4096;
    o.max_vips = 64;
    o.max_backends = 1024;
    engine_ = std::make_unique<Engine>(o, [this](uint32_t worker) {
      auto io = std::make_unique<MemoryIo>();
      ios_[worker] = io.get();
      return io;
    });
    engine_->set_config(base_config());
  }
  void TearDown() override { engine_->stop(); }

  std::unique_ptr<Engine> engine_;
  std::array<MemoryIo*, 2> ios_{};
};

TEST_F(IntrospectionTest, LookupFindsTheFlowInTheWorkerThatHoldsItWhileWorkersRun) {
  engine_->start();
  for (uint16_t port = 41000; port < 41020; ++port) {
    ios_[1]->push(flow_frame("198.51.100.7", "192.0.2.10", L4Spec{kProtoTcp, port, 80, 0x02}));
  }
  ASSERT_TRUE(eventually([&] { return ios_[1]->sent() == 20; }));

  for (uint16_t i = 0; i < 20; ++i) {
    const FlowLookup r = engine_->lookup_flow(key_of("198.51.100.7", static_cast<uint16_t>(41000 + i), "192.0.2.10", 80));
    ASSERT_TRUE(r.vip_found);
    EXPECT_EQ(r.vip_name, "web");
    EXPECT_EQ(r.decided_by, "connection table");
    ASSERT_EQ(r.workers.size(), 2u);
    EXPECT_TRUE(r.workers[0].answered);
    EXPECT_FALSE(r.workers[0].entry.found);
    ASSERT_TRUE(r.workers[1].entry.found);
    EXPECT_EQ(r.workers[1].entry.state, FlowState::kTcpSynSeen);
    EXPECT_EQ(r.workers[1].fate, FlowFate::kKeep);
    EXPECT_EQ(r.workers[1].vip_name, "web");
    // The backend it holds is where the packet really went, and Maglev's entry agrees.
    ASSERT_TRUE(r.backend_now);
    EXPECT_EQ(format_ip(*r.backend_now), outer_dst(ios_[1]->sent_frame(i)));
    ASSERT_TRUE(r.table_backend);
    EXPECT_EQ(*r.table_backend, *r.backend_now);
    EXPECT_EQ(r.table_index, r.scheduler_hash % r.table_size);
  }

  const FlowLookup unknown = engine_->lookup_flow(key_of("198.51.100.8", 5555, "192.0.2.10", 80));
  EXPECT_EQ(unknown.decided_by, "maglev table");
  EXPECT_FALSE(unknown.workers[0].entry.found);
  EXPECT_FALSE(unknown.workers[1].entry.found);
  EXPECT_TRUE(unknown.backend_now);

  const FlowLookup other = engine_->lookup_flow(key_of("198.51.100.8", 5555, "192.0.2.99", 80));
  EXPECT_FALSE(other.vip_found);
  EXPECT_EQ(other.decided_by, "no VIP");
}

TEST_F(IntrospectionTest, LookupOnAStoppedEngineReadsTheTablesDirectly) {
  engine_->start();
  ios_[0]->push(flow_frame("198.51.100.7", "192.0.2.10", L4Spec{kProtoTcp, 42000, 80, 0x02}));
  ASSERT_TRUE(eventually([&] { return ios_[0]->sent() == 1; }));
  engine_->stop();
  const FlowLookup r = engine_->lookup_flow(key_of("198.51.100.7", 42000, "192.0.2.10", 80));
  EXPECT_TRUE(r.workers[0].entry.found);
  EXPECT_EQ(r.decided_by, "connection table");
}

TEST_F(IntrospectionTest, CaptureKeepsReceivedAndSentCopiesOfMatchingPacketsUpToTheCount) {
  engine_->start();
  CaptureRequest req;
  req.vip_name = "web";
  req.count = 5;
  req.snaplen = 128;
  engine_->start_capture(req);
  EXPECT_THROW(engine_->start_capture(req), std::invalid_argument);
  // Not the VIP's port: forwarded nowhere, and not captured by the VIP filter.
  for (uint16_t port = 43000; port < 43004; ++port) ios_[0]->push(flow_frame("198.51.100.9", "192.0.2.10", L4Spec{kProtoTcp, port, 443, 0x02}));
  for (uint16_t port = 43000; port < 43010; ++port) ios_[0]->push(flow_frame("198.51.100.9", "192.0.2.10", L4Spec{kProtoTcp, port, 80, 0x02}));
  ASSERT_TRUE(eventually([&] { return ios_[0]->sent() == 10; }));
  ASSERT_TRUE(eventually([&] { return engine_->capture_complete(); }));

  std::vector<std::pair<CaptureRecordHeader, Bytes>> records;
  engine_->drain_capture([&](const CaptureRecordHeader& h, const uint8_t* data) {
    records.emplace_back(h, Bytes(data, data + h.captured_len));
  });
  ASSERT_EQ(records.size(), 10u);
  for (size_t i = 0; i < records.size(); i += 2) {
    const auto& [in, in_bytes] = records[i];
    const auto& [out, out_bytes] = records[i + 1];
    EXPECT_EQ(in.direction, CaptureDirection::kReceived);
    EXPECT_EQ(out.direction, CaptureDirection::kSent);
    EXPECT_EQ(in.packet, out.packet);
    EXPECT_EQ(in.original_len, 60u);  // padded to the Ethernet minimum
    EXPECT_EQ(out.original_len, 14u + 20u + load_be16(in_bytes.data() + 14 + 2));  // IP-in-IP around the IP packet
    EXPECT_EQ(in_bytes[14 + 9], kProtoTcp);
    EXPECT_EQ(out_bytes[14 + 9], kProtoIpip);
    EXPECT_LE(out.captured_len, 128u);
    EXPECT_EQ(load_be16(in_bytes.data() + 14 + 20 + 2), 80);
    EXPECT_GT(in.realtime_ns, 1'600'000'000'000'000'000ull);
  }
  const CaptureStats s = engine_->stop_capture();
  EXPECT_EQ(s.packets, 5u);
  EXPECT_EQ(s.ring_full, 0u);
  EXPECT_EQ(engine_->drain_capture([](const CaptureRecordHeader&, const uint8_t*) {}), 0u);  // frees the rings
  // After stop: nothing captured, nothing to drain, a new session may start.
  ios_[0]->push(flow_frame("198.51.100.9", "192.0.2.10", L4Spec{kProtoTcp, 43100, 80, 0x02}));
  ASSERT_TRUE(eventually([&] { return ios_[0]->sent() == 11; }));
  EXPECT_EQ(engine_->drain_capture([](const CaptureRecordHeader&, const uint8_t*) {}), 0u);
  req.vip_name.clear();
  req.backend = ip("10.9.9.9");
  EXPECT_THROW(engine_->start_capture(req), std::invalid_argument);
  req.backend = ip("10.1.0.1");
  engine_->start_capture(req);
  EXPECT_EQ(engine_->stop_capture().packets, 0u);
}

TEST_F(IntrospectionTest, BackendFilterKeepsOnlyPacketsSentToThatBackend) {
  engine_->start();
  CaptureRequest req;
  req.backend = ip("10.1.0.2");
  req.count = 1000;
  engine_->start_capture(req);
  for (uint16_t port = 44000; port < 44060; ++port) ios_[0]->push(flow_frame("198.51.100.9", "192.0.2.10", L4Spec{kProtoTcp, port, 80, 0x02}));
  ASSERT_TRUE(eventually([&] { return ios_[0]->sent() == 60; }));
  size_t to_backend = 0;
  for (size_t i = 0; i < 60; ++i) to_backend += outer_dst(ios_[0]->sent_frame(i)) == "10.1.0.2";
  ASSERT_GT(to_backend, 0u);
  std::vector<Bytes> sent;
  engine_->drain_capture([&](const CaptureRecordHeader& h, const uint8_t* data) {
    if (h.direction == CaptureDirection::kSent) sent.emplace_back(data, data + h.captured_len);
  });
  EXPECT_EQ(sent.size(), to_backend);
  for (const Bytes& f : sent) EXPECT_EQ(outer_dst(f), "10.1.0.2");
  EXPECT_EQ(engine_->stop_capture().packets, to_backend);
}

}  // namespace
}  // namespace l4mux::testing
