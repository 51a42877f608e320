// Client persistence in the fast path (issue 16; seed 004's fast path / slow path split).
//
// PersistTable: the engine's one table of (VIP, client prefix) -> backend with a deadline,
// shared by its workers. Read-mostly: workers read it without locks (a seqlock per bucket:
// a reader copies the bucket's entries and retries if a writer was in it meanwhile); the
// control plane is the only writer (install / refresh / remove / expire, serialized by a
// mutex that no worker ever takes). Its memory is allocated once from the entry budget.
// Backends are kept by their slot (snapshot.h: a slot stands for one address for the life of
// the process), so an entry means the same backend across snapshot swaps; a lookup resolves
// it against the running snapshot's VIP.
//
// PuntQueue: one worker's held first packets. A new flow of a persistent VIP whose client has
// no live entry (or whose entry's backend cannot take new flows) is copied into a hold slot
// preallocated at construction, described in the punt ring for the control plane, and left
// there until the control plane answers through the worker's answer ring (single producer,
// single consumer, both ways); the worker then re-injects it (Pipeline::release_held). Full
// slots or rings never block the worker: the packet is dropped and counted.
//
// PersistenceHub: the table plus one PuntQueue per worker, and the wakeup of the control
// plane (armed by it, fired at most once per arm by a worker that punted).
#pragma once

#include <array>
#include <atomic>
#include <bit>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "counters.h"
#include "types.h"

namespace l4mux {

inline constexpr uint32_t kPersistNoBackend = UINT32_MAX;

// A client as a VIP's granularity sees it: the source address masked to `prefix` bits.
struct ClientKey {
  uint32_t vip = 0;  // VIP slot
  uint8_t prefix = 0;
  Family family = Family::kNone;
  std::array<uint8_t, 16> addr{};

  bool operator==(const ClientKey& o) const {
    return vip == o.vip && prefix == o.prefix && family == o.family && addr == o.addr;
  }
};

// `prefix` is clamped to the family's length (32 / 128).
ClientKey make_client_key(uint32_t vip_slot, const std::array<uint8_t, 16>& src, Family family, uint8_t prefix);
uint64_t hash_client_key(const ClientKey& k);

struct PersistHit {
  uint32_t backend = kPersistNoBackend;
  uint64_t expires_ns = 0;
};

struct PersistEntryView {
  ClientKey key;
  uint32_t backend = kPersistNoBackend;
  uint64_t expires_ns = 0;
};

struct PersistTableStats {
  uint64_t capacity = 0;
  uint64_t bytes = 0;
  uint64_t entries = 0;
  uint64_t installs = 0;
  uint64_t evictions = 0;
  uint64_t expired = 0;
};

enum class InstallOutcome : uint8_t {
  kInstalled,  // new entry (possibly in place of an evicted one)
  kUpdated,    // the client had an entry: backend and deadline replaced
  kOverLimit,  // the VIP has its maxEntries already: nothing changed
};

class PersistTable {
 public:
  static constexpr uint32_t kWays = 4;  // entries per bucket

  // Room for at least `entries` (rounded up to whole buckets); `max_vips` VIP slots.
  PersistTable(uint32_t entries, uint32_t max_vips);
  PersistTable(const PersistTable&) = delete;
  PersistTable& operator=(const PersistTable&) = delete;

  // ---- Readers (any thread, no lock, no allocation) ----
  // The live entry of `key` (deadline after `now_ns`).
  bool lookup(const ClientKey& key, uint64_t hash, uint64_t now_ns, PersistHit* out) const;
  // Touch throttling: true at most once per `period_ns` per entry (over all workers, racy by
  // design: two workers may both get true once). Call after a hit.
  bool claim_touch(const ClientKey& key, uint64_t hash, uint64_t now_ns, uint64_t period_ns) const;

  // ---- Writer (control plane; calls are serialized inside) ----
  // `limit`: the VIP's maxEntries. A full pair of buckets evicts the entry nearest its
  // deadline (expired ones first); its key goes to `evicted`.
  InstallOutcome install(const ClientKey& key, uint32_t backend, uint64_t expires_ns, uint64_t now_ns,
                         uint32_t limit, ClientKey* evicted, bool* did_evict);
  bool refresh(const ClientKey& key, uint64_t expires_ns);
  // Removes the entry if it names `backend` (kPersistNoBackend: whatever it names).
  bool remove(const ClientKey& key, uint32_t backend = kPersistNoBackend);
  // Frees entries past their deadline in the next `buckets` buckets (a cursor goes round).
  uint32_t expire(uint64_t now_ns, uint32_t buckets, const std::function<void(const PersistEntryView&)>& sink);
  // Every used entry (live or not yet freed), in bucket order, until `sink` returns false.
  void for_each(const std::function<bool(const PersistEntryView&)>& sink) const;
  // Entries per VIP slot right now.
  uint32_t vip_entries(uint32_t vip_slot) const;

  PersistTableStats stats() const;
  uint32_t capacity() const { return static_cast<uint32_t>(buckets_ * kWays); }
  uint64_t bytes() const { return buckets_ * sizeof(Bucket); }

