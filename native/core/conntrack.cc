#include "conntrack.h"

#include <new>
#include <type_traits>

#include <algorithm>
#include <bit>
#include <cassert>
#include <cstddef>
#include <limits>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace l4mux {
namespace {

// A tag of 0 marks an empty slot, so a flow whose tag bits are 0 is given tag 1.
constexpr uint32_t kEmptyTag = 0;

// The bucket index takes the low bits of the hash; the tag takes the high 32 bits, which the
// index never uses (at most 2^28 buckets), so equal tags in one bucket are a 1 in 2^32 chance.
inline uint32_t tag_of(uint64_t hash) {
  const auto tag = static_cast<uint32_t>(hash >> 32);
  return tag == kEmptyTag ? 1 : tag;
}

// The largest step by which a live flow's deadline is refreshed (see touch).
constexpr uint64_t kRefreshStepNs = uint64_t{1} << 30;

// Caps the table at 2^31 entries so that capacity() fits in a uint32_t.
constexpr uint32_t kMaxBuckets = 1u << 28;

uint32_t bucket_count_for(uint32_t capacity) {
  const uint32_t wanted = capacity / kConntrackWays + (capacity % kConntrackWays != 0 ? 1 : 0);
  if (wanted > kMaxBuckets) return kMaxBuckets;
  return std::bit_ceil(wanted < 1 ? 1u : wanted);
}

// Deadlines saturate rather than wrap, so a huge timeout never yields an already-past deadline.
inline uint64_t deadline(uint64_t now_ns, uint64_t timeout_ns) {
  const uint64_t d = now_ns + timeout_ns;
  return d < now_ns ? std::numeric_limits<uint64_t>::max() : d;
}

}  // namespace

// Deadlines in coarse units (2^30 ns, about a second), floor: enough to order entries by
// expiry and to tell surely-expired ones, without touching their cache lines. The top bit
// marks a proven entry, so that the smallest value of a bucket is an unproven entry whenever
// there is one (eviction order) while the rest still orders by expiry.
constexpr uint32_t kProvenBit = 1u << 31;
constexpr uint32_t kCoarseMask = kProvenBit - 1;
inline uint32_t coarse(uint64_t ns) {
  const uint64_t c = ns >> 30;
  return c > kCoarseMask ? kCoarseMask : static_cast<uint32_t>(c);
}
inline uint32_t eviction_key(const FlowEntry& e) {
  return coarse(e.expires_ns) | (is_unproven(e) ? 0 : kProvenBit);
}

// Tags and coarse deadlines share the line ahead of the entries, so a lookup reads one line
// to find candidates and then only the line of the entry whose tag matched, and choosing an
// eviction victim (or sweeping) reads that one line too, not all eight entries.
struct alignas(64) Conntrack::Bucket {
  uint32_t tags[kConntrackWays] = {};
  uint32_t deadlines[kConntrackWays] = {};        // eviction_key(entries[i])
  alignas(64) FlowEntry entries[kConntrackWays];  // each on its own line, after the tag line

  // Bit i set when tags[i] == tag.
  uint32_t match(uint32_t tag) const {
#if defined(__SSE2__)
    const __m128i want = _mm_set1_epi32(static_cast<int>(tag));
    const __m128i lo = _mm_load_si128(reinterpret_cast<const __m128i*>(tags));
    const __m128i hi = _mm_load_si128(reinterpret_cast<const __m128i*>(tags + 4));
    const int lo_bits = _mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(lo, want)));
    const int hi_bits = _mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(hi, want)));
    return static_cast<uint32_t>(lo_bits | (hi_bits << 4));
#else
    uint32_t bits = 0;
    for (uint32_t i = 0; i < kConntrackWays; ++i) bits |= uint32_t{tags[i] == tag} << i;
    return bits;
#endif
  }
};

Conntrack::Conntrack(const ConntrackConfig& config, WorkerCounters* counters)
    : timeouts_(config.timeouts),
      bucket_count_(bucket_count_for(config.capacity)),
      bucket_mask_(bucket_count_ - 1),
      mapping_(table_bytes(config)),
      counters_(counters) {
  static_assert(kConntrackWays == 8, "Bucket::match compares exactly 8 tags");
  static_assert(offsetof(Bucket, entries) == 64, "the tags have the first cache line");
  static_assert(sizeof(Bucket) == 64 * (1 + kConntrackWays), "no padding between buckets");
  // Value-initialised: every tag 0, every entry kFree. Writing it all here also faults the
  // pages in now rather than on the fast path.
  buckets_ = new (mapping_.data()) Bucket[bucket_count_]();
}

size_t Conntrack::table_bytes(const ConntrackConfig& config) {
  return sizeof(Bucket) * bucket_count_for(config.capacity);
}

Conntrack::~Conntrack() {
  // Buckets are trivially destructible: unmapping (mapping_) is all the cleanup there is.
  static_assert(std::is_trivially_destructible_v<FlowEntry>);
}

