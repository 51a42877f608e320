// The live data plane: N workers, each with its own PacketIo, reading immutable snapshots of
// the configuration. The control thread calls set_config (built and published by a
// ConfigPublisher), counters, start and stop; nothing of that runs per packet.
//
// PacketIo objects come from a factory (one per worker, called in worker order on the thread
// that calls start(), so sockets belong to that thread's network namespace): AF_PACKET by
// default, AF_XDP or a test double by passing another factory. They live from start() to
// stop(); their statistics are carried over so that every counter only ever grows.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "cluster/flow_sync.h"
#include "defaults.h"
#include "conntrack.h"
#include "counters.h"
#include "config_publisher.h"
#include "introspection.h"
#include "snapshot.h"
#include "io/af_packet.h"
#include "io/io_select.h"
#include "io/packet_io.h"
#include "worker.h"

namespace l4mux {

using PacketIoFactory = std::function<std::unique_ptr<PacketIo>(uint32_t worker)>;

struct EngineOptions {
  std::string interface;  // used by the default (AF_PACKET) factory
  uint32_t workers = 1;
  // Worker i runs on cpus[i % cpus.size()]; empty: no pinning.
  std::vector<int> cpus;
  // capacity is the engine's flow budget, split evenly between the workers (each worker has
  // its own table; flows are spread over workers by hash).
  ConntrackConfig conntrack;
  IoKind io = IoKind::kAfPacket;  // how the default factory moves packets (see io_select.h)
  XdpModeRequest xdp_mode = XdpModeRequest::kAuto;
  AfPacketOptions af_packet;  // ring sizes, fanout group id
  uint32_t max_vips = defaults::kMaxVips;
  uint32_t max_backends = defaults::kMaxBackends;
  // Cluster sync state (export rings, peer-entry table), allocated at construction; absent:
  // none, and the engine behaves as a lone mux whatever the configuration says.
  std::optional<cluster::SyncSettings> sync;
  // Client persistence: entries of the shared table (0: none) and each worker's hold slots.
  uint32_t persistence_entries = 0;
  PuntSettings punt;
};

struct WorkerStatus {
#define L4MUX_X(name, str) uint64_t name = 0;
  L4MUX_WORKER_COUNTERS(L4MUX_X)  // the worker's own counters (rx: frames the pipeline saw)
#undef L4MUX_X
  std::array<uint64_t, kDropReasonCount> drops{};  // by DropReason
  IoStats io;
  IoRingLevels rings;  // of the running PacketIo (zeros while stopped)
  ConntrackStats conntrack;
  uint64_t conntrack_capacity = 0;
  std::string io_description;  // empty while stopped
};

struct EngineCounters {
  std::unique_ptr<WorkerCounters> total;  // sum over workers
  ConntrackStats conntrack;               // sum over workers
  uint64_t conntrack_capacity = 0;        // sum over workers
  IoStats io;                             // sum over workers
  IoRingLevels rings;                     // sum over workers
  std::vector<WorkerStatus> workers;
  // What the slots of `total` stand for.
  std::vector<VipKey> vip_keys;
  std::unordered_map<uint32_t, std::string> vip_names;
  std::vector<IpAddr> backend_keys;
};

// A snapshot built for one engine and not yet published (Engine::prepare_config).
struct PreparedConfig {
  std::unique_ptr<const Snapshot> snapshot;
  std::vector<VipKey> vips;      // the keys the I/O steers to the workers
  std::vector<VipKey> redirect;  // packets peers redirect to this mux
};

class Engine {
 public:
  // Throws std::invalid_argument on bad options.
  Engine(const EngineOptions& options, PacketIoFactory factory);
  // Packet I/O on options.interface chosen by options.io (AF_XDP, AF_PACKET, or auto).
  // Throws std::runtime_error when an explicitly requested mode cannot work.
  explicit Engine(const EngineOptions& options);
  ~Engine();  // stops
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Builds the snapshot (Maglev tables included) on the calling thread and publishes it.
  // Throws std::invalid_argument, nothing applied, when the spec cannot be honoured.
  void set_config(const ConfigSpec& spec) { publish_config(prepare_config(spec)); }
  // The two halves of set_config. prepare_config builds without publishing, on any thread and
  // alongside other builds (the heavy part: Maglev tables); it throws std::invalid_argument,
  // nothing applied. publish_config swaps the snapshot in (control thread; cheap).
  PreparedConfig prepare_config(const ConfigSpec& spec) const;
  void publish_config(PreparedConfig prepared);
  // Opens every worker's PacketIo and starts the threads. Throws (std::system_error,
  // std::runtime_error, ...) with nothing left running when any of that fails. No-op when
  // running.
  void start();
  void stop();  // joins the workers, closes their PacketIo; idempotent
  bool running() const;