 private:
  // An entry is five words under the bucket's seqlock (word 0 == 0: free) plus a touch word
  // outside it (written by workers).
  struct Entry {
    std::atomic<uint64_t> meta{0};  // vip slot << 32 | prefix << 16 | family << 8 | 1
    std::atomic<uint64_t> a0{0};
    std::atomic<uint64_t> a1{0};
    std::atomic<uint64_t> backend{0};
    std::atomic<uint64_t> expires{0};
  };
  struct alignas(64) Bucket {
    std::atomic<uint32_t> seq{0};
    Entry e[kWays];
    mutable std::atomic<uint64_t> next_touch[kWays];
  };
  struct Words {
    uint64_t meta, a0, a1;
  };
  static Words words_of(const ClientKey& k);
  static ClientKey key_of(uint64_t meta, uint64_t a0, uint64_t a1);
  uint64_t first_bucket(uint64_t hash) const;
  uint64_t second_bucket(uint64_t hash) const;
  // Reader: the way of `w` in bucket b (copy validated by the seqlock), or -1.
  int find(const Bucket& b, const Words& w, uint64_t* backend, uint64_t* expires) const;
  // Writer helpers (under mutex_).
  int find_locked(const Bucket& b, const Words& w) const;
  void write_entry(Bucket& b, int way, uint64_t meta, uint64_t a0, uint64_t a1, uint64_t backend, uint64_t expires);
  void clear_entry(Bucket& b, int way);

  const uint64_t buckets_;
  std::unique_ptr<Bucket[]> table_;
  std::vector<uint32_t> per_vip_;  // under mutex_
  mutable std::mutex mutex_;
  uint64_t expire_cursor_ = 0;  // under mutex_
  std::atomic<uint64_t> entries_{0};
  std::atomic<uint64_t> installs_{0};
  std::atomic<uint64_t> evictions_{0};
  std::atomic<uint64_t> expired_{0};
};

// ---- Single-producer single-consumer ring of trivially copyable records ----

template <typename T>
class SpscRing {
 public:
  explicit SpscRing(uint32_t capacity)
      : capacity_(std::bit_ceil(uint64_t{capacity < 2 ? 2u : capacity})), mask_(capacity_ - 1), slots_(new T[capacity_]()) {}
  // Producer. False when full (nothing written).
  bool push(const T& v) {
    const uint64_t head = head_.load(std::memory_order_relaxed);
    if (head - cached_tail_ >= capacity_) {
      cached_tail_ = tail_.load(std::memory_order_acquire);
      if (head - cached_tail_ >= capacity_) return false;
    }
    slots_[head & mask_] = v;
    head_.store(head + 1, std::memory_order_release);
    return true;
  }
  // Consumer. False when empty.
  bool pop(T* out) {
    const uint64_t tail = tail_.load(std::memory_order_relaxed);
    if (tail == cached_head_) {
      cached_head_ = head_.load(std::memory_order_acquire);
      if (tail == cached_head_) return false;
    }
    *out = slots_[tail & mask_];
    tail_.store(tail + 1, std::memory_order_release);
    return true;
  }
  // Either side: records waiting (a snapshot).
  uint64_t size() const { return head_.load(std::memory_order_acquire) - tail_.load(std::memory_order_acquire); }
  uint32_t capacity() const { return static_cast<uint32_t>(capacity_); }

 private:
  const uint64_t capacity_;
  const uint64_t mask_;
  std::unique_ptr<T[]> slots_;
  alignas(64) std::atomic<uint64_t> head_{0};
  uint64_t cached_tail_ = 0;
  alignas(64) std::atomic<uint64_t> tail_{0};
  uint64_t cached_head_ = 0;
};

// ---- A worker's held packets ----

// Per-worker counters, named as the addon reports them (PersistenceCounters in engine.ts).
#define L4MUX_PUNT_COUNTERS(X)            \
  X(hits, "hits")                         \
  X(misses, "misses")                     \
  X(repicks, "repicks")                   \
  X(punted, "punted")                     \
  X(punt_overflow, "puntOverflow")        \
  X(punt_too_large, "puntTooLarge")       \
  X(punt_expired, "puntExpired")          \
  X(released, "released")                 \
  X(release_refused, "releaseRefused")    \
  X(release_unsent, "releaseUnsent")      \
  X(touches, "touches")                   \
  X(touches_dropped, "touchesDropped")

struct PuntCounters {
#define L4MUX_X(name, str) Counter name;
  L4MUX_PUNT_COUNTERS(L4MUX_X)
#undef L4MUX_X
  Counter held;  // gauge: packets in hold slots now
};

struct PuntSettings {
  uint32_t slots = 1024;           // held packets per worker
  uint32_t frame_size = 2048;      // largest frame held (bigger ones: puntTooLarge)
  uint32_t headroom = 256;         // room for the outer headers in front of a held frame
  uint64_t max_hold_ns = 2'000'000'000ull;  // held longer: dropped (puntExpired)
  uint64_t touch_period_ns = 1'000'000'000ull;  // one touch per client per worker per period
};

// What the control plane learns of a held packet.
struct PuntRecord {
  uint32_t slot = 0;
  uint32_t ticket = 0;
  ClientKey client;
  uint32_t proposed = kPersistNoBackend;  // the worker's scheduler's pick
  uint32_t recorded = kPersistNoBackend;  // the entry's backend that could not take the flow
  uint64_t held_ns = 0;                   // the worker's clock when it was held
};

struct TouchRecord {
  ClientKey client;
};

struct AnswerRecord {
  uint32_t slot = 0;
  uint32_t ticket = 0;
  uint32_t backend = kPersistNoBackend;  // none: drop it
};

enum class HoldResult : uint8_t { kHeld, kTooLarge, kFull };

class PuntQueue {
 public:
  explicit PuntQueue(const PuntSettings& settings);
  PuntQueue(const PuntQueue&) = delete;
  PuntQueue& operator=(const PuntQueue&) = delete;

