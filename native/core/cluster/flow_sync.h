// Connection-table sync in the fast path: what a worker exports (its export ring) and reads
// (the engine's peer-entry table), and the engine-wide hub the control thread drains and
// feeds (pollFlowEvents, installFlows, the drain marks of commit-after-sync).
//
// What is exported, and when (sync-all; see the README's cluster section):
//   - kind 1 for every new connection-table entry (must-sync set when wrr, wlc or random
//     placed it: no other mux would compute it; from-peer set when it came from the peer
//     table), and again when a flow is rescheduled to another backend;
//   - kind 3 (refresh) when a packet touches an entry whose last export is older than a
//     quarter of its state's timeout, so the copies at the owner and backup outlive it;
//   - kind 2 (end) on FIN/RST, when a flow is cut, and when the sweep frees an expired entry;
//   - kind 4 (teach) when a packet redirected by `peer` was forwarded here (at most about
//     once a second per flow), so that the asking mux learns the entry.
// Records leave the worker with owner and backup unset; SyncHub::poll fills them in from
// the current cluster view (no rendezvous hashing on the fast path for exports).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "../conntrack.h"
#include "../defaults.h"
#include "../counters.h"
#include "../snapshot.h"
#include "export_ring.h"
#include "flow_record.h"
#include "peer_table.h"

namespace l4mux::cluster {

// Per-worker sync counters, reported by name (syncStats()).
#define L4MUX_SYNC_COUNTERS(X)                     \
  X(exported, "exported")                          \
  X(peer_hits, "peerHits")                         \
  X(redirected, "redirected")                      \
  X(redirect_unroutable, "redirectUnroutable")     \
  X(redirect_too_big, "redirectTooBig")            \
  X(redirects_received, "redirectsReceived")       \
  X(teach_sent, "teachSent")

struct SyncCounters {
#define L4MUX_X(name, str) Counter name;
  L4MUX_SYNC_COUNTERS(L4MUX_X)
#undef L4MUX_X
};

struct SyncSettings {
  uint32_t peer_flows = defaults::kPeerFlows;    // peer-entry table entries (64 bytes each)
  uint32_t export_ring = defaults::kExportRing;  // records per worker ring (64 bytes each)
};

// One worker's side. Only that worker calls the hooks.
class WorkerSync {
 public:
  WorkerSync(ExportRing& ring, const PeerTable& peers, const ConntrackTimeouts& timeouts);

  // A new entry (decided here, or adopted from the peer table with `flags` from-peer).
  void started(FlowEntry& e, const Snapshot& snap, uint64_t now_ns, uint8_t flags);
  // After conntrack touch(): exports the end on FIN/RST, else a refresh when one is due.
  void touched(FlowEntry& e, FlowState before, const Snapshot& snap, uint64_t now_ns) {
    if (e.state == FlowState::kTcpClosing && before != FlowState::kTcpClosing) {
      ended(e, snap, now_ns);
      return;
    }
    e.sync_flags |= kRecordProven;
    if (static_cast<uint32_t>(now_ns >> 30) - e.synced_ticks >= refresh_ticks(e.state)) refresh(e, snap, now_ns);
  }
  void ended(const FlowEntry& e, const Snapshot& snap, uint64_t now_ns);
  // The packet forwarded by `e` had been redirected here by member `asker`.
  void teach(FlowEntry& e, const Snapshot& snap, uint8_t asker, uint64_t now_ns);

  bool peer_lookup(const FlowKey& key, uint64_t now_ns, PeerHit* hit) const {
    return !peers_.empty() && peers_.lookup(key, now_ns, hit);
  }

  SyncCounters& counters() { return counters_; }
  const SyncCounters& counters() const { return counters_; }
  const ExportRing& ring() const { return ring_; }
  ExportRing& ring() { return ring_; }

 private:
  uint32_t refresh_ticks(FlowState s) const;
  void refresh(FlowEntry& e, const Snapshot& snap, uint64_t now_ns);
  void emit(RecordKind kind, const FlowEntry& e, const Snapshot& snap, uint64_t now_ns, uint8_t peer);

