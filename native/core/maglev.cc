#include "maglev.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <stdexcept>
#include <string>

#include "hash.h"

namespace l4mux {
namespace {

// Offset and skip come from two independent keyed hashes (paper section 3.4); both purposes
// differ from every other derive_seed purpose so that no other hash correlates with them.
constexpr uint64_t kOffsetSeedPurpose = 0x6d61676c65762d6full;  // "maglev-o"
constexpr uint64_t kSkipSeedPurpose = 0x6d61676c65762d73ull;    // "maglev-s"

// A usable backend during the build, kept in identity order.
struct Member {
  const MaglevBackend* backend = nullptr;
  uint64_t remainder = 0;  // of weight * M / sum(weights), for the largest-remainder step
  uint32_t quota = 0;      // entries it ends up with
};

// A member's walk along its permutation during the fill: all the fill touches per turn, in
// 24 bytes, so that 1000 members' walks stay in L1.
struct Walk {
  uint32_t cursor = 0;  // next slot of the permutation to try
  // The permutation's step, and 2, 3 and 4 steps (mod M): four places are probed at once.
  std::array<uint32_t, 4> skips{};
  uint32_t id = 0;  // MaglevBackend::id
};

bool identity_less(const IpAddr& a, const IpAddr& b) {
  if (a.bytes != b.bytes) return a.bytes < b.bytes;
  return a.family < b.family;
}

uint64_t hash_identity(const IpAddr& identity, uint64_t seed) {
  uint8_t key[17];
  std::memcpy(key, identity.bytes.data(), 16);
  key[16] = static_cast<uint8_t>(identity.family);
  return hash_bytes(key, sizeof(key), seed);
}

// Quotas proportional to weight that sum exactly to `size`: floor of each ideal share, then
// the entries left over (fewer than members.size()) go to the largest remainders, ties to
// the earlier identity. Returns the largest quota.
uint32_t assign_quotas(std::vector<Member>& members, uint32_t size) {
  uint64_t weight_sum = 0;
  for (const Member& m : members) weight_sum += m.backend->weight;
  uint64_t assigned = 0;
  for (Member& m : members) {
    const uint64_t scaled = uint64_t{m.backend->weight} * size;  // < 2^64: both are 32-bit
    m.quota = static_cast<uint32_t>(scaled / weight_sum);
    m.remainder = scaled % weight_sum;
    assigned += m.quota;
  }
  const size_t leftover = size - assigned;
  if (leftover > 0) {
    std::vector<uint32_t> by_remainder(members.size());
    for (uint32_t i = 0; i < by_remainder.size(); ++i) by_remainder[i] = i;
    std::nth_element(by_remainder.begin(), by_remainder.begin() + (leftover - 1),
                     by_remainder.end(), [&](uint32_t a, uint32_t b) {
                       if (members[a].remainder != members[b].remainder) {
                         return members[a].remainder > members[b].remainder;
                       }
                       return a < b;
                     });
    for (size_t i = 0; i < leftover; ++i) ++members[by_remainder[i]].quota;
  }
  uint32_t max_quota = 0;
  for (const Member& m : members) max_quota = std::max(max_quota, m.quota);
  return max_quota;
}

// Calls visit(round) for each of the member's turns. Over max_quota rounds, a member with
// quota q takes its j-th turn (j = 0..q-1) in round floor(j * max_quota / q): at most one
// turn a round, spread evenly. Stepped incrementally, no division per turn.
template <typename Visit>
void for_each_turn_round(uint32_t quota, uint32_t max_quota, Visit&& visit) {
  if (quota == 0) return;
  const uint32_t step = max_quota / quota;
  const uint32_t step_remainder = max_quota % quota;
  uint32_t round = 0;
  uint32_t fraction = 0;
  for (uint32_t j = 0; j < quota; ++j) {
    visit(round);
    round += step;
    fraction += step_remainder;
    if (fraction >= quota) {
      fraction -= quota;
      ++round;
    }
  }
}

// The build's working arrays, kept by each thread from one build to the next. Fresh ones of
// this size come from the kernel as new pages: for M = 65537 their page faults cost about
// as much as the fill itself (measured ~0.6 ms of ~2 ms on a KVM guest). What a thread keeps
// is bounded by the largest table it built: under 9 MB for the largest M the config allows.
struct BuildScratch {
  std::vector<uint32_t> round_start;
  std::vector<uint32_t> turns;
  std::vector<uint64_t> taken;
};
thread_local BuildScratch scratch;

// The order of turns: by round, and within a round by identity order. Built by a counting
// sort over rounds so the cost is O(M + N) whatever the weights (a round-by-round scan of all
// members would cost max_quota * N, bad for skewed weights).
void schedule_turns(const std::vector<Member>& members, uint32_t size, uint32_t max_quota,
                    std::vector<uint32_t>& round_start, std::vector<uint32_t>& turns) {
  round_start.assign(size_t{max_quota} + 1, 0);
  for (const Member& m : members) {
    for_each_turn_round(m.quota, max_quota, [&](uint32_t round) { ++round_start[round + 1]; });
  }
  for (uint32_t r = 0; r < max_quota; ++r) round_start[r + 1] += round_start[r];
  turns.resize(size);  // every element is written below: quotas sum to size
  for (uint32_t i = 0; i < members.size(); ++i) {
    for_each_turn_round(members[i].quota, max_quota,
                        [&](uint32_t round) { turns[round_start[round]++] = i; });
  }
}

}  // namespace

bool is_prime(uint32_t n) {
  if (n < 2) return false;
  if (n % 2 == 0) return n == 2;
  if (n % 3 == 0) return n == 3;
  for (uint64_t d = 5; d * d <= n; d += 6) {
    if (n % d == 0 || n % (d + 2) == 0) return false;
  }
  return true;
}

std::vector<uint32_t> build_maglev_table(std::span<const MaglevBackend> backends, uint32_t size,
                                         uint64_t seed) {
  // Prime M makes every skip in [1, M-1] coprime to M, so each permutation visits all slots.
  if (!is_prime(size)) {
    throw std::invalid_argument("Maglev table size " + std::to_string(size) + " is not prime");
  }

  std::vector<Member> members;
  members.reserve(backends.size());
  for (const MaglevBackend& b : backends) members.push_back(Member{&b});
  std::sort(members.begin(), members.end(), [](const Member& a, const Member& b) {
    return identity_less(a.backend->identity, b.backend->identity);
  });
  // Two entries with one identity would share a permutation; always a configuration error.
  const auto duplicate =
      std::adjacent_find(members.begin(), members.end(), [](const Member& a, const Member& b) {
        return a.backend->identity == b.backend->identity;
      });
  if (duplicate != members.end()) {
    throw std::invalid_argument("duplicate Maglev backend identity (ids " +
                                std::to_string(duplicate[0].backend->id) + " and " +
                                std::to_string(duplicate[1].backend->id) + ")");
  }
  std::erase_if(members, [](const Member& m) { return m.backend->weight == 0; });

  std::vector<uint32_t> table(size, kMaglevNoBackend);
  if (members.empty()) return table;

  const uint32_t max_quota = assign_quotas(members, size);
  const uint64_t offset_seed = derive_seed(seed, kOffsetSeedPurpose);
  const uint64_t skip_seed = derive_seed(seed, kSkipSeedPurpose);
  std::vector<Walk> walks(members.size());
  for (size_t i = 0; i < members.size(); ++i) {
    const IpAddr& identity = members[i].backend->identity;
    Walk& w = walks[i];
    w.cursor = static_cast<uint32_t>(hash_identity(identity, offset_seed) % size);
    const uint64_t skip = hash_identity(identity, skip_seed) % (size - 1) + 1;
    for (uint64_t k = 0; k < w.skips.size(); ++k) w.skips[k] = static_cast<uint32_t>(skip * (k + 1) % size);
    w.id = members[i].backend->id;
  }
  schedule_turns(members, size, max_quota, scratch.round_start, scratch.turns);

  // Occupancy as a bitmap: 8 KiB for M = 65537 stays in L1 while probes jump around.
  std::vector<uint64_t>& taken = scratch.taken;
  taken.assign((size_t{size} + 63) / 64, 0);
  const uint64_t m_size = size;  // 64-bit so that slot + skip cannot wrap for M near 2^32
  const auto advance = [m_size](uint64_t slot, uint64_t step) {
    slot += step;
    return slot >= m_size ? slot - m_size : slot;
  };
  const auto is_free = [&taken](uint64_t slot) {
    return static_cast<uint32_t>(~(taken[slot >> 6] >> (slot & 63)) & 1);
  };
  for (const uint32_t member_index : scratch.turns) {
    Walk& m = walks[member_index];
    // The first free slot of the permutation from the cursor on, four places per step: their
    // tests are independent, where one place at a time is a chain of dependent loads ending
    // in a mispredicted branch. Quotas sum to M, so a free slot exists and the walk ends.
    uint64_t slot = m.cursor;
    for (;;) {
      const std::array<uint64_t, 4> place = {slot, advance(slot, m.skips[0]), advance(slot, m.skips[1]),
                                             advance(slot, m.skips[2])};
      const uint32_t free = is_free(place[0]) | is_free(place[1]) << 1 | is_free(place[2]) << 2 |
                            is_free(place[3]) << 3;
      if (free != 0) {
        slot = place[std::countr_zero(free)];
        break;
      }
      slot = advance(slot, m.skips[3]);
    }
    taken[slot >> 6] |= uint64_t{1} << (slot & 63);
    table[slot] = m.id;
    m.cursor = static_cast<uint32_t>(advance(slot, m.skips[0]));
  }
  return table;
}

}  // namespace l4mux
