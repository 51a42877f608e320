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

struct VipCounters {
  Counter packets;
  Counter bytes;
  Counter new_flows;
  Counter no_backend;  // packets dropped because no backend could take them
  // New flows forwarded by the Maglev table without a connection-table entry: the VIP was
  // past its new-flow rate (flood mode).
  Counter flows_untracked;
};

struct BackendCounters {
  Counter packets;
  Counter bytes;
  // Gauge: flows in the worker's connection table open toward this backend (TCP before its
  // FIN or RST, UDP and others until idle): IPVS's ActiveConn, and what wlc balances.
  Counter active_flows;
  Counter flows_cut;  // flows ended because the backend went offline
};

class WorkerCounters {
 public:
  WorkerCounters(uint32_t max_vips, uint32_t max_backends);

  Counter rx;
  Counter tx;
  Counter passed;
  Counter dropped;
  Counter echo_replies;
  Counter icmp_errors_forwarded;
  Counter checksums_finalized;
  Counter icmp_too_big_sent;
  Counter tcp_resets_sent;
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
