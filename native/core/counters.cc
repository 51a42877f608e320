#include "counters.h"

namespace l4mux {

WorkerCounters::WorkerCounters(uint32_t max_vips, uint32_t max_backends)
    : max_vips_(max_vips),
      max_backends_(max_backends),
      vips_(std::make_unique<VipCounters[]>(max_vips)),
      backends_(std::make_unique<BackendCounters[]>(max_backends)) {}

// A tripwire for whoever adds a counter: add it to the sum below (and to
// addon/counters_js.cc), then update the counts here.
constexpr size_t kScalarCounters = 9;  // rx ... tcp_resets_sent
static_assert(sizeof(WorkerCounters) - sizeof(WorkerCounters::drops) ==
                  kScalarCounters * sizeof(Counter) + 2 * sizeof(uint32_t) + 2 * sizeof(void*),
              "WorkerCounters changed: update add()");
static_assert(sizeof(VipCounters) == 5 * sizeof(Counter), "VipCounters changed: update add()");
static_assert(sizeof(BackendCounters) == 4 * sizeof(Counter), "BackendCounters changed: update add()");

void WorkerCounters::add(const WorkerCounters& c, uint32_t vip_slots, uint32_t backend_slots) {
  rx.add(c.rx.get());
  tx.add(c.tx.get());
  passed.add(c.passed.get());
  dropped.add(c.dropped.get());
  echo_replies.add(c.echo_replies.get());
  icmp_errors_forwarded.add(c.icmp_errors_forwarded.get());
  checksums_finalized.add(c.checksums_finalized.get());
  icmp_too_big_sent.add(c.icmp_too_big_sent.get());
  tcp_resets_sent.add(c.tcp_resets_sent.get());
  for (size_t r = 0; r < kDropReasonCount; ++r) drops[r].add(c.drops[r].get());
  for (uint32_t s = 0; s < vip_slots; ++s) {
    const VipCounters* from = c.vip(s);
    VipCounters* to = vip(s);
    if (from == nullptr || to == nullptr) continue;
    to->packets.add(from->packets.get());
    to->bytes.add(from->bytes.get());
    to->new_flows.add(from->new_flows.get());
    to->no_backend.add(from->no_backend.get());
    to->flows_untracked.add(from->flows_untracked.get());
  }
  for (uint32_t s = 0; s < backend_slots; ++s) {
    const BackendCounters* from = c.backend(s);
    BackendCounters* to = backend(s);
    if (from == nullptr || to == nullptr) continue;
    to->packets.add(from->packets.get());
    to->bytes.add(from->bytes.get());
    to->active_flows.add(from->active_flows.get());
    to->flows_cut.add(from->flows_cut.get());
  }
}

}  // namespace l4mux