  ExportRing& ring_;
  const PeerTable& peers_;
  // Refresh intervals in 2^30 ns ticks: a quarter of each state's timeout, at least one.
  uint32_t refresh_syn_;
  uint32_t refresh_established_;
  uint32_t refresh_closing_;
  uint32_t refresh_udp_;
  uint32_t refresh_other_;
  SyncCounters counters_;
};

// Why installFlows refused a record (beyond the decoder's RecordError).
#define L4MUX_INSTALL_REFUSALS(X)      \
  X(unknown_vip, "unknown_vip")        \
  X(unknown_backend, "unknown_backend") \
  X(no_lifetime, "no_lifetime")

// This process's slot of a backend address (nullopt: not a backend here).
using BackendResolver = std::function<std::optional<uint32_t>(const IpAddr&)>;

struct InstallResult {
  uint32_t accepted = 0;
  uint32_t refused = 0;
};

struct HubStats {
  uint64_t polled = 0;
  uint64_t self_installed = 0;  // polled records of flows this mux owns or backs
  uint64_t accepted = 0;
  std::vector<std::pair<std::string_view, uint64_t>> refused;  // by reason
  PeerTableStats peers;
  uint32_t peer_capacity = 0;
};

class SyncHub {
 public:
  SyncHub(const SyncSettings& settings, uint32_t workers, const ConntrackTimeouts& timeouts);

  WorkerSync& worker(uint32_t i) { return *workers_[i]; }
  const WorkerSync& worker(uint32_t i) const { return *workers_[i]; }
  uint32_t worker_count() const { return static_cast<uint32_t>(workers_.size()); }
  const PeerTable& peers() const { return peers_; }

  // Control thread. Moves up to `max` records (all workers, round robin) into `out`, with
  // owner and backup filled in from `snap`'s cluster view (left unset without one); records
  // of flows this mux owns or backs also go into its own peer table, so that any of its
  // workers finds them. Returns the number of records.
  size_t poll(const Snapshot& snap, const BackendResolver& backend_slot, uint8_t* out, size_t max, uint64_t now_ns);
  // Records from peers (n*64 bytes) into the peer table: kind 2 removes, the others install.
  // `backend_slot` resolves a backend address to this process's slot (nullopt: unknown).
  InstallResult install(const uint8_t* buf, size_t len, const Snapshot& snap, const BackendResolver& backend_slot,
                        uint64_t now_ns);

  // Transfers on a membership change: the peer table's live entries as kind-1 records (owner
  // and backup under `snap`), from table position `*cursor` on, at most `max`; *cursor is
  // left where to go on, and is 0 again once the whole table has been walked.
  size_t dump(const Snapshot& snap, uint32_t* cursor, uint8_t* out, size_t max, uint64_t now_ns) const;

  // Commit-after-sync: the records published so far, per worker; drained() is true once
  // everything published before `mark` has been polled (or lost to overflow, counted).
  std::vector<uint64_t> mark() const;
  bool drained(const std::vector<uint64_t>& mark) const;

  HubStats stats() const;

 private:
  enum class Refusal : uint8_t {
#define L4MUX_X(name, str) name,
    L4MUX_INSTALL_REFUSALS(L4MUX_X)
#undef L4MUX_X
    kCount
  };
  // Decodes and checks one record; true with the backend slot when it can be applied.
  bool admit(const uint8_t* rec, size_t len, const Snapshot& snap, const BackendResolver& backend_slot,
             FlowRecord* r, uint32_t* backend);
  void apply(const FlowRecord& r, uint32_t backend, uint64_t now_ns);
  void refuse(RecordError e) { ++decode_refused_[static_cast<size_t>(e)]; }
  void refuse(Refusal r) { ++install_refused_[static_cast<size_t>(r)]; }

  PeerTable peers_;
  std::vector<std::unique_ptr<ExportRing>> rings_;
  std::vector<std::unique_ptr<WorkerSync>> workers_;
  uint32_t next_ring_ = 0;
  uint64_t polled_ = 0;
  uint64_t self_installed_ = 0;
  uint64_t accepted_ = 0;
  uint64_t decode_refused_[static_cast<size_t>(RecordError::kCount)] = {};
  uint64_t install_refused_[static_cast<size_t>(Refusal::kCount)] = {};
};

}  // namespace l4mux::cluster
