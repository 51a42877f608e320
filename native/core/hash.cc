#include "hash.h"

#include <cstring>

#include "bytes.h"

namespace l4mux {
namespace {

constexpr uint64_t kP0 = 0xa0761d6478bd642full;
constexpr uint64_t kP1 = 0xe7037ed1a0b428dbull;
constexpr uint64_t kP2 = 0x8ebc6af09c88c6e3ull;
constexpr uint64_t kP3 = 0x589965cc75374cc3ull;

inline uint64_t mum(uint64_t a, uint64_t b) {
  const unsigned __int128 r = static_cast<unsigned __int128>(a) * b;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}

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

uint64_t hash_flow(const FlowKey& key, HashFields fields, uint64_t seed) {
  if (fields == HashFields::kFiveTuple) return hash_bytes(&key, sizeof(key), seed);
  FlowKey k{};
  k.family = key.family;
  k.src = key.src;
  switch (fields) {
    case HashFields::kThreeTuple:
      k.dst = key.dst;
      k.proto = key.proto;
      break;
    case HashFields::kSrcIpPort:
      k.src_port = key.src_port;
      break;
    case HashFields::kSrcIp:
    case HashFields::kFiveTuple:
      break;
  }
  return hash_bytes(&k, sizeof(k), seed);
}

uint64_t derive_seed(uint64_t seed, uint64_t purpose) {
  return mum(seed ^ kP2, purpose ^ kP3) ^ mum(purpose ^ kP0, seed ^ kP1);
}

}  // namespace l4mux
