// A worker's export ring: single producer (the worker), single consumer (the control thread
// draining it for pollFlowEvents), fixed size, lock-free. The worker writes a record straight
// into its slot and publishes it with one release store; when the ring is full the record is
// dropped and counted (the worker never waits for the control thread).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>

#include "../counters.h"
#include "flow_record.h"

namespace l4mux::cluster {

class ExportRing {
 public:
  // `capacity` records, rounded up to a power of two (at least 2).
  explicit ExportRing(uint32_t capacity);
  ExportRing(const ExportRing&) = delete;
  ExportRing& operator=(const ExportRing&) = delete;

  // Producer: the slot for the next record, or nullptr when the ring is full (the record is
  // lost and counted under overflow()). Fill it, then publish().
  uint8_t* claim() {
    const uint64_t head = head_.load(std::memory_order_relaxed);
    if (head - cached_tail_ >= capacity_) {
      cached_tail_ = tail_.load(std::memory_order_acquire);
      if (head - cached_tail_ >= capacity_) {
        overflow_.add();
        return nullptr;
      }
    }
    return slots_.get() + (head & mask_) * kFlowRecordSize;
  }
  void publish() { head_.store(head_.load(std::memory_order_relaxed) + 1, std::memory_order_release); }

  // Consumer: moves up to `max` records to `out` (64 bytes each); returns how many.
  size_t drain(uint8_t* out, size_t max);

  uint32_t capacity() const { return static_cast<uint32_t>(capacity_); }
  // Records published so far / drained so far (both only grow).
  uint64_t produced() const { return head_.load(std::memory_order_acquire); }
  uint64_t consumed() const { return tail_.load(std::memory_order_acquire); }
  uint64_t overflow() const { return overflow_.get(); }

 private:
  struct Free {
    void operator()(uint8_t* p) const { ::operator delete[](p, std::align_val_t{64}); }
  };
  const uint64_t capacity_;
  const uint64_t mask_;
  std::unique_ptr<uint8_t[], Free> slots_;
  // Producer's line: its position, its cached view of the consumer's, its overflow count.
  alignas(64) std::atomic<uint64_t> head_{0};
  uint64_t cached_tail_ = 0;
  Counter overflow_;
  // Consumer's line.
  alignas(64) std::atomic<uint64_t> tail_{0};
};

}  // namespace l4mux::cluster
