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
//   - kind 2 (end) on FIN/RST, when a flow is cut, and when an entry expires (the sweep frees
//     it, or a new flow takes its place first: Conntrack's expiry sink sees both);
//   - kind 4 (teach) when a packet redirected by `peer` was forwarded here (at most about
//     once a second per flow), so that the asking mux learns the entry.
// A worker exports the entry as this process names it (ExportedEntry: the backend by slot,
// the deadline in the worker's clock), a plain 64-byte copy with no translation and no read
// of the snapshot; SyncHub::poll makes the FlowRecord on the control thread: the backend's
// address, the lifetime in seconds, owner and backup from the current cluster view (no
// rendezvous hashing and no address encoding on the fast path).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
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

// What a worker writes into its export ring (one slot): the entry copied out as it is.
// Never leaves the process: SyncHub::poll turns it into a FlowRecord, which names the backend
// by address. Backend slots are never reused (SlotRegistry), so any later snapshot, or the
// registry, names the same address for the slot.
struct ExportedEntry {
  FlowKey key;
  uint64_t expires_ns;  // the entry's deadline
  uint64_t at_ns;       // when it was exported (the lifetime is expires_ns - at_ns)
  uint32_t backend;     // slot
  RecordKind kind;
  uint8_t flags;
  uint8_t peer;
  uint8_t pad;
};
static_assert(sizeof(ExportedEntry) == kFlowRecordSize, "one export ring slot");
static_assert(std::is_trivially_copyable_v<ExportedEntry> && sizeof(RecordKind) == 1, "written field by field, read by memcpy");

struct SyncSettings {
  uint32_t peer_flows = defaults::kPeerFlows;    // peer-entry table entries (64 bytes each)
  uint32_t export_ring = defaults::kExportRing;  // records per worker ring (64 bytes each)
};

// One worker's side. Only that worker calls the hooks.
class WorkerSync {
 public:
  WorkerSync(ExportRing& ring, const PeerTable& peers, const ConntrackTimeouts& timeouts);

  // A new entry (decided here, or adopted from the peer table with `flags` from-peer).
  void started(FlowEntry& e, uint64_t now_ns, uint8_t flags) {
    e.sync_flags = flags;
    e.taught_tick = static_cast<uint8_t>((now_ns >> 30) - 1);  // the first redirect teaches at once
    e.synced_ticks = static_cast<uint32_t>(now_ns >> 30);
    emit(RecordKind::kNew, e, now_ns, kNoMember);
  }
  // After conntrack touch(): exports the end on FIN/RST, else a refresh when one is due, and at
  // once when the packet gave the entry a longer timeout than its copies were sent with (a TCP
  // flow established, a mid-flow entry proven): the copies would otherwise expire after the
  // SYN's or the unproven timeout, long before a quarter of the established one has passed.
  void touched(FlowEntry& e, FlowState before, bool was_unproven, uint64_t now_ns) {
    if (e.state == FlowState::kTcpClosing && before != FlowState::kTcpClosing) {
      ended(e, now_ns);
      return;
    }
    e.sync_flags |= kRecordProven;
    const bool longer_timeout = e.state != before || (was_unproven && !is_unproven(e));
    if (longer_timeout || static_cast<uint32_t>(now_ns >> 30) - e.synced_ticks >= refresh_ticks(e.state)) {
      refresh(e, now_ns);
    }
  }
  // The entry's end (FIN/RST, a cut, expiry).
  void ended(const FlowEntry& e, uint64_t now_ns) { emit(RecordKind::kEnd, e, now_ns, kNoMember); }
  // The packet forwarded by `e` had been redirected here by member `asker`.
  void teach(FlowEntry& e, uint8_t asker, uint64_t now_ns);

  bool peer_lookup(const FlowKey& key, uint64_t now_ns, PeerHit* hit) const {
    return !peers_.empty() && peers_.lookup(key, now_ns, hit);
  }

  SyncCounters& counters() { return counters_; }
  const SyncCounters& counters() const { return counters_; }
  const ExportRing& ring() const { return ring_; }
  ExportRing& ring() { return ring_; }

 private:
  uint32_t refresh_ticks(FlowState s) const {
    const auto i = static_cast<size_t>(s);
    return i < kStates ? refresh_[i] : refresh_[static_cast<size_t>(FlowState::kOther)];
  }
  void refresh(FlowEntry& e, uint64_t now_ns);
  // One ring slot, filled with plain stores from the entry (a full ring: lost and counted).
  void emit(RecordKind kind, const FlowEntry& e, uint64_t now_ns, uint8_t peer) {
    uint8_t* slot = ring_.claim();
    if (slot == nullptr) return;
    // Field by field straight into the slot: a copy through a local would be read back wide
    // right after narrow stores, which the CPU cannot forward (a stall per record).
    std::memcpy(slot + offsetof(ExportedEntry, key), &e.key, sizeof(e.key));
    std::memcpy(slot + offsetof(ExportedEntry, expires_ns), &e.expires_ns, sizeof(e.expires_ns));
    std::memcpy(slot + offsetof(ExportedEntry, at_ns), &now_ns, sizeof(now_ns));
    std::memcpy(slot + offsetof(ExportedEntry, backend), &e.backend, sizeof(e.backend));
    slot[offsetof(ExportedEntry, kind)] = static_cast<uint8_t>(kind);
    slot[offsetof(ExportedEntry, flags)] = e.sync_flags;
    slot[offsetof(ExportedEntry, peer)] = peer;
    slot[offsetof(ExportedEntry, pad)] = 0;
    ring_.publish();
    counters_.exported.add();
  }

  ExportRing& ring_;
  const PeerTable& peers_;
  // Refresh intervals in 2^30 ns ticks by FlowState: a quarter of each state's timeout (of
  // other_ns for kOther and kFree), at least one.
  static constexpr size_t kStates = static_cast<size_t>(FlowState::kOther) + 1;
  uint32_t refresh_[kStates];
  SyncCounters counters_;
};

// Why installFlows refused a record (beyond the decoder's RecordError).
#define L4MUX_INSTALL_REFUSALS(X)      \
  X(unknown_vip, "unknown_vip")        \
  X(unknown_backend, "unknown_backend") \
  X(no_lifetime, "no_lifetime")

// This process's slot of a backend address (nullopt: not a backend here).
using BackendResolver = std::function<std::optional<uint32_t>(const IpAddr&)>;
// The address of this process's backend slot (nullopt: no such slot), from the slot
// registry; SyncHub::poll asks it only for slots newer than the snapshot it was given.
using BackendAddress = std::function<std::optional<IpAddr>(uint32_t slot)>;

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

  // Control thread. Moves up to `max` exported entries (all workers, round robin) into `out`
  // as FlowRecords: the backend's address from `snap` (or `backend_address` for a slot newer
  // than `snap`), the remaining lifetime, owner and backup from `snap`'s cluster view (left
  // unset without one); records of flows this mux owns or backs also go into its own peer
  // table, so that any of its workers finds them. Returns the number of records.
  size_t poll(const Snapshot& snap, const BackendAddress& backend_address, uint8_t* out, size_t max, uint64_t now_ns);
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
  void apply(const FlowRecord& r, uint32_t backend, uint64_t hash, uint64_t now_ns);
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
