// Internet checksum (RFC 1071) helpers, with incremental updates (RFC 1624).
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "types.h"

namespace l4mux {

// One's-complement sum of `len` bytes folded into 32 bits (not yet complemented).
// `initial` lets sums be chained; odd lengths are padded with a zero byte.
uint32_t csum_partial(const uint8_t* data, size_t len, uint32_t initial = 0);

// Folds a 32-bit partial sum to 16 bits and complements it: the value to store in a header.
inline uint16_t csum_fold(uint32_t sum) {
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum & 0xffff);
}

// Partial sum of the TCP/UDP/ICMPv6 pseudo-header.
uint32_t pseudo_header_sum(const IpAddr& src, const IpAddr& dst, uint8_t proto, uint32_t l4_len);

// Checksum of an IPv4 header (20 bytes, or longer with options: always a multiple of 4)
// whose checksum field is zero. Inline: with the usual constant 20 it unrolls to a few adds,
// where the general loop's vector prologue would cost more than the sum itself.
inline uint16_t ipv4_header_checksum(const uint8_t* header, size_t header_len) {
  uint64_t sum = 0;
  for (size_t i = 0; i + 4 <= header_len; i += 4) {
    uint32_t w;
    std::memcpy(&w, header + i, 4);
    sum += w;
  }
  sum = (sum & 0xffffffffu) + (sum >> 32);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  uint16_t folded = static_cast<uint16_t>(~sum);
  if constexpr (std::endian::native == std::endian::little) folded = __builtin_bswap16(folded);
  return folded;
}

// RFC 1624 incremental update of a stored checksum when a 16-bit word changes old -> new.
uint16_t csum_replace16(uint16_t check, uint16_t old_word, uint16_t new_word);

}  // namespace l4mux

namespace l4mux {

// Computes and stores the full L4 checksum of a TCP, UDP, ICMP or ICMPv6 segment
// (`l4`, `l4_len` bytes, the whole segment). Used for packets whose sender left the
// checksum to offload (CHECKSUM_PARTIAL through veth / virtio): the field then holds only
// the pseudo-header sum. Returns false for protocols without a checksum it knows.
bool finalize_l4_checksum(uint8_t* l4, uint32_t l4_len, const IpAddr& src, const IpAddr& dst,
                          uint8_t proto);

}  // namespace l4mux
