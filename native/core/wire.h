// Facts of the wire: the numbers the protocols themselves define (EtherTypes, IP protocol
// numbers, IPv6 next headers, header lengths, flag bits, ICMP types), one definition each.
// Everything the mux chooses (ports, TTLs, capacities, timeouts) is a default, not here: see
// defaults.h.
#pragma once

#include <cstddef>
#include <cstdint>

namespace l4mux {

// ---- Ethernet -------------------------------------------------------------------------------

inline constexpr uint16_t kEthTypeIpv4 = 0x0800;
inline constexpr uint16_t kEthTypeIpv6 = 0x86DD;
inline constexpr uint16_t kEthTypeVlan = 0x8100;  // 802.1Q C-tag
inline constexpr uint16_t kEthTypeQinQ = 0x88A8;  // 802.1ad S-tag

inline constexpr size_t kEthHeaderLen = 14;
inline constexpr size_t kEthTypeOffset = 12;  // the EtherType (or first TPID) after the two MACs
inline constexpr size_t kVlanTagLen = 4;      // TPID + TCI

// ---- IP protocol numbers (IPv4 protocol, IPv6 next header) ---------------------------------

inline constexpr uint8_t kProtoIcmp = 1;
inline constexpr uint8_t kProtoIpip = 4;
inline constexpr uint8_t kProtoTcp = 6;
inline constexpr uint8_t kProtoUdp = 17;
inline constexpr uint8_t kProtoIpv6 = 41;
inline constexpr uint8_t kProtoGre = 47;
inline constexpr uint8_t kProtoIcmpv6 = 58;

// IPv6 extension headers (RFC 8200 4, RFC 4302) and the other next-header values the parser
// names.
inline constexpr uint8_t kIpv6HopByHop = 0;
inline constexpr uint8_t kIpv6Routing = 43;
inline constexpr uint8_t kIpv6Fragment = 44;
inline constexpr uint8_t kIpv6Esp = 50;
inline constexpr uint8_t kIpv6Ah = 51;
inline constexpr uint8_t kIpv6NoNextHeader = 59;
inline constexpr uint8_t kIpv6DestOptions = 60;

// ---- IPv4 / IPv6 headers --------------------------------------------------------------------

inline constexpr size_t kIpv4HeaderLen = 20;  // without options
inline constexpr size_t kIpv6HeaderLen = 40;
inline constexpr uint8_t kIpv4VersionIhl = 0x45;  // version 4, 5 words of header: no options

// IPv4 flags and fragment offset (the header's 16-bit word at offset 6).
inline constexpr uint16_t kIpv4DontFragment = 0x4000;
inline constexpr uint16_t kIpv4MoreFragments = 0x2000;
inline constexpr uint16_t kIpv4FragmentOffsetMask = 0x1FFF;  // in 8-byte units
inline constexpr uint16_t kIpv4FragmentBits = kIpv4MoreFragments | kIpv4FragmentOffsetMask;

// IPv6 fragment header (RFC 8200 4.5): 8 bytes; offset and M flag in its 16-bit word at 2.
inline constexpr size_t kIpv6FragmentHeaderLen = 8;
inline constexpr uint16_t kIpv6FragmentOffsetMask = 0xFFF8;  // offset in bytes, 8-byte units
inline constexpr uint16_t kIpv6MoreFragments = 0x0001;

// The smallest datagram every IPv4 host takes whole (RFC 791, RFC 1812 4.3.2.3) and the
// smallest link MTU of IPv6 (RFC 8200 5).
inline constexpr uint32_t kIpv4MinMtu = 576;
inline constexpr uint32_t kIpv6MinMtu = 1280;

// ---- TCP / UDP ------------------------------------------------------------------------------

inline constexpr size_t kUdpHeaderLen = 8;
inline constexpr size_t kTcpHeaderLen = 20;  // without options

// TCP flag bits (the header's 14th byte).
inline constexpr uint8_t kTcpFin = 0x01;
inline constexpr uint8_t kTcpSyn = 0x02;
inline constexpr uint8_t kTcpRst = 0x04;
inline constexpr uint8_t kTcpPsh = 0x08;
inline constexpr uint8_t kTcpAck = 0x10;
inline constexpr uint8_t kTcpUrg = 0x20;

// ---- GRE (RFC 2784, RFC 2890; the RFC 1701 bits a receiver must refuse) ---------------------

inline constexpr uint32_t kGreBaseLen = 4;  // flags and version, protocol type (an EtherType)
inline constexpr uint32_t kGreKeyLen = 4;
inline constexpr uint16_t kGreChecksumPresent = 0x8000;
inline constexpr uint16_t kGreRoutingPresent = 0x4000;
inline constexpr uint16_t kGreKeyPresent = 0x2000;
inline constexpr uint16_t kGreSeqPresent = 0x1000;
inline constexpr uint16_t kGreStrictSourceRoute = 0x0800;
inline constexpr uint16_t kGreRecursionHighBit = 0x0400;
inline constexpr uint16_t kGreVersionMask = 0x0007;

// ---- ICMP (RFC 792) and ICMPv6 (RFC 4443) ---------------------------------------------------

// Type, code and checksum: what every ICMP message starts with.
inline constexpr uint32_t kIcmpTypeCodeChecksumLen = 4;
// An error's header up to the quoted packet (+ unused / MTU / pointer): the quote starts here.
inline constexpr uint32_t kIcmpErrorHeaderLen = 8;
// An echo's header (+ identifier, sequence number).
inline constexpr uint32_t kIcmpEchoHeaderLen = 8;
// What RFC 792 guarantees an error quotes of the offending packet's L4 header.
inline constexpr uint32_t kIcmpQuotedL4Len = 8;

inline constexpr uint8_t kIcmpEchoReply = 0;
inline constexpr uint8_t kIcmpDestUnreachable = 3;
inline constexpr uint8_t kIcmpSourceQuench = 4;
inline constexpr uint8_t kIcmpRedirect = 5;
inline constexpr uint8_t kIcmpEchoRequest = 8;
inline constexpr uint8_t kIcmpTimeExceeded = 11;
inline constexpr uint8_t kIcmpParameterProblem = 12;
inline constexpr uint8_t kIcmpCodeFragNeeded = 4;  // code of a destination unreachable

inline constexpr uint8_t kIcmpv6DestUnreachable = 1;
inline constexpr uint8_t kIcmpv6PacketTooBig = 2;
inline constexpr uint8_t kIcmpv6TimeExceeded = 3;
inline constexpr uint8_t kIcmpv6ParameterProblem = 4;
inline constexpr uint8_t kIcmpv6EchoRequest = 128;
inline constexpr uint8_t kIcmpv6EchoReply = 129;

}  // namespace l4mux
