#include "hash.h"

#include <cstring>

#include "bytes.h"

namespace l4mux {
namespace {

using hash_detail::kP0;
using hash_detail::kP1;
using hash_detail::kP2;
using hash_detail::kP3;
using hash_detail::mum;

inline uint64_t load_tail(const uint8_t* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= uint64_t{p[i]} << (8 * i);
  return v;
}

}  // namespace

uint64_t hash_bytes(const void* data, size_t len, uint64_t seed) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint64_t h = seed ^ kP0;
  size_t i = 0;
  for (; i + 16 <= len; i += 16) {
    h = mum(load_le64(p + i) ^ kP1, load_le64(p + i + 8) ^ h);
  }
  uint64_t a = 0;
  uint64_t b = 0;
  const size_t rest = len - i;
  if (rest > 8) {
    a = load_le64(p + i);
    b = load_tail(p + i + 8, rest - 8);
  } else {
    a = load_tail(p + i, rest);
  }
  h = mum(a ^ kP2, b ^ h);
  return mum(h ^ (len * kP3), kP1 ^ seed);
}

uint64_t derive_seed(uint64_t seed, uint64_t purpose) {
  return mum(seed ^ kP2, purpose ^ kP3) ^ mum(purpose ^ kP0, seed ^ kP1);
}

}  // namespace l4mux
