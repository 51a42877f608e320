#include "counters.h"

namespace l4mux {

WorkerCounters::WorkerCounters(uint32_t max_vips, uint32_t max_backends)
    : max_vips_(max_vips),
      max_backends_(max_backends),
      vips_(std::make_unique<VipCounters[]>(max_vips)),
      backends_(std::make_unique<BackendCounters[]>(max_backends)) {}

}  // namespace l4mux
