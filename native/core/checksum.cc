#include "checksum.h"

#include "bytes.h"

namespace l4mux {

uint32_t csum_partial(const uint8_t* data, size_t len, uint32_t initial) {
  uint64_t sum = initial;
  size_t i = 0;
  // 32-bit words summed into 64 bits: carries are folded once at the end.
  for (; i + 4 <= len; i += 4) sum += load_be32(data + i);
  if (i + 2 <= len) {
    sum += load_be16(data + i);
    i += 2;
  }
  if (i < len) sum += uint32_t{data[i]} << 8;
  while (sum >> 32) sum = (sum & 0xffffffffu) + (sum >> 32);
  return static_cast<uint32_t>(sum);
}

uint16_t csum_fold(uint32_t sum) {
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum & 0xffff);
}

uint32_t pseudo_header_sum(const IpAddr& src, const IpAddr& dst, uint8_t proto, uint32_t l4_len) {
  uint32_t sum = csum_partial(src.bytes.data(), src.size());
  sum = csum_partial(dst.bytes.data(), dst.size(), sum);
  uint64_t s = uint64_t{sum} + proto + (l4_len >> 16) + (l4_len & 0xffff);
  while (s >> 32) s = (s & 0xffffffffu) + (s >> 32);
  return static_cast<uint32_t>(s);
}

uint16_t ipv4_header_checksum(const uint8_t* header, size_t header_len) {
  return csum_fold(csum_partial(header, header_len));
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
