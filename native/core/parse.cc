#include "parse.h"

#include <algorithm>

#include "bytes.h"

// Conventions of this file: every offset is a uint32_t counted from the start of the frame,
// and every region is a half-open [off, end) with off <= end <= len, so that `end - off`
// never wraps. A field is read only after the bytes holding it were proven to lie inside
// the region (not merely inside the frame): bytes past the IP packet's stated length are
// Ethernet padding, never headers.

namespace l4mux {
namespace {

// `reason` is only meaningful for kMalformed.
constexpr ParseResult ok() { return ParseResult{ParseStatus::kOk, DropReason::kEthTruncated}; }
constexpr ParseResult not_ip() {
  return ParseResult{ParseStatus::kNotIp, DropReason::kEthTruncated};
}
constexpr ParseResult malformed(DropReason r) { return ParseResult{ParseStatus::kMalformed, r}; }

bool is_icmp_error(Family family, uint8_t type) {
  if (family == Family::kIpv4) {
    // destination unreachable, source quench, redirect, time exceeded, parameter problem
    return type == kIcmpDestUnreachable || type == kIcmpSourceQuench || type == kIcmpRedirect ||
           type == kIcmpTimeExceeded || type == kIcmpParameterProblem;
  }
  // destination unreachable, packet too big, time exceeded, parameter problem
  return type >= kIcmpv6DestUnreachable && type <= kIcmpv6ParameterProblem;
}

bool is_icmp_echo(Family family, uint8_t type) {
  return family == Family::kIpv4 ? (type == kIcmpEchoReply || type == kIcmpEchoRequest)
                                 : (type == kIcmpv6EchoRequest || type == kIcmpv6EchoReply);
}

// ---- IPv6 extension header chain ----------------------------------------------------------

enum class ChainStatus : uint8_t { kOk, kTruncated, kTooMany };

struct Ipv6Chain {
  uint8_t proto = 0;       // the first next-header value that is not a walked extension
  uint32_t l4_offset = 0;  // where that header starts
  bool is_fragment = false;
  bool first_fragment = true;  // false: a non-first fragment, nothing past l4_offset is a header
  uint32_t fragment_offset = 0;  // bytes, of a non-first fragment
};

// Walks the extension headers in [off, end) starting with next-header `nh`. Stops at the
// first protocol that is not an extension header it knows (TCP, UDP, ICMPv6, no next header,
// ESP whose contents are encrypted, anything else), and at the fragment header of a
// non-first fragment (what follows is the middle of the datagram).
ChainStatus walk_ipv6_chain(const uint8_t* frame, uint32_t off, uint32_t end, uint8_t nh,
                            Ipv6Chain& chain) {
  for (int walked = 0;; ++walked) {
    uint32_t size = 0;
    switch (nh) {
      case kIpv6HopByHop:
      case kIpv6Routing:
      case kIpv6DestOptions:
      case kIpv6Fragment:
      case kIpv6Ah:
        break;
      default:
        chain.proto = nh;
        chain.l4_offset = off;
        return ChainStatus::kOk;
    }
    // Bounds the per-packet work: a long chain is a classic way to slip past filters.
    if (walked == kMaxIpv6ExtHeaders) return ChainStatus::kTooMany;
    if (end - off < 8) return ChainStatus::kTruncated;  // every extension header is >= 8 bytes
    const uint8_t* h = frame + off;
    if (nh == kIpv6Fragment) {
      size = kIpv6FragmentHeaderLen;
      const uint16_t offset_flags = load_be16(h + 2);
      const bool more = (offset_flags & kIpv6MoreFragments) != 0;
      const uint16_t frag_offset = offset_flags & kIpv6FragmentOffsetMask;
      // An "atomic fragment" (offset 0, M clear; RFC 6946) is a whole packet: not a fragment.
      if (more || frag_offset != 0) chain.is_fragment = true;
      if (frag_offset != 0) {
        chain.first_fragment = false;
        chain.fragment_offset = frag_offset;
        chain.proto = h[0];
        chain.l4_offset = off + size;
        return ChainStatus::kOk;
      }
    } else if (nh == kIpv6Ah) {
      size = (uint32_t{h[1]} + 2) * 4;  // RFC 4302: in 4-byte units, minus 2
    } else {
      size = (uint32_t{h[1]} + 1) * 8;  // RFC 8200: in 8-byte units, not counting the first 8
    }
    if (size > end - off) return ChainStatus::kTruncated;
    nh = h[0];
    off += size;
  }
}

// ---- ICMP / ICMPv6 error: the quoted packet ------------------------------------------------

// Parses the IP header quoted in an ICMP error, in [off, end), and the first 8 bytes of its
// L4 header. The quote is usually shorter than the total length it states (routers quote
// only the start), so that length only ever narrows the region, never has to be present.
ParseResult parse_embedded(const uint8_t* frame, uint32_t off, uint32_t end, Family family,
                           EmbeddedHeader& e) {
  e = EmbeddedHeader{};
  const uint8_t* ip = frame + off;
  const uint32_t avail = end - off;
  uint32_t l4 = 0;
  uint32_t l4_end = 0;
  uint8_t proto = 0;
  bool first_fragment = true;
  if (family == Family::kIpv4) {
    if (avail < kIpv4HeaderLen) return malformed(DropReason::kIcmpEmbeddedTruncated);
    if ((ip[0] >> 4) != 4) return malformed(DropReason::kIcmpEmbeddedMalformed);
    const uint32_t ihl = uint32_t{ip[0] & 0x0Fu} * 4;
    if (ihl < kIpv4HeaderLen) return malformed(DropReason::kIcmpEmbeddedMalformed);
    if (ihl > avail) return malformed(DropReason::kIcmpEmbeddedTruncated);
    const uint32_t total = load_be16(ip + 2);
    if (total < ihl) return malformed(DropReason::kIcmpEmbeddedMalformed);
    first_fragment = (load_be16(ip + 6) & kIpv4FragmentOffsetMask) == 0;
    proto = ip[9];
    e.src = IpAddr::v4(ip + 12);
    e.dst = IpAddr::v4(ip + 16);
    l4 = off + ihl;
    l4_end = off + std::min(total, avail);
  } else {
    if (avail < kIpv6HeaderLen) return malformed(DropReason::kIcmpEmbeddedTruncated);
    if ((ip[0] >> 4) != 6) return malformed(DropReason::kIcmpEmbeddedMalformed);
    const uint32_t total = kIpv6HeaderLen + load_be16(ip + 4);
    const uint32_t chain_end = off + std::min(total, avail);
    Ipv6Chain chain;
    switch (walk_ipv6_chain(frame, off + kIpv6HeaderLen, chain_end, ip[6], chain)) {
      case ChainStatus::kOk:
        break;
      case ChainStatus::kTruncated:
        return malformed(DropReason::kIcmpEmbeddedTruncated);
      case ChainStatus::kTooMany:
        return malformed(DropReason::kIcmpEmbeddedMalformed);
    }
    first_fragment = chain.first_fragment;
    proto = chain.proto;
    e.src = IpAddr::v6(ip + 8);
    e.dst = IpAddr::v6(ip + 24);
    l4 = chain.l4_offset;
    l4_end = chain_end;
  }
  // A quoted non-first fragment carries no ports, so it cannot be tied to a flow: leave the
  // quote absent (the pipeline then treats the error as one it cannot forward).
  if (!first_fragment) return ok();
  if (proto == kProtoTcp || proto == kProtoUdp) {
    if (l4_end - l4 < kIcmpQuotedL4Len) return malformed(DropReason::kIcmpEmbeddedTruncated);
    e.src_port = load_be16(frame + l4);
    e.dst_port = load_be16(frame + l4 + 2);
  }
  e.family = family;
  e.proto = proto;
  e.present = true;
  return ok();
}

// ---- L4 -------------------------------------------------------------------------------------

// ICMP / ICMPv6 at out.l4_offset: type, code and, for errors, the quoted packet.
ParseResult parse_icmp(const uint8_t* frame, uint32_t end, ParsedPacket& out) {
  const uint32_t off = out.l4_offset;
  const uint8_t* l4 = frame + off;
  const uint32_t avail = end - off;
  // ICMP in IPv6 or ICMPv6 in IPv4 is nonsense: leave it opaque (has_l4 false) so that
  // nothing treats it as an echo or an error of the wrong family.
  const Family expected = out.proto == kProtoIcmp ? Family::kIpv4 : Family::kIpv6;
  if (out.family != expected) return ok();
  if (avail < kIcmpTypeCodeChecksumLen) return malformed(DropReason::kIcmpTruncated);
  out.icmp_type = l4[0];
  out.icmp_code = l4[1];
  if (is_icmp_echo(out.family, out.icmp_type)) {
    if (avail < kIcmpEchoHeaderLen) return malformed(DropReason::kIcmpTruncated);
  } else if (is_icmp_error(out.family, out.icmp_type)) {
    if (avail < kIcmpErrorHeaderLen) return malformed(DropReason::kIcmpTruncated);
    const ParseResult r =
        parse_embedded(frame, off + kIcmpErrorHeaderLen, end, out.family, out.embedded);
    if (r.status != ParseStatus::kOk) return r;
  }
  out.has_l4 = true;
  return ok();
}

// Parses the L4 header at out.l4_offset, inside the IP payload that ends at `end`. For the
// first fragment of a datagram the header must still be complete (RFC 1858, RFC 8200 4.5),
// but length fields describing the whole datagram cannot be checked against the fragment.
// Always inlined: TCP and UDP are nearly every packet, and the call cost as much as the work.
[[gnu::always_inline]] inline ParseResult parse_l4(const uint8_t* frame, uint32_t end, ParsedPacket& out) {
  const uint32_t off = out.l4_offset;
  const uint8_t* l4 = frame + off;
  const uint32_t avail = end - off;
  switch (out.proto) {
    case kProtoTcp: {
      if (avail < kTcpHeaderLen) return malformed(DropReason::kTcpTruncated);
      const uint32_t data_offset = (uint32_t{l4[12]} >> 4) * 4;
      if (data_offset < kTcpHeaderLen || data_offset > avail) {
        return malformed(DropReason::kTcpBadDataOffset);
      }
      out.src_port = load_be16(l4);
      out.dst_port = load_be16(l4 + 2);
      out.tcp_flags = l4[13];
      out.has_l4 = true;
      return ok();
    }
    case kProtoUdp: {
      if (avail < kUdpHeaderLen) return malformed(DropReason::kUdpTruncated);
      const uint32_t udp_len = load_be16(l4 + 4);
      // A UDP length shorter than the IP payload is allowed (trailing bytes, RFC 768 and the
      // UDP options draft); longer is not, except in a first fragment where it counts the
      // whole datagram.
      if (udp_len < kUdpHeaderLen || (!out.is_fragment && udp_len > avail)) {
        return malformed(DropReason::kUdpBadLength);
      }
      out.src_port = load_be16(l4);
      out.dst_port = load_be16(l4 + 2);
      out.has_l4 = true;
      return ok();
    }
    case kProtoIcmp:
    case kProtoIcmpv6:
      return parse_icmp(frame, end, out);
    default:
      // GRE, ESP, SCTP, no-next-header...: the pipeline decides what to do with them.
      return ok();
  }
}

// ---- L3 -------------------------------------------------------------------------------------

ParseResult parse_ipv4(const uint8_t* frame, uint32_t len, ParsedPacket& out) {
  const uint32_t l3 = out.l3_offset;
  const uint8_t* ip = frame + l3;
  const uint32_t avail = len - l3;
  if (avail < kIpv4HeaderLen) return malformed(DropReason::kIpv4Truncated);
  if ((ip[0] >> 4) != 4) return malformed(DropReason::kIpv4BadVersion);
  const uint32_t ihl = uint32_t{ip[0] & 0x0Fu} * 4;
  if (ihl < kIpv4HeaderLen) return malformed(DropReason::kIpv4BadHeaderLength);
  if (ihl > avail) return malformed(DropReason::kIpv4Truncated);
  // Bytes past total length are Ethernet padding (minimum frame size) and stay outside
  // l3_length; a total length past the frame means the packet was cut.
  const uint32_t total = load_be16(ip + 2);
  if (total < ihl || total > avail) return malformed(DropReason::kIpv4BadTotalLength);
  // The header checksum is not verified: every router on the way (and the NIC, which
  // usually flags bad ones) has checked it already, and the backend's stack checks it again
  // after decapsulation; recomputing it here would cost a pass over the header per packet.

  const uint16_t frag = load_be16(ip + 6);
  const bool more_fragments = (frag & kIpv4MoreFragments) != 0;
  const uint16_t frag_offset = frag & kIpv4FragmentOffsetMask;
  out.family = Family::kIpv4;
  out.traffic_class = ip[1];
  out.dont_fragment = (frag & kIpv4DontFragment) != 0;
  out.is_fragment = more_fragments || frag_offset != 0;
  out.proto = ip[9];
  out.src = IpAddr::v4(ip + 12);
  out.dst = IpAddr::v4(ip + 16);
  out.l3_length = static_cast<uint16_t>(total);
  out.l4_offset = static_cast<uint16_t>(l3 + ihl);  // options are skipped, not interpreted
  // A non-first fragment starts in the middle of the datagram: no L4 header to read. One
  // reaching past 65535 bytes builds an impossible datagram (the "ping of death"); one at
  // offset 8 of a TCP datagram rewrites the first fragment's ports and flags (RFC 1858).
  if (frag_offset != 0) {
    if (uint32_t{frag_offset} * 8 + (total - ihl) > 0xFFFF) return malformed(DropReason::kFragmentTooLong);
    if (out.proto == kProtoTcp && frag_offset == 1) return malformed(DropReason::kFragmentOverlapsHeader);
    return ok();
  }
  return parse_l4(frame, l3 + total, out);
}

ParseResult parse_ipv6(const uint8_t* frame, uint32_t len, ParsedPacket& out) {
  const uint32_t l3 = out.l3_offset;
  const uint8_t* ip = frame + l3;
  const uint32_t avail = len - l3;
  if (avail < kIpv6HeaderLen) return malformed(DropReason::kIpv6Truncated);
  if ((ip[0] >> 4) != 6) return malformed(DropReason::kIpv6BadVersion);
  const uint32_t total = kIpv6HeaderLen + load_be16(ip + 4);
  // The second bound keeps l3_length representable; only a frame over 64 KiB can reach it.
  // A payload length of 0 with a jumbo payload option (RFC 2675) is not supported: it is
  // taken literally, and the missing L4 header is then reported.
  if (total > avail || total > 0xFFFF) return malformed(DropReason::kIpv6BadPayloadLength);

  out.family = Family::kIpv6;
  out.traffic_class = static_cast<uint8_t>(load_be32(ip) >> 20);
  out.dont_fragment = true;
  out.src = IpAddr::v6(ip + 8);
  out.dst = IpAddr::v6(ip + 24);
  out.l3_length = static_cast<uint16_t>(total);

  Ipv6Chain chain;
  switch (walk_ipv6_chain(frame, l3 + kIpv6HeaderLen, l3 + total, ip[6], chain)) {
    case ChainStatus::kOk:
      break;
    case ChainStatus::kTruncated:
      return malformed(DropReason::kIpv6ExtHeaderTruncated);
    case ChainStatus::kTooMany:
      return malformed(DropReason::kIpv6TooManyExtHeaders);
  }
  out.proto = chain.proto;
  out.is_fragment = chain.is_fragment;
  // l4_offset <= l3 + total <= 22 + 0xFFFF; the chain is at most 8 headers of <= 2 KiB, so
  // it is in fact far below 0xFFFF and the narrowing is exact.
  out.l4_offset = static_cast<uint16_t>(chain.l4_offset);
  if (!chain.first_fragment) {
    // The fragment's data starts at l4_offset: past 65535 bytes of datagram it is impossible.
    if (chain.fragment_offset + (l3 + total - chain.l4_offset) > 0xFFFF) {
      return malformed(DropReason::kFragmentTooLong);
    }
    if (out.proto == kProtoTcp && chain.fragment_offset == 8) return malformed(DropReason::kFragmentOverlapsHeader);
    return ok();
  }
  return parse_l4(frame, l3 + total, out);
}

}  // namespace

ParseResult parse_frame(const uint8_t* frame, uint32_t len, ParsedPacket& out) {
  // The caller reuses one ParsedPacket per batch slot: nothing of the previous packet may
  // leak into this one. Every IP packet's parse writes the addresses, lengths, family,
  // protocol and IP flags; what only some packets have is reset here (the quote of an ICMP
  // error is reset where it is parsed). Cheaper than clearing all ~100 bytes every packet,
  // and the parse fuzz target checks that a reused ParsedPacket parses exactly like a new one.
  out.src_port = 0;
  out.dst_port = 0;
  out.tcp_flags = 0;
  out.has_l4 = false;
  out.has_vlan = false;
  out.vlan_tci = 0;
  out.icmp_type = 0;
  out.icmp_code = 0;
  out.embedded.present = false;
  if (len < kEthHeaderLen) return malformed(DropReason::kEthTruncated);

  // Up to two VLAN tags: 802.1Q, 802.1ad (S-tag, alone or outside a C-tag) or the older
  // double 802.1Q. `type_at` is where the current EtherType / TPID sits.
  uint32_t type_at = kEthTypeOffset;
  uint16_t type = load_be16(frame + type_at);
  for (int tags = 0; tags < 2; ++tags) {
    const bool tag =
        type == kEthTypeVlan || (tags == 0 && type == kEthTypeQinQ);  // S-tag only outermost
    if (!tag) break;
    // TPID (2) + TCI (2), then the next EtherType (2).
    if (len - type_at < 6) return malformed(DropReason::kVlanTruncated);
    if (tags == 0) {
      // The outer tag: the VLAN the frame arrived on (for QinQ, the service VLAN).
      out.has_vlan = true;
      out.vlan_tci = load_be16(frame + type_at + 2);
    }
    type_at += kVlanTagLen;
    type = load_be16(frame + type_at);
  }
  // A third tag (or an S-tag inside a tag) leaves a VLAN TPID here: not IP as far as we know,
  // so it goes to the kernel like any other non-IP frame.
  out.l3_offset = static_cast<uint16_t>(type_at + 2);

  switch (type) {
    case kEthTypeIpv4:
      return parse_ipv4(frame, len, out);
    case kEthTypeIpv6:
      return parse_ipv6(frame, len, out);
    default:
      return not_ip();
  }
}

FlowKey ParsedPacket::flow_key() const {
  // FlowKey has no implicit padding (40 bytes, asserted in types.h) and value-initialises
  // its unused address bytes and pad, so the key hashes and compares as plain bytes.
  FlowKey key{};
  key.src = src.bytes;
  key.dst = dst.bytes;
  key.src_port = src_port;
  key.dst_port = dst_port;
  key.proto = proto;
  key.family = family;
  return key;
}

}  // namespace l4mux