void Conntrack::prefetch_bucket(uint64_t hash) const {
  const Bucket& b = buckets_[hash & bucket_mask_];
  __builtin_prefetch(b.tags);
  // Slots fill first-free, so slot 0 is where a bucket's flow is when it holds only one.
  __builtin_prefetch(&b.entries[0]);
}

void Conntrack::prefetch_entry(uint64_t hash) const {
  const Bucket& b = buckets_[hash & bucket_mask_];
  for (uint32_t m = b.match(tag_of(hash)) & ~1u; m != 0; m &= m - 1) {
    __builtin_prefetch(&b.entries[std::countr_zero(m)]);
  }
}

FlowEntry* Conntrack::lookup(const FlowKey& key, uint64_t hash, uint64_t now_ns) {
  Bucket& b = buckets_[hash & bucket_mask_];
  for (uint32_t m = b.match(tag_of(hash)); m != 0; m &= m - 1) {
    FlowEntry& e = b.entries[std::countr_zero(m)];
    if (e.key == key) {
      // A key is never held twice in a bucket (insert reuses its slot), so an expired match
      // means the flow is absent.
      return e.expires_ns > now_ns ? &e : nullptr;
    }
  }
  return nullptr;
}

FlowEntry* Conntrack::insert(const FlowKey& key, uint64_t hash, uint32_t backend,
                             uint8_t tcp_flags, uint64_t now_ns, uint32_t vip) {
  Bucket& b = buckets_[hash & bucket_mask_];
  const uint32_t tag = tag_of(hash);

  uint32_t slot = kConntrackWays;
  // The same key first, expired or (against the contract) live: it is replaced in place so
  // that a key never occupies two slots.
  for (uint32_t m = b.match(tag); m != 0; m &= m - 1) {
    const uint32_t i = static_cast<uint32_t>(std::countr_zero(m));
    if (b.entries[i].key == key) {
      slot = i;
      if (b.entries[i].expires_ns <= now_ns) {
        ++stats_.expired_reused;
        if (on_expired_ != nullptr) on_expired_(expired_ctx_, b.entries[i], now_ns);
      }
      break;
    }
  }
  if (slot == kConntrackWays) {
    if (const uint32_t empty = b.match(kEmptyTag); empty != 0) {
      slot = static_cast<uint32_t>(std::countr_zero(empty));
      ++stats_.live_entries;
    } else {
      // Full bucket, decided on the tag line: the entry closest to expiry is expired if any
      // is (give or take a second of rounding) and its place is reused; otherwise the victim
      // is the smallest eviction key, an unproven entry whenever the bucket holds one.
      uint32_t soonest = 0;
      uint32_t victim = 0;
      for (uint32_t i = 1; i < kConntrackWays; ++i) {
        if ((b.deadlines[i] & kCoarseMask) < (b.deadlines[soonest] & kCoarseMask)) soonest = i;
        if (b.deadlines[i] < b.deadlines[victim]) victim = i;
      }
      if (b.entries[soonest].expires_ns <= now_ns) {
        slot = soonest;
        ++stats_.expired_reused;
        if (on_expired_ != nullptr) on_expired_(expired_ctx_, b.entries[slot], now_ns);
      } else {
        slot = victim;
        ++stats_.evictions;
        if (is_unproven(b.entries[slot])) ++stats_.unproven_evicted;
      }
    }
  }

  FlowEntry& e = b.entries[slot];
  if (b.tags[slot] != kEmptyTag && counts_as_active(e)) count_open(e, -1);  // the flow whose place this is
  e.key = key;
  e.backend = backend;
  e.state = next_flow_state(FlowState::kFree, key.proto, tcp_flags);
  // TCP picked up mid-flow: no SYN opened it here.
  const bool mid_flow = key.proto == kProtoTcp && (tcp_flags & kTcpSyn) == 0;
  e.flags = mid_flow ? kFlowUnproven : 0;
  e.expires_ns = deadline(now_ns, mid_flow ? timeouts_.tcp_unproven_ns : timeout_for(e.state));
  e.vip = vip;
  b.tags[slot] = tag;
  b.deadlines[slot] = eviction_key(e);
  ++stats_.inserts;
  if (mid_flow) ++stats_.unproven_inserts;
  if (counts_as_active(e)) count_open(e, +1);
  return &e;
}

Conntrack::Bucket& Conntrack::bucket_of(const FlowEntry& entry, uint32_t* slot) const {
  // Entries only live inside buckets_: the bucket and slot follow from the address.
  const auto offset = static_cast<size_t>(reinterpret_cast<const char*>(&entry) -
                                          reinterpret_cast<const char*>(buckets_));
  Bucket& b = buckets_[offset / sizeof(Bucket)];
  *slot = static_cast<uint32_t>(&entry - b.entries);
  assert(offset / sizeof(Bucket) < bucket_count_ && *slot < kConntrackWays);
  return b;
}

