// Packet parsing: Ethernet (802.1Q / QinQ), IPv4 (options, fragments), IPv6 (extension
// header chain, fragment header), TCP, UDP, ICMP and ICMPv6 including the header embedded in
// ICMP errors. Every length is checked before it is read; a malformed packet yields a
// DropReason and nothing past the frame is ever touched.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>

#include "bytes.h"
#include "types.h"

namespace l4mux {

// The header embedded in an ICMP / ICMPv6 error (the packet that caused it), as far as it
// could be read. Only the first 8 bytes of the L4 header are guaranteed by RFC 792, which is
// enough for the ports.
struct EmbeddedHeader {
  bool present = false;  // the fields below mean something only when set
  Family family = Family::kNone;
  uint8_t proto = 0;
  IpAddr src;
  IpAddr dst;
  uint16_t src_port = 0;  // host byte order; 0 when the protocol has no ports
  uint16_t dst_port = 0;
};

struct ParsedPacket {
  // Offsets from the start of the frame.
  uint16_t l3_offset = 0;  // first byte of the IP header (after Ethernet and VLAN tags)
  uint16_t l4_offset = 0;  // first byte of the L4 header (after IPv4 options / IPv6 ext headers)
  // Length of the IP packet as its header states it (IPv4 total length, IPv6 40 + payload
  // length). Always <= frame length - l3_offset; trailing Ethernet padding is not included.
  uint16_t l3_length = 0;

  Family family = Family::kNone;
  uint8_t proto = 0;  // the final upper-layer protocol (after the IPv6 extension chain)
  IpAddr src;
  IpAddr dst;
  uint16_t src_port = 0;  // host byte order; 0 for ICMP and for non-first fragments
  uint16_t dst_port = 0;

  uint8_t tcp_flags = 0;   // raw TCP flags byte (FIN=0x01 SYN=0x02 RST=0x04 ACK=0x10)
  uint8_t traffic_class = 0;  // IPv4 TOS / IPv6 traffic class (DSCP + ECN)
  bool dont_fragment = false;  // IPv4 DF bit; always true for IPv6 (routers never fragment it)

  // Fragments: is_fragment is set for every fragment. Only the first fragment (offset 0)
  // carries the L4 header: has_l4 is false for the others, and their ports stay 0.
  bool is_fragment = false;
  bool has_l4 = false;

  bool has_vlan = false;
  uint16_t vlan_tci = 0;

  // ICMP / ICMPv6 (proto kProtoIcmp / kProtoIcmpv6)
  uint8_t icmp_type = 0;
  uint8_t icmp_code = 0;
  EmbeddedHeader embedded;  // filled for error messages that carry one

  // The 5-tuple of the packet (ports 0 where absent).
  FlowKey flow_key() const;
};

enum class ParseStatus : uint8_t {
  kOk,         // an IP packet, parsed; see ParsedPacket
  kNotIp,      // not IPv4/IPv6 (ARP, LLDP, ...): not ours, goes to the kernel
  kMalformed,  // counted and dropped under the DropReason returned
};

struct ParseResult {
  ParseStatus status = ParseStatus::kMalformed;
  DropReason reason = DropReason::kEthTruncated;  // meaningful when status == kMalformed
};

// Parses an Ethernet frame. Never reads outside [frame, frame + len).
ParseResult parse_frame(const uint8_t* frame, uint32_t len, ParsedPacket& out);

// Maximum number of IPv6 extension headers walked before the packet is refused.
inline constexpr int kMaxIpv6ExtHeaders = 8;

// ---- Plain flow packets --------------------------------------------------------------------

// What forwarding a plain flow packet (below) needs besides its flow key. The IP header
// starts right after the untagged Ethernet header.
struct PlainFlow {
  uint16_t l3_length = 0;
  uint8_t tcp_flags = 0;  // 0 for UDP
  uint8_t traffic_class = 0;
  bool dont_fragment = false;
};

inline constexpr uint32_t kPlainL3Offset = static_cast<uint32_t>(kEthHeaderLen);

// Recognises the packets nearly all traffic is made of: an untagged Ethernet frame holding
// IPv4 without options or IPv6 without extension headers, not a fragment, with a well-formed
// TCP or UDP header. For those it fills `key` and `out` exactly as parse_frame() and
// ParsedPacket::flow_key() would and returns true; for anything else it returns false having
// decided nothing, and the frame takes parse_frame(). It reads nothing outside
// [frame, frame + len). Inline because it runs for every packet; the pipeline fuzz target
// checks it against parse_frame() (see PipelineOptions::plain_lane).
inline bool parse_plain_flow(const uint8_t* frame, uint32_t len, FlowKey& key, PlainFlow& out) {
  // Below the smallest plain packet (IPv4 + UDP) nothing is plain; this also makes the
  // EtherType and the fixed IPv4 header readable.
  if (len < kPlainL3Offset + kIpv4HeaderLen + kUdpHeaderLen) return false;
  const uint8_t* ip = frame + kPlainL3Offset;
  const uint32_t avail = len - kPlainL3Offset;
  const uint16_t type = load_be16(frame + 12);
  uint32_t total = 0;
  uint32_t header = 0;
  uint8_t proto = 0;
  key = FlowKey{};
  if (type == kEthTypeIpv4) {
    if (ip[0] != 0x45) return false;  // version 4 and no options
    total = load_be16(ip + 2);
    const uint16_t frag = load_be16(ip + 6);
    if (total > avail || (frag & 0x3FFF) != 0) return false;  // past the frame, or a fragment
    header = static_cast<uint32_t>(kIpv4HeaderLen);
    proto = ip[9];
    store_ipv4_address16(key.src.data(), ip + 12);
    store_ipv4_address16(key.dst.data(), ip + 16);
    key.family = Family::kIpv4;
    out.traffic_class = ip[1];
    out.dont_fragment = (frag & 0x4000) != 0;
  } else if (type == kEthTypeIpv6) {
    if (avail < kIpv6HeaderLen || (ip[0] >> 4) != 6) return false;
    total = static_cast<uint32_t>(kIpv6HeaderLen) + load_be16(ip + 4);
    if (total > avail || total > 0xFFFF) return false;
    header = static_cast<uint32_t>(kIpv6HeaderLen);
    proto = ip[6];  // TCP or UDP right away: no extension headers
    std::memcpy(key.src.data(), ip + 8, 16);
    std::memcpy(key.dst.data(), ip + 24, 16);
    key.family = Family::kIpv6;
    out.traffic_class = static_cast<uint8_t>(load_be32(ip) >> 20);
    out.dont_fragment = true;
  } else {
    return false;
  }
  if (total < header) return false;
  const uint8_t* l4 = ip + header;
  const uint32_t l4_avail = total - header;
  if (proto == kProtoTcp) {
    if (l4_avail < kTcpHeaderLen) return false;
    const uint32_t data_offset = (uint32_t{l4[12]} >> 4) * 4;
    if (data_offset < kTcpHeaderLen || data_offset > l4_avail) return false;
    out.tcp_flags = l4[13];
  } else if (proto == kProtoUdp) {
    if (l4_avail < kUdpHeaderLen) return false;
    const uint32_t udp_len = load_be16(l4 + 4);
    if (udp_len < kUdpHeaderLen || udp_len > l4_avail) return false;
    out.tcp_flags = 0;
  } else {
    return false;
  }
  key.src_port = load_be16(l4);
  key.dst_port = load_be16(l4 + 2);
  key.proto = proto;
  out.l3_length = static_cast<uint16_t>(total);
  return true;
}

}  // namespace l4mux
