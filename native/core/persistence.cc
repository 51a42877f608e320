#include "persistence.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "bytes.h"
#include "hash.h"

namespace l4mux {
namespace {

constexpr uint64_t kKeySeed = 0x6c346d7578706572ull;  // fixed: the table is per process

// Bucket of a hash: the high half of hash * n (no division, any n).
uint64_t reduce(uint64_t hash, uint64_t n) {
  return static_cast<uint64_t>((static_cast<unsigned __int128>(hash) * n) >> 64);
}

}  // namespace

ClientKey make_client_key(uint32_t vip_slot, const std::array<uint8_t, 16>& src, Family family, uint8_t prefix) {
  ClientKey k;
  k.vip = vip_slot;
  k.family = family;
  const uint32_t bits = family == Family::kIpv4 ? 32 : 128;
  const uint32_t p = std::min<uint32_t>(prefix, bits);
  k.prefix = static_cast<uint8_t>(p);
  const uint32_t whole = p / 8;
  std::memcpy(k.addr.data(), src.data(), whole);
  if (p % 8 != 0) k.addr[whole] = static_cast<uint8_t>(src[whole] & (0xffu << (8 - p % 8)));
  return k;
}

uint64_t hash_client_key(const ClientKey& k) {
  return hash_detail::hash_words(load_le64(k.addr.data()), load_le64(k.addr.data() + 8), 0, 0,
                                 uint64_t{k.vip} << 16 | uint64_t{k.prefix} << 8 | static_cast<uint8_t>(k.family),
                                 kKeySeed);
}

// ---- PersistTable ----

PersistTable::PersistTable(uint32_t entries, uint32_t max_vips)
    : buckets_(std::max<uint64_t>(2, (uint64_t{entries} + kWays - 1) / kWays)),
      table_(new Bucket[buckets_]),
      per_vip_(max_vips, 0) {
  if (entries == 0) throw std::invalid_argument("persistence: the table needs at least one entry");
  for (uint64_t b = 0; b < buckets_; ++b) {
    for (auto& t : table_[b].next_touch) t.store(0, std::memory_order_relaxed);
  }
}

PersistTable::Words PersistTable::words_of(const ClientKey& k) {
  return Words{uint64_t{k.vip} << 32 | uint64_t{k.prefix} << 16 | uint64_t{static_cast<uint8_t>(k.family)} << 8 | 1u,
               load_le64(k.addr.data()), load_le64(k.addr.data() + 8)};
}

ClientKey PersistTable::key_of(uint64_t meta, uint64_t a0, uint64_t a1) {
  ClientKey k;
  k.vip = static_cast<uint32_t>(meta >> 32);
  k.prefix = static_cast<uint8_t>(meta >> 16);
  k.family = static_cast<Family>(static_cast<uint8_t>(meta >> 8));
  for (int i = 0; i < 8; ++i) {
    k.addr[i] = static_cast<uint8_t>(a0 >> (8 * i));
    k.addr[8 + i] = static_cast<uint8_t>(a1 >> (8 * i));
  }
  return k;
}

uint64_t PersistTable::first_bucket(uint64_t hash) const { return reduce(hash, buckets_); }
uint64_t PersistTable::second_bucket(uint64_t hash) const {
  const uint64_t b = reduce(std::rotl(hash, 29) * 0x9e3779b97f4a7c15ull, buckets_);
  return b != first_bucket(hash) ? b : (b + 1) % buckets_;
}

int PersistTable::find(const Bucket& b, const Words& w, uint64_t* backend, uint64_t* expires) const {
  for (;;) {
    const uint32_t s1 = b.seq.load(std::memory_order_acquire);
    if ((s1 & 1u) != 0) continue;  // a writer is in it: a few stores, then it is done
    int found = -1;
    uint64_t be = 0;
    uint64_t ex = 0;
    for (uint32_t i = 0; i < kWays; ++i) {
      const Entry& e = b.e[i];
      if (e.meta.load(std::memory_order_relaxed) == w.meta && e.a0.load(std::memory_order_relaxed) == w.a0 &&
          e.a1.load(std::memory_order_relaxed) == w.a1) {
        found = static_cast<int>(i);
        be = e.backend.load(std::memory_order_relaxed);
        ex = e.expires.load(std::memory_order_relaxed);
        break;
      }
    }
    std::atomic_thread_fence(std::memory_order_acquire);
    if (b.seq.load(std::memory_order_relaxed) != s1) continue;  // a writer was in: again
    *backend = be;
    *expires = ex;
    return found;
  }
}

bool PersistTable::lookup(const ClientKey& key, uint64_t hash, uint64_t now_ns, PersistHit* out) const {
  const Words w = words_of(key);
  uint64_t backend = 0;
  uint64_t expires = 0;
  if (find(table_[first_bucket(hash)], w, &backend, &expires) < 0 &&
      find(table_[second_bucket(hash)], w, &backend, &expires) < 0) {
    return false;
  }
  if (expires <= now_ns) return false;
  out->backend = static_cast<uint32_t>(backend);
  out->expires_ns = expires;
  return true;
}

bool PersistTable::claim_touch(const ClientKey& key, uint64_t hash, uint64_t now_ns, uint64_t period_ns) const {
  const Words w = words_of(key);
  uint64_t backend = 0;
  uint64_t expires = 0;
  const Bucket* b = &table_[first_bucket(hash)];
  int way = find(*b, w, &backend, &expires);
  if (way < 0) {
    b = &table_[second_bucket(hash)];
    way = find(*b, w, &backend, &expires);
  }
  if (way < 0) return false;
  std::atomic<uint64_t>& next = b->next_touch[way];
  if (next.load(std::memory_order_relaxed) > now_ns) return false;
  next.store(now_ns + period_ns, std::memory_order_relaxed);
  return true;
}

int PersistTable::find_locked(const Bucket& b, const Words& w) const {
  for (uint32_t i = 0; i < kWays; ++i) {
    const Entry& e = b.e[i];
    if (e.meta.load(std::memory_order_relaxed) == w.meta && e.a0.load(std::memory_order_relaxed) == w.a0 &&
        e.a1.load(std::memory_order_relaxed) == w.a1) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

void PersistTable::write_entry(Bucket& b, int way, uint64_t meta, uint64_t a0, uint64_t a1, uint64_t backend,
                               uint64_t expires) {
  const uint32_t s = b.seq.load(std::memory_order_relaxed);
  b.seq.store(s + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  Entry& e = b.e[way];
  e.meta.store(meta, std::memory_order_relaxed);
  e.a0.store(a0, std::memory_order_relaxed);
  e.a1.store(a1, std::memory_order_relaxed);
  e.backend.store(backend, std::memory_order_relaxed);
  e.expires.store(expires, std::memory_order_relaxed);
  b.seq.store(s + 2, std::memory_order_release);
}

void PersistTable::clear_entry(Bucket& b, int way) {
  const uint64_t meta = b.e[way].meta.load(std::memory_order_relaxed);
  if (meta != 0) {
    const uint32_t vip = static_cast<uint32_t>(meta >> 32);
    if (vip < per_vip_.size() && per_vip_[vip] > 0) --per_vip_[vip];
    entries_.fetch_sub(1, std::memory_order_relaxed);
  }
  write_entry(b, way, 0, 0, 0, 0, 0);
  b.next_touch[way].store(0, std::memory_order_relaxed);
}

InstallOutcome PersistTable::install(const ClientKey& key, uint32_t backend, uint64_t expires_ns, uint64_t now_ns,
                                     uint32_t limit, ClientKey* evicted, bool* did_evict) {
  std::lock_guard lock(mutex_);
  *did_evict = false;
  const uint64_t hash = hash_client_key(key);
  const Words w = words_of(key);
  Bucket* const pair[2] = {&table_[first_bucket(hash)], &table_[second_bucket(hash)]};
  for (Bucket* b : pair) {
    if (const int way = find_locked(*b, w); way >= 0) {
      write_entry(*b, way, w.meta, w.a0, w.a1, backend, expires_ns);
      installs_.fetch_add(1, std::memory_order_relaxed);
      return InstallOutcome::kUpdated;
    }
  }
  if (key.vip < per_vip_.size() && per_vip_[key.vip] >= limit) {
    // An expired entry of the same VIP in the pair makes room without going over.
    bool room = false;
    for (Bucket* b : pair) {
      for (uint32_t i = 0; i < kWays && !room; ++i) {
        const uint64_t meta = b->e[i].meta.load(std::memory_order_relaxed);
        if (meta != 0 && static_cast<uint32_t>(meta >> 32) == key.vip &&
            b->e[i].expires.load(std::memory_order_relaxed) <= now_ns) {
          clear_entry(*b, static_cast<int>(i));
          expired_.fetch_add(1, std::memory_order_relaxed);
          room = true;
        }
      }
    }
    if (!room) return InstallOutcome::kOverLimit;
  }
  // A free way of the emptier bucket (two choices keep buckets even), else the entry nearest
  // its deadline in either.
  Bucket* target = nullptr;
  int way = -1;
  uint32_t most_free = 0;
  for (Bucket* b : pair) {
    uint32_t free_ways = 0;
    int first_free = -1;
    for (uint32_t i = 0; i < kWays; ++i) {
      if (b->e[i].meta.load(std::memory_order_relaxed) == 0) {
        if (first_free < 0) first_free = static_cast<int>(i);
        ++free_ways;
      }
    }
    if (free_ways > most_free) {
      most_free = free_ways;
      target = b;
      way = first_free;
    }
  }
  if (target == nullptr) {
    uint64_t soonest = UINT64_MAX;
    for (Bucket* b : pair) {
      for (uint32_t i = 0; i < kWays; ++i) {
        const uint64_t ex = b->e[i].expires.load(std::memory_order_relaxed);
        if (ex < soonest) {
          soonest = ex;
          target = b;
          way = static_cast<int>(i);
        }
      }
    }
  }
  const uint64_t old_meta = target->e[way].meta.load(std::memory_order_relaxed);
  if (old_meta != 0) {
    if (target->e[way].expires.load(std::memory_order_relaxed) <= now_ns) {
      expired_.fetch_add(1, std::memory_order_relaxed);
    } else {
      evictions_.fetch_add(1, std::memory_order_relaxed);
      *evicted = key_of(old_meta, target->e[way].a0.load(std::memory_order_relaxed),
                        target->e[way].a1.load(std::memory_order_relaxed));
      *did_evict = true;
    }
    clear_entry(*target, way);
  }
  write_entry(*target, way, w.meta, w.a0, w.a1, backend, expires_ns);
  target->next_touch[way].store(0, std::memory_order_relaxed);
  if (key.vip < per_vip_.size()) ++per_vip_[key.vip];
  entries_.fetch_add(1, std::memory_order_relaxed);
  installs_.fetch_add(1, std::memory_order_relaxed);
  return InstallOutcome::kInstalled;
}

bool PersistTable::refresh(const ClientKey& key, uint64_t expires_ns) {
  std::lock_guard lock(mutex_);
  const uint64_t hash = hash_client_key(key);
  const Words w = words_of(key);
  for (Bucket* b : {&table_[first_bucket(hash)], &table_[second_bucket(hash)]}) {
    if (const int way = find_locked(*b, w); way >= 0) {
      const Entry& e = b->e[way];
      write_entry(*b, way, w.meta, w.a0, w.a1, e.backend.load(std::memory_order_relaxed), expires_ns);
      return true;
    }
  }
  return false;
}

bool PersistTable::remove(const ClientKey& key, uint32_t backend) {
  std::lock_guard lock(mutex_);
  const uint64_t hash = hash_client_key(key);
  const Words w = words_of(key);
  for (Bucket* b : {&table_[first_bucket(hash)], &table_[second_bucket(hash)]}) {
    if (const int way = find_locked(*b, w); way >= 0) {
      if (backend != kPersistNoBackend && b->e[way].backend.load(std::memory_order_relaxed) != backend) return false;
      clear_entry(*b, way);
      return true;
    }
  }
  return false;
}

uint32_t PersistTable::expire(uint64_t now_ns, uint32_t buckets,
                              const std::function<void(const PersistEntryView&)>& sink) {
  std::lock_guard lock(mutex_);
  uint32_t freed = 0;
  const uint64_t n = std::min<uint64_t>(buckets, buckets_);
  for (uint64_t k = 0; k < n; ++k) {
    Bucket& b = table_[expire_cursor_];
    expire_cursor_ = expire_cursor_ + 1 == buckets_ ? 0 : expire_cursor_ + 1;
    for (uint32_t i = 0; i < kWays; ++i) {
      const Entry& e = b.e[i];
      const uint64_t meta = e.meta.load(std::memory_order_relaxed);
      if (meta == 0 || e.expires.load(std::memory_order_relaxed) > now_ns) continue;
      PersistEntryView v{key_of(meta, e.a0.load(std::memory_order_relaxed), e.a1.load(std::memory_order_relaxed)),
                         static_cast<uint32_t>(e.backend.load(std::memory_order_relaxed)),
                         e.expires.load(std::memory_order_relaxed)};
      clear_entry(b, static_cast<int>(i));
      expired_.fetch_add(1, std::memory_order_relaxed);
      ++freed;
      if (sink) sink(v);
    }
  }
  return freed;
}

void PersistTable::for_each(const std::function<bool(const PersistEntryView&)>& sink) const {
  std::lock_guard lock(mutex_);
  for (uint64_t k = 0; k < buckets_; ++k) {
    const Bucket& b = table_[k];
    for (uint32_t i = 0; i < kWays; ++i) {
      const Entry& e = b.e[i];
      const uint64_t meta = e.meta.load(std::memory_order_relaxed);
      if (meta == 0) continue;
      const PersistEntryView v{key_of(meta, e.a0.load(std::memory_order_relaxed), e.a1.load(std::memory_order_relaxed)),
                               static_cast<uint32_t>(e.backend.load(std::memory_order_relaxed)),
                               e.expires.load(std::memory_order_relaxed)};
      if (!sink(v)) return;
    }
  }
}

uint32_t PersistTable::vip_entries(uint32_t vip_slot) const {
  std::lock_guard lock(mutex_);
  return vip_slot < per_vip_.size() ? per_vip_[vip_slot] : 0;
}

PersistTableStats PersistTable::stats() const {
  PersistTableStats s;
  s.capacity = capacity();
  s.bytes = bytes();
  s.entries = entries_.load(std::memory_order_relaxed);
  s.installs = installs_.load(std::memory_order_relaxed);
  s.evictions = evictions_.load(std::memory_order_relaxed);
  s.expired = expired_.load(std::memory_order_relaxed);
  return s;
}

// ---- PuntQueue ----

PuntQueue::PuntQueue(const PuntSettings& settings)
    : settings_(settings),
      stride_((size_t{settings.headroom} + settings.frame_size + 63) & ~size_t{63}),
      area_(new uint8_t[stride_ * settings.slots]()),
      slots_(new Slot[settings.slots]()),
      free_(new uint32_t[settings.slots]),
      punts_(settings.slots),
      touches_(std::max<uint32_t>(1024, settings.slots)),
      answers_(settings.slots * 2) {
  if (settings.slots == 0) throw std::invalid_argument("persistence: at least one punt slot per worker");
  for (uint32_t i = 0; i < settings.slots; ++i) free_[i] = settings.slots - 1 - i;
  free_count_ = settings.slots;
}

HoldResult PuntQueue::hold(const uint8_t* frame, uint32_t len, uint32_t flags, const PuntRecord& what, uint64_t now_ns) {
  if (len > settings_.frame_size) {
    counters_.punt_too_large.add();
    return HoldResult::kTooLarge;
  }
  if (free_count_ == 0) {
    counters_.punt_overflow.add();
    return HoldResult::kFull;
  }
  const uint32_t slot = free_[free_count_ - 1];
  const uint32_t ticket = next_ticket_++;
  if (next_ticket_ == 0) next_ticket_ = 1;  // 0 means free
  PuntRecord r = what;
  r.slot = slot;
  r.ticket = ticket;
  r.held_ns = now_ns;
  if (!punts_.push(r)) {
    counters_.punt_overflow.add();
    return HoldResult::kFull;
  }
  --free_count_;
  std::memcpy(buffer(slot) + settings_.headroom, frame, len);
  slots_[slot] = Slot{ticket, len, flags, what.client.vip, now_ns};
  counters_.punted.add();
  counters_.held.add();
  return HoldResult::kHeld;
}

void PuntQueue::touch(const ClientKey& client) {
  if (touches_.push(TouchRecord{client})) {
    counters_.touches.add();
  } else {
    counters_.touches_dropped.add();
  }
}

bool PuntQueue::claim(const AnswerRecord& a, Held* out) {
  if (a.slot >= settings_.slots || a.ticket == 0 || slots_[a.slot].ticket != a.ticket) return false;
  const Slot& s = slots_[a.slot];
  *out = Held{buffer(a.slot) + settings_.headroom, s.len, settings_.headroom, s.flags, s.vip};
  return true;
}

void PuntQueue::free(uint32_t slot) {
  if (slot >= settings_.slots || slots_[slot].ticket == 0) return;
  slots_[slot].ticket = 0;
  free_[free_count_++] = slot;
  counters_.held.sub();
}

uint32_t PuntQueue::expire(uint64_t now_ns, uint32_t max) {
  if (free_count_ == settings_.slots) return 0;
  uint32_t dropped = 0;
  const uint32_t n = std::min(max, settings_.slots);
  for (uint32_t k = 0; k < n; ++k) {
    const uint32_t i = expire_cursor_;
    expire_cursor_ = expire_cursor_ + 1 == settings_.slots ? 0 : expire_cursor_ + 1;
    const Slot& s = slots_[i];
    if (s.ticket != 0 && now_ns - std::min(now_ns, s.held_ns) > settings_.max_hold_ns) {
      free(i);
      counters_.punt_expired.add();
      ++dropped;
    }
  }
  return dropped;
}

// ---- PersistenceHub ----

PersistenceHub::PersistenceHub(uint32_t entries, uint32_t max_vips, uint32_t workers, const PuntSettings& punt)
    : table_(entries, max_vips) {
  queues_.reserve(workers);
  for (uint32_t i = 0; i < workers; ++i) queues_.push_back(std::make_unique<PuntQueue>(punt));
}

void PersistenceHub::set_notify(std::function<void()> notify) { notify_ = std::move(notify); }

uint64_t PersistenceHub::arm() {
  armed_.store(true, std::memory_order_seq_cst);
  uint64_t waiting = 0;
  for (const auto& q : queues_) waiting += q->punts_waiting();
  return waiting;
}

}  // namespace l4mux
