#include "icmp.h"

#include <algorithm>
#include <cstring>

#include "bytes.h"
#include "checksum.h"

namespace l4mux {
namespace {

constexpr uint8_t kIcmpEchoReply = 0;
constexpr uint8_t kIcmpDestUnreachable = 3;
constexpr uint8_t kIcmpFragNeeded = 4;
constexpr uint8_t kIcmpEchoRequest = 8;
constexpr uint8_t kIcmpv6PacketTooBig = 2;
constexpr uint8_t kIcmpv6EchoRequest = 128;
constexpr uint8_t kIcmpv6EchoReply = 129;
constexpr uint8_t kReplyTtl = 64;

}  // namespace

bool is_path_mtu_error(const ParsedPacket& pkt) {
  if (pkt.proto == kProtoIcmp) {
    return pkt.icmp_type == kIcmpDestUnreachable && pkt.icmp_code == kIcmpFragNeeded;
  }
  return pkt.proto == kProtoIcmpv6 && pkt.icmp_type == kIcmpv6PacketTooBig;
}

bool is_echo_request(const ParsedPacket& pkt) {
  return (pkt.proto == kProtoIcmp && pkt.icmp_type == kIcmpEchoRequest) ||
         (pkt.proto == kProtoIcmpv6 && pkt.icmp_type == kIcmpv6EchoRequest);
}

uint32_t make_echo_reply(uint8_t* frame, const ParsedPacket& pkt) {
  // Back to where it came from: the request's destination MAC is ours.
  uint8_t mac[6];
  std::memcpy(mac, frame, 6);
  std::memcpy(frame, frame + 6, 6);
  std::memcpy(frame + 6, mac, 6);

  uint8_t* ip = frame + pkt.l3_offset;
  uint8_t* icmp = frame + pkt.l4_offset;
  const uint16_t old_type_code = load_be16(icmp);
  if (pkt.family == Family::kIpv4) {
    uint8_t addr[4];
    std::memcpy(addr, ip + 12, 4);
    std::memcpy(ip + 12, ip + 16, 4);
    std::memcpy(ip + 16, addr, 4);
    ip[8] = kReplyTtl;
    store_be16(ip + 10, 0);
    store_be16(ip + 10, ipv4_header_checksum(ip, pkt.l4_offset - pkt.l3_offset));
    icmp[0] = kIcmpEchoReply;
  } else {
    uint8_t addr[16];
    std::memcpy(addr, ip + 8, 16);
    std::memcpy(ip + 8, ip + 24, 16);
    std::memcpy(ip + 24, addr, 16);
    ip[7] = kReplyTtl;
    icmp[0] = kIcmpv6EchoReply;  // the pseudo-header sum is unchanged by swapping addresses
  }
  store_be16(icmp + 2, csum_replace16(load_be16(icmp + 2), old_type_code, load_be16(icmp)));
  return static_cast<uint32_t>(pkt.l3_offset) + pkt.l3_length;
}

}  // namespace l4mux
