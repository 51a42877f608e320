#include "icmp.h"

#include <algorithm>
#include <cstring>

#include "bytes.h"
#include "checksum.h"
#include "ip_reply.h"

namespace l4mux {
namespace {

// How much of the offending packet an error quotes: the whole error stays within the
// minimum MTU of its family (RFC 1812 4.3.2.3: 576 bytes; RFC 4443 2.4(c): 1280 bytes).
constexpr uint32_t kMaxIcmpv4Error = kIpv4MinMtu;
constexpr uint32_t kMaxIcmpv6Error = kIpv6MinMtu;

}  // namespace

bool is_path_mtu_error(const ParsedPacket& pkt) {
  if (pkt.proto == kProtoIcmp) {
    return pkt.icmp_type == kIcmpDestUnreachable && pkt.icmp_code == kIcmpCodeFragNeeded;
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

uint8_t* make_too_big(uint8_t* frame, const ParsedPacket& pkt, uint32_t mtu, uint8_t* headroom_start,
                      uint32_t* frame_len) {
  const bool v4 = pkt.family == Family::kIpv4;
  const uint32_t ip_len = v4 ? kIpv4HeaderLen : kIpv6HeaderLen;
  const uint32_t max_error = v4 ? kMaxIcmpv4Error : kMaxIcmpv6Error;
  const uint32_t quoted = std::min<uint32_t>(pkt.l3_length, max_error - ip_len - kIcmpErrorHeaderLen);
  uint8_t* const original = frame + pkt.l3_offset;
  uint8_t* const reply = original - (kEthHeaderLen + ip_len + kIcmpErrorHeaderLen);
  if (reply < headroom_start) return nullptr;

  // Ethernet: back to the sender's next hop, from the MAC the packet was sent to. Read both
  // before writing: the new header may overlap the old one.
  uint8_t dst_mac[6];
  uint8_t src_mac[6];
  std::memcpy(dst_mac, frame + 6, 6);
  std::memcpy(src_mac, frame, 6);
  std::memcpy(reply, dst_mac, 6);
  std::memcpy(reply + 6, src_mac, 6);
  store_be16(reply + 12, v4 ? kEthTypeIpv4 : kEthTypeIpv6);

  uint8_t* ip = reply + kEthHeaderLen;
  uint8_t* icmp = ip + ip_len;
  const uint32_t icmp_len = kIcmpErrorHeaderLen + quoted;
  write_reply_ip_header(ip, icmp_len, v4 ? kProtoIcmp : kProtoIcmpv6, pkt.dst, pkt.src);
  store_be16(icmp + 2, 0);
  if (v4) {
    icmp[0] = kIcmpDestUnreachable;
    icmp[1] = kIcmpCodeFragNeeded;
    store_be16(icmp + 4, 0);
    store_be16(icmp + 6, static_cast<uint16_t>(std::min<uint32_t>(mtu, 0xffff)));
    store_be16(icmp + 2, csum_fold(csum_partial(icmp, icmp_len)));
  } else {
    icmp[0] = kIcmpv6PacketTooBig;
    icmp[1] = 0;
    store_be32(icmp + 4, mtu);
    const uint32_t sum = pseudo_header_sum(pkt.dst, pkt.src, kProtoIcmpv6, icmp_len);
    store_be16(icmp + 2, csum_fold(csum_partial(icmp, icmp_len, sum)));
  }
  *frame_len = static_cast<uint32_t>(kEthHeaderLen) + ip_len + icmp_len;
  return reply;
}

}  // namespace l4mux
