// Keyed hashing. Every mux of a cluster is given the same 64-bit seed, so the same flow
// hashes alike everywhere (Maglev's "same inputs, same decision on every mux"). Words are
// read little-endian and ports are combined by value, so the result does not depend on the
// host's byte order either.
#pragma once

#include <cstddef>
#include <cstdint>

#include "bytes.h"
#include "types.h"

namespace l4mux {

namespace hash_detail {
inline constexpr uint64_t kP0 = 0xa0761d6478bd642full;
inline constexpr uint64_t kP1 = 0xe7037ed1a0b428dbull;
inline constexpr uint64_t kP2 = 0x8ebc6af09c88c6e3ull;
inline constexpr uint64_t kP3 = 0x589965cc75374cc3ull;

// Multiply-fold: the 128-bit product's halves xored (the mixing step of wyhash).
inline uint64_t mum(uint64_t a, uint64_t b) {
  const unsigned __int128 r = static_cast<unsigned __int128>(a) * b;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}

// Three address-and-tail words folded into one hash: the shape of every per-packet hash.
inline uint64_t hash_words(uint64_t a0, uint64_t a1, uint64_t b0, uint64_t b1, uint64_t tail,
                           uint64_t seed) {
  uint64_t h = mum(a0 ^ kP1, a1 ^ seed ^ kP0);
  h = mum(b0 ^ kP2, b1 ^ h);
  return mum(tail ^ kP3, h ^ seed);
}
}  // namespace hash_detail

// 64-bit keyed hash of a byte string (a wyhash-style multiply-fold construction). For
// configuration-time use (backend identities); per-packet hashes use the inline ones below.
uint64_t hash_bytes(const void* data, size_t len, uint64_t seed);

// Hash of the fields of `key` that `fields` selects. The full 5-tuple is used for the
// connection table; a VIP's HashFields choose which fields pick its backend.
inline uint64_t hash_flow(const FlowKey& key, HashFields fields, uint64_t seed) {
  using hash_detail::hash_words;
  const uint64_t s0 = load_le64(key.src.data());
  const uint64_t s1 = load_le64(key.src.data() + 8);
  const uint64_t family = uint64_t{static_cast<uint8_t>(key.family)} << 40;
  const uint64_t proto = uint64_t{key.proto} << 32;
  switch (fields) {
    case HashFields::kFiveTuple:
      return hash_words(s0, s1, load_le64(key.dst.data()), load_le64(key.dst.data() + 8),
                        family | proto | (uint64_t{key.dst_port} << 16) | key.src_port, seed);
    case HashFields::kThreeTuple:
      return hash_words(s0, s1, load_le64(key.dst.data()), load_le64(key.dst.data() + 8),
                        family | proto, seed);
    case HashFields::kSrcIpPort:
      return hash_words(s0, s1, 0, 0, family | key.src_port, seed);
    case HashFields::kSrcIp:
      break;
  }
  return hash_words(s0, s1, 0, 0, family, seed);
}

// Hash of a VIP key (address, protocol, port) for the snapshot's lookup index.
inline uint64_t hash_vip_key(const IpAddr& addr, uint8_t proto, uint16_t port, uint64_t seed) {
  const uint64_t tail = uint64_t{static_cast<uint8_t>(addr.family)} | (uint64_t{proto} << 8) |
                        (uint64_t{port} << 16);
  return hash_detail::hash_words(load_le64(addr.bytes.data()), load_le64(addr.bytes.data() + 8), 0,
                                 0, tail, seed);
}
inline uint64_t hash_vip_key(const VipKey& k, uint64_t seed) {
  return hash_vip_key(k.addr, k.proto, k.port, seed);
}

// Derives independent seeds from the cluster seed (one per purpose), so that e.g. the
// connection table's bucket choice and Maglev's permutations never correlate.
uint64_t derive_seed(uint64_t seed, uint64_t purpose);

}  // namespace l4mux
