// Maglev consistent hashing (Eisenbud et al., NSDI 2016, section 3.4), weighted.
//
// A table of prime size M maps a flow hash to a backend: entry = table[hash % M]. Each
// backend walks its own permutation of the M slots (offset and skip derived from a keyed
// hash of its identity) and claims the first free slot on its turn. Weights give every
// backend a quota proportional to its weight (any scale: 1/2/3 and 100/200/300 build the
// same table), and turns are interleaved in proportion to the quotas, so shares stay within
// one entry of ideal while keeping Maglev's small disruption when a backend leaves.
//
// The table does not depend on the order in which backends are listed: they are ordered by
// identity before the fill. Tables are built by the control thread, never on the hot path.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "defaults.h"
#include "types.h"

namespace l4mux {

inline constexpr uint32_t kMaglevDefaultSize = defaults::kMaglevTableSize;
inline constexpr uint32_t kMaglevNoBackend = UINT32_MAX;

struct MaglevBackend {
  uint32_t id = 0;      // what the table stores (the dataplane's backend slot)
  IpAddr identity;      // what the permutation is derived from (stable across muxes)
  uint32_t weight = 1;  // 0 = takes no entries
};

bool is_prime(uint32_t n);

// Builds a table of `size` entries (size must be prime). Backends with weight 0 are left
// out; with no usable backend every entry is kMaglevNoBackend. Throws std::invalid_argument
// for a non-prime size or duplicate identities.
std::vector<uint32_t> build_maglev_table(std::span<const MaglevBackend> backends, uint32_t size,
                                         uint64_t seed);

}  // namespace l4mux
