// Per-worker connection table: which backend each flow was given.
//
// One table per worker thread (flows are steered to workers by hash, so there is no sharing
// and no lock). The key is the full 5-tuple, compared byte for byte; the flow hash only picks
// the bucket. Memory is allocated once, at construction: a power-of-two number of buckets of
// kConntrackWays entries each. Timeouts follow what the mux can see of TCP (only the
// client-to-server half, because replies bypass it): SYN seen, established, closing (FIN or
// RST), plus UDP and other protocols. Inserting into a full bucket reuses an expired entry
// first, otherwise evicts an unproven entry (below) before any proven one, the one closest to
// expiry among them (counted): eviction work is bounded by the bucket size.
//
// Unproven entries. A TCP flow whose first packet here is not a SYN (picked up mid-flow:
// after a restart, a rehash, or forged by a flood of spoofed ACKs) gets an unproven entry:
// the short tcp_unproven timeout, first to go when a bucket is full, and not counted in
// its backend's active_flows. Its next packet (the flow repeats, as a real connection does
// and a blind spoofer's one-off packet does not) proves it: from then on it is an ordinary
// established entry. So a spoofed non-SYN flood can no longer push real flows out.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "counters.h"
#include "defaults.h"
#include "huge_mapping.h"
#include "types.h"

namespace l4mux {

inline constexpr uint32_t kConntrackWays = 8;

enum class FlowState : uint8_t {
  kFree = 0,
  kTcpSynSeen = 1,
  kTcpEstablished = 2,
  kTcpClosing = 3,  // FIN or RST seen
  kUdp = 4,
  kOther = 5,  // ICMP and other protocols
};

struct ConntrackTimeouts {
  static constexpr uint64_t kNsPerSecond = 1000000000;
  uint64_t tcp_syn_ns = defaults::kTcpSynSeconds * kNsPerSecond;
  uint64_t tcp_established_ns = defaults::kTcpEstablishedSeconds * kNsPerSecond;
  uint64_t tcp_closing_ns = defaults::kTcpClosingSeconds * kNsPerSecond;
  uint64_t udp_ns = defaults::kUdpSeconds * kNsPerSecond;
  uint64_t other_ns = defaults::kOtherSeconds * kNsPerSecond;
  uint64_t tcp_unproven_ns = defaults::kTcpUnprovenSeconds * kNsPerSecond;  // entries created mid-flow, until they repeat
};

struct ConntrackConfig {
  uint32_t capacity = defaults::kConntrackCapacity;  // entries; rounded up to a whole power-of-two bucket count
  ConntrackTimeouts timeouts;
};

struct FlowEntry {
  FlowKey key;
  uint64_t expires_ns = 0;
  uint32_t backend = 0;  // backend slot
  FlowState state = FlowState::kFree;
  // Cluster sync (cluster/flow_sync.h), set by the pipeline when it inserts: the record
  // flags, the 2^30 ns tick of the last teach (low bits) and of the last export.
  uint8_t sync_flags = 0;
  uint8_t taught_tick = 0;
  uint8_t flags = 0;  // kFlowUnproven
  // The VIP slot the flow was scheduled under: a hit finds its VIP without the VIP index.
  uint32_t vip = 0;
  uint32_t synced_ticks = 0;
};
static_assert(sizeof(FlowEntry) == 64, "one cache line per entry");

inline constexpr uint8_t kFlowUnproven = 1u << 0;

inline bool is_unproven(const FlowEntry& e) { return (e.flags & kFlowUnproven) != 0; }

// One list, X(member, "jsName"), as the counter sets in counters.h. evictions: a live entry was
// pushed out by a new flow; expired_reused: an expired entry's place was taken;
// unproven_inserts: entries created mid-flow; unproven_evicted: evictions that took an
// unproven entry; proven: unproven entries whose flow repeated; live_entries (a gauge):
// occupied slots (inserted, not erased). Expired entries count until their slot is reused, so
// this bounds the live flows from above; exact for a table nothing has expired in.
#define L4MUX_CONNTRACK_STATS(X)             \
  X(inserts, "inserts")                      \
  X(evictions, "evictions")                  \
  X(expired_reused, "expiredReused")         \
  X(unproven_inserts, "unprovenInserts")     \
  X(unproven_evicted, "unprovenEvicted")     \
  X(proven, "proven")                        \
  X(live_entries, "liveEntries")

struct ConntrackStats {
#define L4MUX_X(name, str) uint64_t name = 0;
  L4MUX_CONNTRACK_STATS(L4MUX_X)
#undef L4MUX_X

