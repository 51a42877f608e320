// The peer-entry table: connection entries other muxes sent this one (and its own entries of
// flows it owns or backs), for the flows whose packets may arrive here later: after an ECMP
// change, a mux failure, or a redirect's teach. One table per engine, shared by its workers,
// because the worker a flow's packets reach is the kernel's choice (fanout, RSS).
//
// One writer (the control thread: installFlows, pollFlowEvents), any number of readers (the
// workers, on a connection-table miss only). Each entry is a seqlock over eight atomic words:
// the writer makes the sequence odd, writes, makes it even; a reader retries a torn read a
// few times and otherwise treats it as a miss (the packet is then decided or redirected as if
// the entry had not arrived yet). Each bucket's first cache line holds its eight tags (high
// hash bits) and coarse deadlines, as in the connection table: a lookup or install reads that
// line and only the entry lines whose tag matches. Memory is allocated once (capacity from the
// configuration; huge pages where the host gives them, see huge_mapping.h); a full bucket
// gives up the entry closest to expiry (counted).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "../huge_mapping.h"
#include "../types.h"

namespace l4mux::cluster {

inline constexpr uint32_t kPeerTableWays = 8;

struct PeerHit {
  uint32_t backend = 0;  // backend slot
  uint8_t flags = 0;     // kRecord* flags as received
};

struct PeerTableStats {
  uint64_t installed = 0;  // new keys
  uint64_t updated = 0;    // keys already present
  uint64_t removed = 0;
  uint64_t evicted = 0;    // a live entry pushed out by a new one
  uint64_t live = 0;       // occupied slots (expired ones count until reused)
};

class PeerTable {
 public:
  explicit PeerTable(uint32_t capacity);
  ~PeerTable();
  PeerTable(const PeerTable&) = delete;
  PeerTable& operator=(const PeerTable&) = delete;

  // Writer side (one thread).
  void install(const FlowKey& key, uint32_t backend, uint8_t flags, uint64_t expires_ns, uint64_t now_ns) {
    install(key, hash(key), backend, flags, expires_ns, now_ns);
  }
  bool remove(const FlowKey& key) { return remove(key, hash(key)); }
  // The same with the key's hash(): a batch of installs hashes every key first, prefetches
  // every bucket's tag line, then (tags in cache) the slot each key will be written to, and
  // only then writes, so that the cache misses of a large table overlap.
  uint64_t hash(const FlowKey& key) const;
  void prefetch_bucket(uint64_t hash) const;
  void prefetch_slot(uint64_t hash) const;
  void install(const FlowKey& key, uint64_t hash, uint32_t backend, uint8_t flags, uint64_t expires_ns,
               uint64_t now_ns);
  bool remove(const FlowKey& key, uint64_t hash);
  PeerTableStats stats() const;
  // Writer side: the live entry at `index` (0 <= index < capacity()), for walking the table
  // (transfers on a membership change).
  bool entry_at(uint32_t index, uint64_t now_ns, FlowKey* key, PeerHit* hit, uint64_t* expires_ns) const;

  // Reader side (any thread): the live entry for `key`.
  bool lookup(const FlowKey& key, uint64_t now_ns, PeerHit* out) const;
  // False while the table has never held an entry: lets the fast path skip the lookup.
  bool empty() const { return live_.load(std::memory_order_relaxed) == 0; }

  uint32_t capacity() const { return bucket_count_ * kPeerTableWays; }
  static size_t bytes_for(uint32_t capacity);

 private:
  struct Slot;
  struct Bucket;
  Bucket& bucket(uint64_t hash) const;
  static void write(Slot& s, const FlowKey& key, uint32_t backend, uint8_t flags, uint64_t expires_ns);

  uint32_t bucket_count_;
  uint64_t seed_;
  HugeMapping mapping_;
  Bucket* buckets_;
  std::atomic<uint64_t> live_{0};
  std::atomic<uint64_t> installed_{0};
  std::atomic<uint64_t> updated_{0};
  std::atomic<uint64_t> removed_{0};
  std::atomic<uint64_t> evicted_{0};
};

}  // namespace l4mux::cluster