  uint32_t worker_count() const { return static_cast<uint32_t>(workers_.size()); }
  EngineCounters counters() const;
  // The I/O mode in use and why (empty mode for an engine built with its own factory).
  IoChoice io_choice() const;

  // Cluster sync (all false/empty without EngineOptions::sync). See cluster/flow_sync.h.
  bool sync_enabled() const { return sync_ != nullptr; }
  size_t poll_flow_events(uint8_t* out, size_t max_records);
  cluster::InstallResult install_flows(const uint8_t* records, size_t len);
  // The peer table's entries as records, for transfers (see SyncHub::dump).
  size_t dump_peer_flows(uint32_t* cursor, uint8_t* out, size_t max_records) const;
  std::vector<uint64_t> sync_mark() const;
  bool sync_drained(const std::vector<uint64_t>& mark) const;
  // Owner and backup under the current configuration (none without a cluster).
  cluster::Owners owners(const FlowKey& key) const;
  struct SyncWorkerStatus {
    std::vector<std::pair<std::string_view, uint64_t>> counters;
    uint64_t export_overflow = 0;
  };
  struct SyncStatus {
    cluster::HubStats hub;
    std::vector<SyncWorkerStatus> workers;
  };
  SyncStatus sync_status() const;
  // Client persistence (nullptr without EngineOptions::persistence_entries). The hub's
  // control side is the caller's; after answers are queued, wake_worker() ends the worker's
  // wait for packets so that it re-injects them at once.
  PersistenceHub* persistence() { return persist_.get(); }
  void wake_worker(uint32_t worker);
  // The workers' clock (CLOCK_MONOTONIC), for persistence deadlines.
  static uint64_t clock_ns();
  // The configurations' publisher (slots and names), for the control thread.
  ConfigPublisher& publisher() { return publisher_; }
  // Introspection (engine_introspection.cc); workers keep running throughout.
  // Which backend `key` (client to VIP) gets now, and what each worker's table holds of it.
  FlowLookup lookup_flow(const FlowKey& key, int timeout_ms = 1000);
  // Throws std::invalid_argument (a capture running, an unknown VIP or backend, bad bounds).
  void start_capture(const CaptureRequest& request);
  // Hands the records waiting in the workers' rings to `sink`; 0 when no capture runs. After
  // stop_capture() the next drain hands out what is left and frees the rings.
  uint32_t drain_capture(const std::function<void(const CaptureRecordHeader&, const uint8_t*)>& sink);
  bool capture_complete() const;
  // Detaches the session from every worker (none touches it afterwards). Zeros when none ran.
  CaptureStats stop_capture();

 private:
  Engine(const EngineOptions& options, std::unique_ptr<IoPlan> plan);
  void close_ios_locked();
  std::optional<int> cpu_for(uint32_t worker) const;

  EngineOptions options_;
  std::unique_ptr<IoPlan> io_plan_;  // when the engine chose its I/O itself
  PacketIoFactory factory_;
  mutable std::mutex mutex_;  // control side: I/O objects, running state, sync calls
  mutable ConfigPublisher publisher_;  // slots, names and the snapshots the workers read
  std::unique_ptr<cluster::SyncHub> sync_;  // before workers_: they point into it
  std::unique_ptr<PersistenceHub> persist_;  // likewise
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::unique_ptr<PacketIo>> ios_;  // one per worker while running
  std::vector<IoStats> io_carry_;               // statistics of closed PacketIo objects
  bool running_ = false;
  std::mutex lookup_mutex_;  // one flow lookup at a time (each worker has one question slot)
  std::unique_ptr<CaptureSession> capture_;  // under mutex_
  bool capture_stopped_ = false;
};

}  // namespace l4mux
