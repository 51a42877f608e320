// Keyed hashing. Every mux of a cluster is given the same 64-bit seed, so the same flow
// hashes alike everywhere (Maglev's "same inputs, same decision on every mux").
#pragma once

#include <cstddef>
#include <cstdint>

#include "types.h"

namespace l4mux {

// 64-bit keyed hash of a byte string (a wyhash-style multiply-fold construction).
uint64_t hash_bytes(const void* data, size_t len, uint64_t seed);

// Hash of the fields of `key` that `fields` selects. The full 5-tuple is used for the
// connection table; a VIP's HashFields choose which fields pick its backend.
uint64_t hash_flow(const FlowKey& key, HashFields fields, uint64_t seed);

// Derives independent seeds from the cluster seed (one per purpose), so that e.g. the
// connection table's bucket choice and Maglev's permutations never correlate.
uint64_t derive_seed(uint64_t seed, uint64_t purpose);

}  // namespace l4mux
