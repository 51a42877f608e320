#include "checksum.h"

#include <bit>
#include <cstring>

#include "bytes.h"

namespace l4mux {

uint32_t csum_partial(const uint8_t* data, size_t len, uint32_t initial) {
  // Summed in native byte order and swapped once at the end: the one's complement sum does
  // not care about byte order except for that final swap (RFC 1071 2(B)). 32-bit words into a
  // 64-bit accumulator cannot overflow for any packet size, so carries are folded once.
  uint64_t sum = 0;
  size_t i = 0;
  for (; i + 4 <= len; i += 4) {
    uint32_t w;
    std::memcpy(&w, data + i, 4);
    sum += w;
  }
  if (i + 2 <= len) {
    uint16_t w;
    std::memcpy(&w, data + i, 2);
    sum += w;
    i += 2;
  }
  if (i < len) {
    sum += std::endian::native == std::endian::little ? uint32_t{data[i]} : uint32_t{data[i]} << 8;
  }
  sum = (sum & 0xffffffffu) + (sum >> 32);
  sum = (sum & 0xffffffffu) + (sum >> 32);
  uint32_t folded = static_cast<uint32_t>((sum & 0xffff) + (sum >> 16));
  folded = (folded & 0xffff) + (folded >> 16);
  if constexpr (std::endian::native == std::endian::little) {
    folded = __builtin_bswap16(static_cast<uint16_t>(folded));
  }
  uint64_t total = uint64_t{initial} + folded;
  total = (total & 0xffffffffu) + (total >> 32);
  return static_cast<uint32_t>(total);
}

uint32_t pseudo_header_sum(const IpAddr& src, const IpAddr& dst, uint8_t proto, uint32_t l4_len) {
  uint32_t sum = csum_partial(src.bytes.data(), src.size());
  sum = csum_partial(dst.bytes.data(), dst.size(), sum);
  uint64_t s = uint64_t{sum} + proto + (l4_len >> 16) + (l4_len & 0xffff);
  while (s >> 32) s = (s & 0xffffffffu) + (s >> 32);
  return static_cast<uint32_t>(s);
}

uint16_t csum_replace16(uint16_t check, uint16_t old_word, uint16_t new_word) {
  // HC' = ~(~HC + ~m + m')
  uint32_t sum = static_cast<uint16_t>(~check);
  sum += static_cast<uint16_t>(~old_word);
  sum += new_word;
  return csum_fold(sum);
}

}  // namespace l4mux

namespace l4mux {

bool finalize_l4_checksum(uint8_t* l4, uint32_t l4_len, const IpAddr& src, const IpAddr& dst,
                          uint8_t proto) {
  uint32_t offset = 0;
  bool pseudo = true;
  switch (proto) {
    case kProtoTcp:
      offset = 16;
      break;
    case kProtoUdp:
      offset = 6;
      break;
    case kProtoIcmpv6:
      offset = 2;
      break;
    case kProtoIcmp:
      offset = 2;
      pseudo = false;
      break;
    default:
      return false;
  }
  if (l4_len < offset + 2) return false;
  store_be16(l4 + offset, 0);
  uint32_t sum = pseudo ? pseudo_header_sum(src, dst, proto, l4_len) : 0;
  uint16_t check = csum_fold(csum_partial(l4, l4_len, sum));
  // A computed UDP checksum of zero is sent as all ones (zero means "none").
  if (proto == kProtoUdp && check == 0) check = 0xffff;
  store_be16(l4 + offset, check);
  return true;
}

}  // namespace l4mux