  ConntrackStats& operator+=(const ConntrackStats& o) {
#define L4MUX_X(name, str) name += o.name;
    L4MUX_CONNTRACK_STATS(L4MUX_X)
#undef L4MUX_X
    return *this;
  }
};

class Conntrack {
 public:
  // With `counters`, each backend's active_flows gauge follows the open flows the table holds
  // toward it (see is_open).
  explicit Conntrack(const ConntrackConfig& config, WorkerCounters* counters = nullptr);
  ~Conntrack();
  Conntrack(const Conntrack&) = delete;
  Conntrack& operator=(const Conntrack&) = delete;

  // Lookups of a batch go in three steps so that the table's cache misses overlap rather
  // than follow each other: prefetch_bucket() for every flow (the bucket's tag line), then
  // prefetch_entry() for every flow (reads the tags, prefetches the entries they point to),
  // then lookup().
  void prefetch_bucket(uint64_t hash) const;
  void prefetch_entry(uint64_t hash) const;

  // The live entry for `key`, or nullptr. `hash` is hash_flow(key, kFiveTuple, seed).
  FlowEntry* lookup(const FlowKey& key, uint64_t hash, uint64_t now_ns);

  // Creates the entry for a new flow (key must not be present live) and returns it.
  // Never allocates. State comes from the protocol and the TCP flags of the first packet.
  // `vip` is the VIP slot the flow was scheduled under (FlowEntry::vip).
  FlowEntry* insert(const FlowKey& key, uint64_t hash, uint32_t backend, uint8_t tcp_flags,
                    uint64_t now_ns, uint32_t vip = 0);

  // Advances the entry's state with a packet's TCP flags and refreshes its deadline. True when
  // it wrote the entry (a new state, or a deadline that had fallen behind: at most about once a
  // second per flow, and at its FIN or RST); false for the packets in between.
  bool touch(FlowEntry& entry, uint8_t tcp_flags, uint64_t now_ns);

  // Removes an entry (e.g. its backend is gone and the flow is rescheduled).
  void erase(FlowEntry& entry);

  // Frees the expired entries of the next `buckets` buckets (round robin over the table), so
  // that flows which end without FIN or RST stop counting as open. Bounded work: call it once
  // per batch with a small number.
  void sweep(uint64_t now_ns, uint32_t buckets);

  // Sees every entry that leaves the table by expiry, once, just before its slot is freed or
  // taken: by the sweep, or by an insert that reuses the place of an expired entry (of the
  // same key or another) before the sweep came by. Not for erase() (the caller's decision)
  // nor for evictions (a live flow pushed out: its next packet is a miss, not its end).
  using ExpiredFn = void (*)(void* ctx, const FlowEntry& entry, uint64_t now_ns);
  void set_expiry_sink(ExpiredFn fn, void* ctx) {
    on_expired_ = fn;
    expired_ctx_ = ctx;
  }

  uint32_t capacity() const { return bucket_count_ * kConntrackWays; }
  // The memory a table made with `config` occupies (tags, deadlines and entries).
  static size_t table_bytes(const ConntrackConfig& config);
  const ConntrackStats& stats() const { return stats_; }
  const ConntrackTimeouts& timeouts() const { return timeouts_; }

 private:
  struct Bucket;
  uint64_t timeout_for(FlowState state) const;
  Bucket& bucket_of(const FlowEntry& entry, uint32_t* slot) const;
  void count_open(const FlowEntry& e, int delta) const;  // the caller checks counts_as_active

  ConntrackTimeouts timeouts_;
  uint32_t bucket_count_ = 0;
  uint32_t bucket_mask_ = 0;
  HugeMapping mapping_;
  Bucket* buckets_ = nullptr;  // inside mapping_, made in the constructor
  ConntrackStats stats_;
  WorkerCounters* counters_ = nullptr;
  uint32_t sweep_cursor_ = 0;
  ExpiredFn on_expired_ = nullptr;
  void* expired_ctx_ = nullptr;
};

// A flow counts as open (an active connection) until its TCP FIN or RST, or until it expires.
inline bool is_open(FlowState s) { return s != FlowState::kFree && s != FlowState::kTcpClosing; }
// What active_flows counts: open flows that are not unproven.
inline bool counts_as_active(const FlowEntry& e) { return is_open(e.state) && !is_unproven(e); }

// The state a flow is in after a packet with `tcp_flags` (for TCP) when it was in `state`.
FlowState next_flow_state(FlowState state, uint8_t proto, uint8_t tcp_flags);

}  // namespace l4mux
