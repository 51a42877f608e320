#include "export_ring.h"

#include <algorithm>
#include <bit>
#include <cstring>

namespace l4mux::cluster {
namespace {
uint64_t ring_size(uint32_t wanted) { return std::bit_ceil(uint64_t{wanted < 2 ? 2u : wanted}); }
}  // namespace

ExportRing::ExportRing(uint32_t capacity)
    : capacity_(ring_size(capacity)),
      mask_(capacity_ - 1),
      slots_(static_cast<uint8_t*>(::operator new[](capacity_ * kFlowRecordSize, std::align_val_t{64}))) {
  // Touch every page now rather than on the fast path.
  std::memset(slots_.get(), 0, capacity_ * kFlowRecordSize);
}

size_t ExportRing::drain(uint8_t* out, size_t max) {
  const uint64_t tail = tail_.load(std::memory_order_relaxed);
  const uint64_t head = head_.load(std::memory_order_acquire);
  const uint64_t n = std::min<uint64_t>(head - tail, max);
  for (uint64_t i = 0; i < n;) {
    // Up to the end of the array, then from its start.
    const uint64_t at = (tail + i) & mask_;
    const uint64_t run = std::min(n - i, capacity_ - at);
    std::memcpy(out + i * kFlowRecordSize, slots_.get() + at * kFlowRecordSize, run * kFlowRecordSize);
    i += run;
  }
  tail_.store(tail + n, std::memory_order_release);
  return static_cast<size_t>(n);
}

}  // namespace l4mux::cluster
