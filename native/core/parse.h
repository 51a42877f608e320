// Packet parsing: Ethernet (802.1Q / QinQ), IPv4 (options, fragments), IPv6 (extension
// header chain, fragment header), TCP, UDP, ICMP and ICMPv6 including the header embedded in
// ICMP errors. Every length is checked before it is read; a malformed packet yields a
// DropReason and nothing past the frame is ever touched.
#pragma once

#include <cstdint>
#include <optional>

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

}  // namespace l4mux
