// The IP header of a packet the mux originates back toward a client (ICMP errors, TCP
// resets): from the VIP the client addressed, no options, a fresh TTL.
#pragma once

#include <cstdint>
#include <cstring>

#include "bytes.h"
#include "checksum.h"
#include "defaults.h"
#include "types.h"

namespace l4mux {

inline constexpr uint8_t kReplyTtl = defaults::kReplyTtl;

// Writes the IPv4 (20 bytes, DF) or IPv6 (40 bytes) header at `ip` for `payload_len` bytes of
// protocol `proto` from `src` to `dst`; returns the header length.
inline uint32_t write_reply_ip_header(uint8_t* ip, uint32_t payload_len, uint8_t proto,
                                      const IpAddr& src, const IpAddr& dst) {
  if (src.is_v4()) {
    ip[0] = kIpv4VersionIhl;
    ip[1] = 0;
    store_be16(ip + 2, static_cast<uint16_t>(kIpv4HeaderLen + payload_len));
    store_be16(ip + 4, 0);
    store_be16(ip + 6, kIpv4DontFragment);
    ip[8] = kReplyTtl;
    ip[9] = proto;
    store_be16(ip + 10, 0);
    std::memcpy(ip + 12, src.bytes.data(), 4);
    std::memcpy(ip + 16, dst.bytes.data(), 4);
    store_be16(ip + 10, ipv4_header_checksum(ip, kIpv4HeaderLen));
    return kIpv4HeaderLen;
  }
  store_be32(ip, 6u << 28);
  store_be16(ip + 4, static_cast<uint16_t>(payload_len));
  ip[6] = proto;
  ip[7] = kReplyTtl;
  std::memcpy(ip + 8, src.bytes.data(), 16);
  std::memcpy(ip + 24, dst.bytes.data(), 16);
  return kIpv6HeaderLen;
}

}  // namespace l4mux
