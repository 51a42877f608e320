// One fast-path worker: a native thread that owns a Pipeline (and so its connection table)
// and its counters, and drives one PacketIo:
//   loop { n = io.receive(batch, 100 ms); snap = holder.enter(id); pipeline.process(batch[0..n));
//          holder.leave(id); io.complete(batch, n); } until stopped.
// The snapshot is held only around the processing of one batch, never while waiting.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <optional>
#include <thread>

#include "capture.h"
#include "conntrack.h"
#include "counters.h"
#include "flow_query.h"
#include "pipeline.h"
#include "snapshot.h"
#include "snapshot_holder.h"
#include "io/packet_io.h"

namespace l4mux {

class Worker {
 public:
  static constexpr int kPollTimeoutMs = 100;

  // `id` is the worker's reader id in `holder` (0 <= id < the holder's reader count).
  Worker(uint32_t id, const ConntrackConfig& conntrack, SnapshotHolder<Snapshot>& holder,
         uint32_t max_vips, uint32_t max_backends, PipelineOptions options = {});
  ~Worker();  // stops
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Starts the thread (named "l4mux-w<id>", pinned to `cpu` when given) on `io`, which must
  // outlive the run. Throws std::system_error when the thread cannot be created or pinned
  // (nothing keeps running then), std::logic_error when already running.
  void start(PacketIo& io, std::optional<int> cpu = std::nullopt, int poll_timeout_ms = kPollTimeoutMs);
  // Asks the thread to finish its batch and exit, and joins it (within one poll timeout).
  // Idempotent.
  void stop();
  bool running() const { return thread_.joinable(); }

  uint32_t id() const { return id_; }
  // Readable from any thread while the worker runs.
  const WorkerCounters& counters() const { return counters_; }
  ConntrackStats conntrack_stats() const;  // as of the worker's last batch
  uint32_t conntrack_capacity() const { return conntrack_capacity_; }
  uint64_t batches() const { return batches_.load(std::memory_order_relaxed); }

  // Introspection, served by the worker between batches (never stopping it): questions about
  // its connection table, and live capture. The control thread attaches a capture session and
  // detaches it again; detach returns once the worker no longer uses it.
  FlowQuerySlot& flow_query() { return flow_query_; }
  // Only while the thread is not running: the table asked directly.
  FlowQueryResult query_flow_now(const FlowKey& key, uint64_t hash);
  // Ends the wait for packets early (persistence answers to re-inject); any thread.
  void wake();
  void attach_capture(CaptureSession* session) { capture_.store(session, std::memory_order_seq_cst); }
  void detach_capture();

 private:
  void run(PacketIo& io, int poll_timeout_ms);
  void publish_conntrack_stats();
  // Re-injects the held packets the control plane answered; drops those held too long.
  void serve_held(PacketIo& io);

  const uint32_t id_;
  SnapshotHolder<Snapshot>& holder_;
  WorkerCounters counters_;
  Pipeline pipeline_;
  const uint32_t conntrack_capacity_;
  std::array<Packet, kMaxBatch> batch_{};
  std::array<Packet, kMaxBatch> release_{};
  std::array<uint32_t, kMaxBatch> release_slots_{};
  int wake_fd_ = -1;  // eventfd, with persistence only

  // The pipeline's connection-table statistics, copied out once per batch so that other
  // threads can read them without racing with the worker.
#define L4MUX_X(name, str) std::atomic<uint64_t> ct_##name##_{0};
  L4MUX_CONNTRACK_STATS(L4MUX_X)
#undef L4MUX_X
  std::atomic<uint64_t> batches_{0};

  FlowQuerySlot flow_query_;
  std::atomic<CaptureSession*> capture_{nullptr};
  std::atomic<bool> capture_busy_{false};

  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace l4mux