bool Conntrack::touch(FlowEntry& entry, uint8_t tcp_flags, uint64_t now_ns) {
  const FlowState next = next_flow_state(entry.state, entry.key.proto, tcp_flags);
  const uint64_t timeout = timeout_for(next);
  const uint64_t expires = deadline(now_ns, timeout);
  // A second packet of a flow picked up mid-way: it repeats, so it is a real flow.
  const bool proving = is_unproven(entry);
  // Most packets of a flow would move its deadline by microseconds. Writing that every time
  // would dirty two cache lines per packet; the deadline moves only once it has fallen behind
  // by 1/64 of the timeout (at most about a second), as Linux's conntrack refreshes by the
  // second. A flow may so expire that much early, never late.
  if (!proving && next == entry.state && expires - entry.expires_ns < std::min(timeout >> 6, kRefreshStepNs)) {
    return false;
  }
  const bool was_active = counts_as_active(entry);
  entry.state = next;
  entry.flags = static_cast<uint8_t>(entry.flags & ~kFlowUnproven);
  entry.expires_ns = expires;
  if (proving) ++stats_.proven;
  const bool active = counts_as_active(entry);
  if (was_active != active) count_open(entry, active ? +1 : -1);
  uint32_t slot = 0;
  Bucket& b = bucket_of(entry, &slot);
  b.deadlines[slot] = eviction_key(entry);
  return true;
}

// Keeps the backend's active_flows gauge: +1 when `e` starts counting, -1 when it stops.
void Conntrack::count_open(const FlowEntry& e, int delta) const {
  if (counters_ == nullptr) return;
  if (BackendCounters* c = counters_->backend(e.backend)) {
    if (delta > 0) {
      c->active_flows.add();
    } else {
      c->active_flows.sub();
    }
  }
}

void Conntrack::sweep(uint64_t now_ns, uint32_t buckets) {
  const uint32_t now = coarse(now_ns);
  for (uint32_t n = 0; n < buckets && n < bucket_count_; ++n) {
    Bucket& b = buckets_[sweep_cursor_];
    sweep_cursor_ = (sweep_cursor_ + 1) & bucket_mask_;
    // Only entries surely expired by their coarse deadline: the tag line is all that is read
    // for the others (the rest go at their next lookup or insert).
    for (uint32_t occupied = ~b.match(kEmptyTag) & ((1u << kConntrackWays) - 1); occupied != 0;
         occupied &= occupied - 1) {
      const int i = std::countr_zero(occupied);
      if ((b.deadlines[i] & kCoarseMask) < now) {
        if (on_expired_ != nullptr) on_expired_(expired_ctx_, b.entries[i], now_ns);
        erase(b.entries[i]);
      }
    }
  }
}

void Conntrack::erase(FlowEntry& entry) {
  uint32_t slot = 0;
  Bucket& b = bucket_of(entry, &slot);
  if (b.tags[slot] == kEmptyTag) return;  // already free: keep live_entries right
  if (counts_as_active(entry)) count_open(entry, -1);
  b.tags[slot] = kEmptyTag;
  b.deadlines[slot] = 0;
  entry.state = FlowState::kFree;
  entry.flags = 0;
  entry.expires_ns = 0;
  --stats_.live_entries;
}

uint64_t Conntrack::timeout_for(FlowState state) const {
  switch (state) {
    case FlowState::kTcpSynSeen:
      return timeouts_.tcp_syn_ns;
    case FlowState::kTcpEstablished:
      return timeouts_.tcp_established_ns;
    case FlowState::kTcpClosing:
      return timeouts_.tcp_closing_ns;
    case FlowState::kUdp:
      return timeouts_.udp_ns;
    case FlowState::kOther:
    case FlowState::kFree:
      break;
  }
  return timeouts_.other_ns;
}

// kFree as the previous state means "first packet of the flow": a SYN opens it, anything
// else is a flow picked up mid-way (e.g. after a mux restart or a rehash), taken as
// established.
FlowState next_flow_state(FlowState state, uint8_t proto, uint8_t tcp_flags) {
  if (proto == kProtoUdp) return FlowState::kUdp;
  if (proto != kProtoTcp) return FlowState::kOther;
  if ((tcp_flags & (kTcpFin | kTcpRst)) != 0) return FlowState::kTcpClosing;
  const bool syn = (tcp_flags & kTcpSyn) != 0;
  const bool ack = (tcp_flags & kTcpAck) != 0;
  switch (state) {
    case FlowState::kTcpClosing:
      return FlowState::kTcpClosing;
    case FlowState::kTcpSynSeen:
      return ack && !syn ? FlowState::kTcpEstablished : FlowState::kTcpSynSeen;
    case FlowState::kTcpEstablished:
      return FlowState::kTcpEstablished;
    case FlowState::kFree:
    case FlowState::kUdp:
    case FlowState::kOther:
      break;
  }
  return syn && !ack ? FlowState::kTcpSynSeen : FlowState::kTcpEstablished;
}

}  // namespace l4mux
