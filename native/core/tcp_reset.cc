#include "tcp_reset.h"

#include <cstring>

#include "bytes.h"
#include "checksum.h"
#include "ip_reply.h"

namespace l4mux {

uint32_t make_tcp_reset(uint8_t* frame, const ParsedPacket& pkt) {
  if ((pkt.tcp_flags & kTcpRst) != 0) return 0;
  const uint8_t* tcp_in = frame + pkt.l4_offset;
  const uint32_t seq = load_be32(tcp_in + 4);
  const uint32_t ack = load_be32(tcp_in + 8);
  const uint32_t header_len = static_cast<uint32_t>(tcp_in[12] >> 4) * 4;
  const uint32_t payload = pkt.l3_length - (pkt.l4_offset - pkt.l3_offset) - header_len;
  const uint32_t seg_len = payload + ((pkt.tcp_flags & kTcpSyn) != 0) + ((pkt.tcp_flags & kTcpFin) != 0);
  // An ACK names what the client expects next: that is our sequence number. Without one,
  // acknowledge the segment instead.
  const bool has_ack = (pkt.tcp_flags & kTcpAck) != 0;
  const uint32_t reset_seq = has_ack ? ack : 0;
  const uint32_t reset_ack = has_ack ? 0 : seq + seg_len;
  const uint8_t reset_flags = has_ack ? kTcpRst : static_cast<uint8_t>(kTcpRst | kTcpAck);

  uint8_t mac[6];
  std::memcpy(mac, frame, 6);
  std::memcpy(frame, frame + 6, 6);
  std::memcpy(frame + 6, mac, 6);

  uint8_t* ip = frame + pkt.l3_offset;
  const uint32_t ip_len = write_reply_ip_header(ip, kTcpHeaderLen, kProtoTcp, pkt.dst, pkt.src);
  uint8_t* tcp = ip + ip_len;
  // The new header may start before the old one (options dropped): ports were read above
  // through the parse, sequence numbers already copied out.
  store_be16(tcp, pkt.dst_port);
  store_be16(tcp + 2, pkt.src_port);
  store_be32(tcp + 4, reset_seq);
  store_be32(tcp + 8, reset_ack);
  tcp[12] = static_cast<uint8_t>((kTcpHeaderLen / 4) << 4);
  tcp[13] = reset_flags;
  store_be16(tcp + 14, 0);  // window
  store_be16(tcp + 16, 0);  // checksum, below
  store_be16(tcp + 18, 0);  // urgent pointer
  const uint32_t sum = pseudo_header_sum(pkt.dst, pkt.src, kProtoTcp, kTcpHeaderLen);
  store_be16(tcp + 16, csum_fold(csum_partial(tcp, kTcpHeaderLen, sum)));
  return static_cast<uint32_t>(pkt.l3_offset) + ip_len + kTcpHeaderLen;
}

}  // namespace l4mux
