#include "peer_table.h"

#include <bit>
#include <cstring>
#include <new>
#include <type_traits>

#include "../hash.h"

namespace l4mux::cluster {
namespace {

constexpr uint32_t kMaxBuckets = 1u << 26;
constexpr int kReadAttempts = 4;
constexpr uint64_t kOccupied = uint64_t{1} << 40;

uint32_t buckets_for(uint32_t capacity) {
  uint32_t wanted = (capacity + kPeerTableWays - 1) / kPeerTableWays;
  if (wanted < 1) wanted = 1;
  if (wanted > kMaxBuckets) wanted = kMaxBuckets;
  return std::bit_ceil(wanted);
}

}  // namespace

// One cache line: the key's five words, backend | flags << 32 | occupied, deadline, sequence.
struct alignas(64) PeerTable::Slot {
  std::atomic<uint64_t> key[5];
  std::atomic<uint64_t> value;
  std::atomic<uint64_t> expires_ns;
  std::atomic<uint64_t> seq;
};

// A tag line (tag 0: free; coarse deadlines in 2^30 ns units, floor) and eight slots.
struct alignas(64) PeerTable::Bucket {
  std::atomic<uint32_t> tags[kPeerTableWays];
  std::atomic<uint32_t> deadlines[kPeerTableWays];
  Slot slots[kPeerTableWays];
};

namespace {

void key_words(const FlowKey& key, uint64_t out[5]) { std::memcpy(out, &key, sizeof(FlowKey)); }

uint32_t tag_of(uint64_t hash) {
  const auto t = static_cast<uint32_t>(hash >> 32);
  return t == 0 ? 1 : t;
}

uint32_t coarse(uint64_t ns) {
  const uint64_t c = ns >> 30;
  return c > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(c);
}

bool same_key(const std::atomic<uint64_t>* key, const uint64_t words[5]) {
  for (int w = 0; w < 5; ++w) {
    if (key[w].load(std::memory_order_relaxed) != words[w]) return false;
  }
  return true;
}

}  // namespace

PeerTable::PeerTable(uint32_t capacity)
    : bucket_count_(buckets_for(capacity)),
      seed_(derive_seed(0x7065657274626c65ull, 1)),
      mapping_(size_t{bucket_count_} * sizeof(Bucket)) {
  static_assert(sizeof(Bucket) == 64 * (1 + kPeerTableWays), "a tag line and eight entry lines");
  static_assert(std::is_trivially_destructible_v<Bucket>, "unmapping is all the cleanup there is");
  // The mapping is zero-filled (tag 0: free); constructing every bucket also faults its pages
  // in now rather than on the first installs.
  buckets_ = static_cast<Bucket*>(mapping_.data());
  for (uint32_t b = 0; b < bucket_count_; ++b) {
    Bucket* bucket = new (&buckets_[b]) Bucket;
    for (uint32_t i = 0; i < kPeerTableWays; ++i) {
      bucket->tags[i].store(0, std::memory_order_relaxed);
      bucket->deadlines[i].store(0, std::memory_order_relaxed);
      Slot& s = bucket->slots[i];
      for (auto& w : s.key) w.store(0, std::memory_order_relaxed);
      s.value.store(0, std::memory_order_relaxed);
      s.expires_ns.store(0, std::memory_order_relaxed);
      s.seq.store(0, std::memory_order_relaxed);
    }
  }
}

PeerTable::~PeerTable() = default;

size_t PeerTable::bytes_for(uint32_t capacity) { return size_t{buckets_for(capacity)} * sizeof(Bucket); }

uint64_t PeerTable::hash(const FlowKey& key) const { return hash_flow(key, HashFields::kFiveTuple, seed_); }

PeerTable::Bucket& PeerTable::bucket(uint64_t h) const { return buckets_[h & (bucket_count_ - 1)]; }

void PeerTable::prefetch_bucket(uint64_t h) const {
  const Bucket& b = bucket(h);
  __builtin_prefetch(b.tags, 1);
  // Slots fill first-free: a bucket's only entry is in slot 0.
  __builtin_prefetch(&b.slots[0], 1);
}

void PeerTable::prefetch_slot(uint64_t h) const {
  const Bucket& b = bucket(h);
  const uint32_t tag = tag_of(h);
  int empty = -1;
  for (uint32_t i = 0; i < kPeerTableWays; ++i) {
    const uint32_t t = b.tags[i].load(std::memory_order_relaxed);
    if (t == tag) {
      __builtin_prefetch(&b.slots[i], 1);
      return;
    }
    if (t == 0 && empty < 0) empty = static_cast<int>(i);
  }
  if (empty > 0) __builtin_prefetch(&b.slots[empty], 1);
}

void PeerTable::write(Slot& s, const FlowKey& key, uint32_t backend, uint8_t flags, uint64_t expires_ns) {
  uint64_t words[5];
  key_words(key, words);
  const uint64_t seq = s.seq.load(std::memory_order_relaxed);
  s.seq.store(seq + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  for (int i = 0; i < 5; ++i) s.key[i].store(words[i], std::memory_order_relaxed);
  s.value.store(backend | (uint64_t{flags} << 32) | kOccupied, std::memory_order_relaxed);
  s.expires_ns.store(expires_ns, std::memory_order_relaxed);
  s.seq.store(seq + 2, std::memory_order_release);
}

void PeerTable::install(const FlowKey& key, uint64_t h, uint32_t backend, uint8_t flags, uint64_t expires_ns,
                        uint64_t now_ns) {
  Bucket& b = bucket(h);
  const uint32_t tag = tag_of(h);
  uint64_t words[5];
  key_words(key, words);
  // The writer reads its own writes: relaxed loads are enough here.
  int empty = -1;
  int oldest = 0;
  for (uint32_t i = 0; i < kPeerTableWays; ++i) {
    const uint32_t t = b.tags[i].load(std::memory_order_relaxed);
    if (t == 0) {
      if (empty < 0) empty = static_cast<int>(i);
      continue;
    }
    if (t == tag && same_key(b.slots[i].key, words)) {
      write(b.slots[i], key, backend, flags, expires_ns);
      b.deadlines[i].store(coarse(expires_ns), std::memory_order_relaxed);
      updated_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (b.deadlines[i].load(std::memory_order_relaxed) < b.deadlines[oldest].load(std::memory_order_relaxed)) {
      oldest = static_cast<int>(i);
    }
  }
  int target = empty;
  if (target < 0) {
    // Full: the entry closest to expiry goes; an eviction only if it is still live.
    target = oldest;
    if (b.slots[target].expires_ns.load(std::memory_order_relaxed) > now_ns) {
      evicted_.fetch_add(1, std::memory_order_relaxed);
    }
    b.tags[target].store(0, std::memory_order_release);  // readers skip it while it changes
  } else {
    live_.fetch_add(1, std::memory_order_relaxed);
  }
  write(b.slots[target], key, backend, flags, expires_ns);
  b.deadlines[target].store(coarse(expires_ns), std::memory_order_relaxed);
  b.tags[target].store(tag, std::memory_order_release);
  installed_.fetch_add(1, std::memory_order_relaxed);
}

bool PeerTable::remove(const FlowKey& key, uint64_t h) {
  Bucket& b = bucket(h);
  const uint32_t tag = tag_of(h);
  uint64_t words[5];
  key_words(key, words);
  for (uint32_t i = 0; i < kPeerTableWays; ++i) {
    if (b.tags[i].load(std::memory_order_relaxed) != tag || !same_key(b.slots[i].key, words)) continue;
    b.tags[i].store(0, std::memory_order_release);
    b.deadlines[i].store(0, std::memory_order_relaxed);
    Slot& s = b.slots[i];
    const uint64_t seq = s.seq.load(std::memory_order_relaxed);
    s.seq.store(seq + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    s.value.store(0, std::memory_order_relaxed);
    s.expires_ns.store(0, std::memory_order_relaxed);
    s.seq.store(seq + 2, std::memory_order_release);
    live_.fetch_sub(1, std::memory_order_relaxed);
    removed_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  return false;
}

bool PeerTable::lookup(const FlowKey& key, uint64_t now_ns, PeerHit* out) const {
  const uint64_t h = hash(key);
  const Bucket& b = bucket(h);
  const uint32_t tag = tag_of(h);
  uint64_t words[5];
  key_words(key, words);
  for (uint32_t i = 0; i < kPeerTableWays; ++i) {
    if (b.tags[i].load(std::memory_order_acquire) != tag) continue;
    const Slot& s = b.slots[i];
    for (int attempt = 0; attempt < kReadAttempts; ++attempt) {
      const uint64_t seq = s.seq.load(std::memory_order_acquire);
      if ((seq & 1) != 0) continue;  // being written
      uint64_t k[5];
      for (int w = 0; w < 5; ++w) k[w] = s.key[w].load(std::memory_order_relaxed);
      const uint64_t value = s.value.load(std::memory_order_relaxed);
      const uint64_t expires = s.expires_ns.load(std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (s.seq.load(std::memory_order_relaxed) != seq) continue;  // torn: read again
      if ((value & kOccupied) == 0 || std::memcmp(k, words, sizeof(k)) != 0) break;  // another key
      if (expires <= now_ns) return false;
      out->backend = static_cast<uint32_t>(value);
      out->flags = static_cast<uint8_t>(value >> 32);
      return true;
    }
  }
  return false;
}

bool PeerTable::entry_at(uint32_t index, uint64_t now_ns, FlowKey* key, PeerHit* hit, uint64_t* expires_ns) const {
  if (index >= capacity()) return false;
  const Bucket& b = buckets_[index / kPeerTableWays];
  const uint32_t i = index % kPeerTableWays;
  if (b.tags[i].load(std::memory_order_relaxed) == 0) return false;
  const Slot& s = b.slots[i];
  const uint64_t expires = s.expires_ns.load(std::memory_order_relaxed);
  if (expires <= now_ns) return false;
  uint64_t words[5];
  for (int w = 0; w < 5; ++w) words[w] = s.key[w].load(std::memory_order_relaxed);
  std::memcpy(key, words, sizeof(FlowKey));
  const uint64_t value = s.value.load(std::memory_order_relaxed);
  hit->backend = static_cast<uint32_t>(value);
  hit->flags = static_cast<uint8_t>(value >> 32);
  *expires_ns = expires;
  return true;
}

PeerTableStats PeerTable::stats() const {
  PeerTableStats s;
  s.installed = installed_.load(std::memory_order_relaxed);
  s.updated = updated_.load(std::memory_order_relaxed);
  s.removed = removed_.load(std::memory_order_relaxed);
  s.evicted = evicted_.load(std::memory_order_relaxed);
  s.live = live_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace l4mux::cluster
