#include "counters.h"

namespace l4mux {

WorkerCounters::WorkerCounters(uint32_t max_vips, uint32_t max_backends)
    : max_vips_(max_vips),
      max_backends_(max_backends),
      vips_(std::make_unique<VipCounters[]>(max_vips)),
      backends_(std::make_unique<BackendCounters[]>(max_backends)) {}

// Members outside the lists would be missed by the sums (and by the addon): only the lists.
static_assert(sizeof(WorkerCounters) - sizeof(WorkerCounters::drops) ==
                  kWorkerCounterCount * sizeof(Counter) + 2 * sizeof(uint32_t) + 2 * sizeof(void*),
              "WorkerCounters has a counter outside L4MUX_WORKER_COUNTERS");
static_assert(sizeof(VipCounters) == kVipCounterCount * sizeof(Counter), "VipCounters: only L4MUX_VIP_COUNTERS");
static_assert(sizeof(BackendCounters) == kBackendCounterCount * sizeof(Counter),
              "BackendCounters: only L4MUX_BACKEND_COUNTERS");

void WorkerCounters::add(const WorkerCounters& c, uint32_t vip_slots, uint32_t backend_slots) {
#define L4MUX_X(name, str) name.add(c.name.get());
  L4MUX_WORKER_COUNTERS(L4MUX_X)
#undef L4MUX_X
  for (size_t r = 0; r < kDropReasonCount; ++r) drops[r].add(c.drops[r].get());
  for (uint32_t s = 0; s < vip_slots; ++s) {
    const VipCounters* from = c.vip(s);
    VipCounters* to = vip(s);
    if (from == nullptr || to == nullptr) continue;
#define L4MUX_X(name, str) to->name.add(from->name.get());
    L4MUX_VIP_COUNTERS(L4MUX_X)
#undef L4MUX_X
  }
  for (uint32_t s = 0; s < backend_slots; ++s) {
    const BackendCounters* from = c.backend(s);
    BackendCounters* to = backend(s);
    if (from == nullptr || to == nullptr) continue;
#define L4MUX_X(name, str) to->name.add(from->name.get());
    L4MUX_BACKEND_COUNTERS(L4MUX_X)
#undef L4MUX_X
  }
}

}  // namespace l4mux
