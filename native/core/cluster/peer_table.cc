#include "peer_table.h"

#include <bit>
#include <cstring>
#include <new>

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
static_assert(sizeof(std::atomic<uint64_t>) == 8);

PeerTable::PeerTable(uint32_t capacity)
    : bucket_count_(buckets_for(capacity)), seed_(derive_seed(0x7065657274626c65ull, 1)) {
  const size_t n = size_t{bucket_count_} * kPeerTableWays;
  slots_ = static_cast<Slot*>(::operator new[](n * sizeof(Slot), std::align_val_t{64}));
  for (size_t i = 0; i < n; ++i) {
    Slot* s = new (&slots_[i]) Slot;
    for (auto& w : s->key) w.store(0, std::memory_order_relaxed);
    s->value.store(0, std::memory_order_relaxed);
    s->expires_ns.store(0, std::memory_order_relaxed);
    s->seq.store(0, std::memory_order_relaxed);
  }
}

PeerTable::~PeerTable() { ::operator delete[](slots_, std::align_val_t{64}); }

size_t PeerTable::bytes_for(uint32_t capacity) { return size_t{buckets_for(capacity)} * kPeerTableWays * sizeof(Slot); }

PeerTable::Slot* PeerTable::bucket(const FlowKey& key) const {
  const uint64_t h = hash_flow(key, HashFields::kFiveTuple, seed_);
  return &slots_[(h & (bucket_count_ - 1)) * kPeerTableWays];
}

namespace {
void key_words(const FlowKey& key, uint64_t out[5]) { std::memcpy(out, &key, sizeof(FlowKey)); }
}  // namespace

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

void PeerTable::install(const FlowKey& key, uint32_t backend, uint8_t flags, uint64_t expires_ns, uint64_t now_ns) {
  Slot* b = bucket(key);
  uint64_t words[5];
  key_words(key, words);
  // The writer reads its own writes: relaxed loads are enough here.
  Slot* empty = nullptr;
  Slot* expired = nullptr;
  Slot* oldest = &b[0];
  for (uint32_t i = 0; i < kPeerTableWays; ++i) {
    Slot& s = b[i];
    if ((s.value.load(std::memory_order_relaxed) & kOccupied) == 0) {
      if (empty == nullptr) empty = &s;
      continue;
    }
    bool match = true;
    for (int w = 0; w < 5 && match; ++w) match = s.key[w].load(std::memory_order_relaxed) == words[w];
    if (match) {
      write(s, key, backend, flags, expires_ns);
      updated_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    const uint64_t exp = s.expires_ns.load(std::memory_order_relaxed);
    if (exp <= now_ns && expired == nullptr) expired = &s;
    if (exp < oldest->expires_ns.load(std::memory_order_relaxed)) oldest = &s;
  }
  Slot* target = empty != nullptr ? empty : expired != nullptr ? expired : oldest;
  if (target == empty) {
    live_.fetch_add(1, std::memory_order_relaxed);
  } else if (target != expired) {
    evicted_.fetch_add(1, std::memory_order_relaxed);
  }
  write(*target, key, backend, flags, expires_ns);
  installed_.fetch_add(1, std::memory_order_relaxed);
}

bool PeerTable::remove(const FlowKey& key) {
  Slot* b = bucket(key);
  uint64_t words[5];
  key_words(key, words);
  for (uint32_t i = 0; i < kPeerTableWays; ++i) {
    Slot& s = b[i];
    if ((s.value.load(std::memory_order_relaxed) & kOccupied) == 0) continue;
    bool match = true;
    for (int w = 0; w < 5 && match; ++w) match = s.key[w].load(std::memory_order_relaxed) == words[w];
    if (!match) continue;
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
  const Slot* b = bucket(key);
  uint64_t words[5];
  key_words(key, words);
  for (uint32_t i = 0; i < kPeerTableWays; ++i) {
    const Slot& s = b[i];
    for (int attempt = 0; attempt < kReadAttempts; ++attempt) {
      const uint64_t seq = s.seq.load(std::memory_order_acquire);
      if ((seq & 1) != 0) continue;  // being written
      uint64_t k[5];
      for (int w = 0; w < 5; ++w) k[w] = s.key[w].load(std::memory_order_relaxed);
      const uint64_t value = s.value.load(std::memory_order_relaxed);
      const uint64_t expires = s.expires_ns.load(std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (s.seq.load(std::memory_order_relaxed) != seq) continue;  // torn: read again
      if ((value & kOccupied) == 0 || std::memcmp(k, words, sizeof(k)) != 0) break;  // not this slot
      if (expires <= now_ns) return false;
      out->backend = static_cast<uint32_t>(value);
      out->flags = static_cast<uint8_t>(value >> 32);
      return true;
    }
  }
  return false;
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
