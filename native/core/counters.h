// Per-worker counters. Each worker is the only writer of its own counters (plain relaxed
// stores, no lock prefix on the hot path); any thread may read them at any time and sum
// the workers' values, so counters are readable without stopping anybody.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>

#include "types.h"

namespace l4mux {

class Counter {
 public:
  void add(uint64_t n = 1) { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  // For gauges: each sub() undoes an earlier add() of the same worker.
  void sub(uint64_t n = 1) { v_.store(v_.load(std::memory_order_relaxed) - n, std::memory_order_relaxed); }
  uint64_t get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

// Each counter set is one list, X(member, "jsName"), like the drop reasons (types.h): the
// members, the sums, the addon's objects (addon/counters_js.cc) and its counterNames() all come
// from it, so that a counter added to a list reaches the JS types' check and the metrics
// (test/metrics checks that every listed name is scraped).

// A worker's scalar counters (frames in, out, to the kernel, dropped, and what the mux sent on
// its own).
#define L4MUX_WORKER_COUNTERS(X)                      \
  X(rx, "rx")                                         \
  X(tx, "tx")                                         \
  X(passed, "passed")                                 \
  X(dropped, "dropped")                               \
  X(echo_replies, "echoReplies")                      \
  X(icmp_errors_forwarded, "icmpErrorsForwarded")     \
  X(checksums_finalized, "checksumsFinalized")        \
  X(icmp_too_big_sent, "icmpTooBigSent")              \
  X(tcp_resets_sent, "tcpResetsSent")

// Per VIP. no_backend: packets dropped because no backend could take them. flows_untracked:
// new flows forwarded by the Maglev table without a connection-table entry (the VIP was past
// its new-flow rate: flood mode).
#define L4MUX_VIP_COUNTERS(X)           \
  X(packets, "packets")                 \
  X(bytes, "bytes")                     \
  X(new_flows, "newFlows")              \
  X(no_backend, "noBackend")            \
  X(flows_untracked, "flowsUntracked")

// Per backend. active_flows is a gauge: flows in the worker's connection table open toward
// this backend (TCP before its FIN or RST, UDP and others until idle): IPVS's ActiveConn, and
// what wlc balances. flows_cut: flows ended because the backend went offline.
#define L4MUX_BACKEND_COUNTERS(X)     \
  X(packets, "packets")               \
  X(bytes, "bytes")                   \
  X(active_flows, "activeFlows")      \
  X(flows_cut, "flowsCut")

#define L4MUX_COUNT(name, str) +1
inline constexpr size_t kWorkerCounterCount = 0 L4MUX_WORKER_COUNTERS(L4MUX_COUNT);
inline constexpr size_t kVipCounterCount = 0 L4MUX_VIP_COUNTERS(L4MUX_COUNT);
inline constexpr size_t kBackendCounterCount = 0 L4MUX_BACKEND_COUNTERS(L4MUX_COUNT);
#undef L4MUX_COUNT

struct VipCounters {
#define L4MUX_X(name, str) Counter name;
  L4MUX_VIP_COUNTERS(L4MUX_X)
#undef L4MUX_X
};

struct BackendCounters {
#define L4MUX_X(name, str) Counter name;
  L4MUX_BACKEND_COUNTERS(L4MUX_X)
#undef L4MUX_X
};

class WorkerCounters {
 public:
  WorkerCounters(uint32_t max_vips, uint32_t max_backends);

#define L4MUX_X(name, str) Counter name;
  L4MUX_WORKER_COUNTERS(L4MUX_X)
#undef L4MUX_X
  std::array<Counter, kDropReasonCount> drops;

  void drop(DropReason r) {
    dropped.add();
    drops[static_cast<size_t>(r)].add();
  }
  // Slots beyond the arrays cannot happen (registries share the capacities); the check
  // keeps a bad slot from ever writing out of bounds.
  VipCounters* vip(uint32_t slot) { return slot < max_vips_ ? &vips_[slot] : nullptr; }
  BackendCounters* backend(uint32_t slot) { return slot < max_backends_ ? &backends_[slot] : nullptr; }
  const VipCounters* vip(uint32_t slot) const { return slot < max_vips_ ? &vips_[slot] : nullptr; }
  const BackendCounters* backend(uint32_t slot) const {
    return slot < max_backends_ ? &backends_[slot] : nullptr;
  }
  // Adds another worker's counters (the first vip_slots / backend_slots slots) to these.
  void add(const WorkerCounters& other, uint32_t vip_slots, uint32_t backend_slots);

  uint32_t max_vips() const { return max_vips_; }
  uint32_t max_backends() const { return max_backends_; }

 private:
  uint32_t max_vips_;
  uint32_t max_backends_;
  std::unique_ptr<VipCounters[]> vips_;
  std::unique_ptr<BackendCounters[]> backends_;
};

}  // namespace l4mux
