// Live capture (Katran's introspection): copies of the frames the workers see, before and
// after the pipeline (so an encapsulated packet appears as received and as sent), for the
// control plane to write to a pcap file.
//
// Bounded in every direction: a session captures at most `count` packets, each copy at most
// `snaplen` bytes, into one fixed single-producer single-consumer ring per worker that the
// control thread drains; when a ring is full, copies are skipped and counted, never waited
// for. No cost when nobody captures: a worker loads one pointer per batch (Worker).
#pragma once

#include <array>
#include <atomic>
#include <cstring>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "defaults.h"
#include "pipeline.h"
#include "types.h"

namespace l4mux {

inline constexpr uint32_t kCaptureMaxSnaplen = defaults::kCaptureMaxSnaplen;
inline constexpr uint32_t kCaptureRingSlots = defaults::kCaptureRingSlots;  // per worker, a power of two

enum class CaptureDirection : uint8_t { kReceived = 0, kSent = 1 };

struct CaptureFilter {
  std::optional<VipKey> vip;         // frames addressed to this VIP (port 0: any port)
  std::optional<uint32_t> backend;   // frames sent to this backend slot
  uint64_t count = defaults::kCaptureCount;      // packets (a received frame and its sent copy are one)
  uint32_t snaplen = defaults::kCaptureSnaplen;  // bytes kept of each frame
  uint32_t sample_every = 1;         // 1: every matching packet; N: one in N
};

struct CaptureRecordHeader {
  uint64_t realtime_ns = 0;  // CLOCK_REALTIME of the batch
  uint32_t original_len = 0;
  uint32_t captured_len = 0;
  uint32_t packet = 0;  // per-worker sequence: the two copies of one packet share it
  uint16_t worker = 0;
  CaptureDirection direction = CaptureDirection::kReceived;
  Verdict verdict = Verdict::kDrop;
};

struct CaptureStats {
  uint64_t packets = 0;    // packets captured
  uint64_t ring_full = 0;  // copies skipped because the control plane had not drained yet
};

class CaptureSession {
 public:
  // Allocates every ring (workers x kCaptureRingSlots x (header + snaplen) bytes).
  // Throws std::invalid_argument on a bad filter.
  CaptureSession(const CaptureFilter& filter, uint32_t workers);
  ~CaptureSession();
  CaptureSession(const CaptureSession&) = delete;
  CaptureSession& operator=(const CaptureSession&) = delete;

  // Worker side, around Pipeline::process of one batch. before() copies the frames it
  // samples (and clears their backend, which the pipeline sets when it forwards); after()
  // keeps those the filter wants, with the frame as sent.
  void before(uint32_t worker, std::span<Packet> batch, uint64_t realtime_ns);
  void after(uint32_t worker, std::span<const Packet> batch);

  // Control side: hands every record waiting in the rings to `sink(header, bytes)`; returns
  // how many.
  template <typename Sink>
  uint32_t drain(Sink&& sink) {
    uint32_t n = 0;
    for (auto& w : workers_) {
      const uint64_t head = w->head.load(std::memory_order_acquire);
      uint64_t tail = w->tail.load(std::memory_order_relaxed);
      for (; tail != head; ++tail, ++n) {
        const uint8_t* slot = w->slot(tail, slot_bytes_);
        CaptureRecordHeader h;
        std::memcpy(&h, slot, sizeof(h));
        sink(h, slot + sizeof(CaptureRecordHeader));
      }
      w->tail.store(tail, std::memory_order_release);
    }
    return n;
  }

  // All `count` packets taken (what is left in the rings may still be drained).
  bool complete() const { return budget_.load(std::memory_order_relaxed) <= 0; }
  CaptureStats stats() const;

 private:
  struct alignas(64) PerWorker {
    std::atomic<uint64_t> head{0};  // written by the worker
    alignas(64) std::atomic<uint64_t> tail{0};  // written by the control thread
    alignas(64) std::atomic<uint64_t> ring_full{0};
    std::atomic<uint64_t> packets{0};
    uint64_t seen = 0;      // sampling position (worker only)
    uint32_t sequence = 0;  // packet numbers (worker only)
    uint64_t realtime_ns = 0;
    std::unique_ptr<uint8_t[]> ring;
    std::unique_ptr<uint8_t[]> staging;  // kMaxBatch copies taken before process()
    std::array<uint32_t, kMaxBatch> staged_len{};
    std::array<uint32_t, kMaxBatch> original_len{};
    std::array<bool, kMaxBatch> staged{};
    uint8_t* slot(uint64_t index, uint32_t bytes) const {
      return ring.get() + (index & (kCaptureRingSlots - 1)) * bytes;
    }
  };

  bool wanted_before(const Packet& pkt) const;
  bool push(PerWorker& w, const CaptureRecordHeader& h, const uint8_t* data);

  const CaptureFilter filter_;
  const uint32_t slot_bytes_;
  std::atomic<int64_t> budget_;
  std::vector<std::unique_ptr<PerWorker>> workers_;
};

}  // namespace l4mux