  // ---- Worker ----
  // Copies the frame into a free slot and describes it to the control plane. False (counted:
  // puntTooLarge, or puntOverflow when no slot or no room in the punt ring) when it cannot.
  HoldResult hold(const uint8_t* frame, uint32_t len, uint32_t flags, const PuntRecord& what, uint64_t now_ns);
  void touch(const ClientKey& client);
  // The next answer (false: none waiting).
  bool next_answer(AnswerRecord* out) { return answers_.pop(out); }
  struct Held {
    uint8_t* data;      // the frame
    uint32_t len;
    uint32_t headroom;  // writable bytes in front of it
    uint32_t flags;     // Packet::flags as received
    uint32_t vip;       // VIP slot it was held for
  };
  // The held packet the answer names, or false when the slot no longer holds that ticket
  // (expired meanwhile, or a bad answer): counted releaseRefused by the caller.
  bool claim(const AnswerRecord& a, Held* out);
  // Frees a claimed slot (after its packet was sent or dropped).
  void free(uint32_t slot);
  // Drops the packets held longer than max_hold_ns, up to `max` slots looked at (a cursor goes
  // round); how many were dropped.
  uint32_t expire(uint64_t now_ns, uint32_t max);
  uint32_t held() const { return static_cast<uint32_t>(counters_.held.get()); }
  PuntCounters& counters() { return counters_; }

  // ---- Control plane ----
  bool next_punt(PuntRecord* out) { return punts_.pop(out); }
  bool next_touch(TouchRecord* out) { return touches_.pop(out); }
  // False when the answer ring is full (the answer is lost; the packet will expire).
  bool answer(const AnswerRecord& a) { return answers_.push(a); }
  uint64_t punts_waiting() const { return punts_.size(); }
  uint64_t answers_waiting() const { return answers_.size(); }
  const PuntCounters& counters() const { return counters_; }
  const PuntSettings& settings() const { return settings_; }
  uint32_t slot_count() const { return settings_.slots; }

 private:
  struct Slot {
    uint32_t ticket = 0;  // 0: free
    uint32_t len = 0;
    uint32_t flags = 0;
    uint32_t vip = 0;
    uint64_t held_ns = 0;
  };
  uint8_t* buffer(uint32_t slot) { return area_.get() + size_t{slot} * stride_; }

  const PuntSettings settings_;
  const size_t stride_;
  std::unique_ptr<uint8_t[]> area_;
  std::unique_ptr<Slot[]> slots_;     // worker only
  std::unique_ptr<uint32_t[]> free_;  // stack of free slots; worker only
  uint32_t free_count_ = 0;
  uint32_t next_ticket_ = 1;
  uint32_t expire_cursor_ = 0;
  SpscRing<PuntRecord> punts_;
  SpscRing<TouchRecord> touches_;
  SpscRing<AnswerRecord> answers_;
  PuntCounters counters_;
};

// ---- The engine's persistence state ----

class PersistenceHub {
 public:
  PersistenceHub(uint32_t entries, uint32_t max_vips, uint32_t workers, const PuntSettings& punt);

  PersistTable& table() { return table_; }
  const PersistTable& table() const { return table_; }
  PuntQueue& worker(uint32_t i) { return *queues_[i]; }
  const PuntQueue& worker(uint32_t i) const { return *queues_[i]; }
  uint32_t workers() const { return static_cast<uint32_t>(queues_.size()); }

  // The control plane's wakeup: called (from a worker thread) at most once per arm().
  void set_notify(std::function<void()> notify);
  // Re-arms; how many punts wait (the caller drains again when > 0).
  uint64_t arm();
  // Worker, after a batch that held packets.
  void punted() {
    if (armed_.load(std::memory_order_relaxed) && armed_.exchange(false, std::memory_order_acq_rel) && notify_) notify_();
  }

 private:
  PersistTable table_;
  std::vector<std::unique_ptr<PuntQueue>> queues_;
  std::function<void()> notify_;  // set before the workers start
  std::atomic<bool> armed_{true};
};

}  // namespace l4mux
