// Internet checksum (RFC 1071) helpers, with incremental updates (RFC 1624).
#pragma once

#include <cstddef>
#include <cstdint>

#include "types.h"

namespace l4mux {

// One's-complement sum of `len` bytes folded into 32 bits (not yet complemented).
// `initial` lets sums be chained; odd lengths are padded with a zero byte.
uint32_t csum_partial(const uint8_t* data, size_t len, uint32_t initial = 0);

// Folds a 32-bit partial sum to 16 bits and complements it: the value to store in a header.
uint16_t csum_fold(uint32_t sum);

// Partial sum of the TCP/UDP/ICMPv6 pseudo-header.
uint32_t pseudo_header_sum(const IpAddr& src, const IpAddr& dst, uint8_t proto, uint32_t l4_len);

// Checksum of a 20-byte (or longer, with options) IPv4 header whose checksum field is zero.
uint16_t ipv4_header_checksum(const uint8_t* header, size_t header_len);

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
