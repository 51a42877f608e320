#include "decap.h"

#include <algorithm>
#include <cstring>

#include "bytes.h"
#include "checksum.h"

namespace l4mux {
namespace {

// RFC 2784 section 2.3: a receiver not implementing RFC 1701 MUST discard packets with any
// of bits 1-5 set; RFC 2890 gives bits 2 (key) and 3 (sequence) their meaning back.
constexpr uint16_t kGreRefusedFlags = kGreRoutingPresent | kGreStrictSourceRoute | kGreRecursionHighBit;

DecapResult fail(DecapResult r, DecapStatus s) {
  r.status = s;
  return r;
}

bool address_less(const IpAddr& a, const IpAddr& b) {
  if (a.family != b.family) return a.family < b.family;
  return a.bytes < b.bytes;
}

IpAddr outer_source(Family family, const uint8_t* outer_ip) {
  return family == Family::kIpv4 ? IpAddr::v4(outer_ip + 12) : IpAddr::v6(outer_ip + 8);
}

// The inner packet must be an IP packet of `expected` family whose own length fills the
// tunnel payload [p, p + avail) exactly.
DecapResult inner_packet(DecapResult r, const uint8_t* frame, const uint8_t* p, uint32_t avail,
                         Family expected, const DecapConfig& config) {
  if (avail == 0) return fail(r, DecapStatus::kInnerTruncated);
  const uint8_t version = p[0] >> 4;
  if (version != static_cast<uint8_t>(expected)) return fail(r, DecapStatus::kInnerVersionMismatch);
  if (expected == Family::kIpv4) {
    if (avail < kIpv4HeaderLen) return fail(r, DecapStatus::kInnerTruncated);
    const uint32_t ihl = uint32_t{p[0] & 0x0fu} * 4;
    if (ihl < kIpv4HeaderLen) return fail(r, DecapStatus::kInnerBadHeader);
    const uint32_t total = load_be16(p + 2);
    if (total != avail) return fail(r, DecapStatus::kInnerBadLength);
    if (ihl > total) return fail(r, DecapStatus::kInnerBadHeader);
    if (!config.is_vip(IpAddr::v4(p + 16))) return fail(r, DecapStatus::kInnerNotVip);
  } else {
    if (avail < kIpv6HeaderLen) return fail(r, DecapStatus::kInnerTruncated);
    if (kIpv6HeaderLen + load_be16(p + 4) != avail) return fail(r, DecapStatus::kInnerBadLength);
    if (!config.is_vip(IpAddr::v6(p + 24))) return fail(r, DecapStatus::kInnerNotVip);
  }
  r.status = DecapStatus::kOk;
  r.inner = expected;
  r.inner_offset = static_cast<uint32_t>(p - frame);
  r.inner_length = avail;
  return r;
}

DecapResult gre(DecapResult r, const uint8_t* frame, const uint8_t* p, uint32_t avail,
                const DecapConfig& config, uint32_t flags) {
  r.kind = Encap::kGre;
  if (avail < 4) return fail(r, DecapStatus::kGreTruncated);
  const uint16_t gre_flags = load_be16(p);
  const uint16_t proto = load_be16(p + 2);
  if ((gre_flags & kGreVersionMask) != 0 || (gre_flags & kGreRefusedFlags) != 0) {
    return fail(r, DecapStatus::kGreUnsupported);
  }
  const bool has_csum = (gre_flags & kGreChecksumPresent) != 0;
  const bool has_key = (gre_flags & kGreKeyPresent) != 0;
  const bool has_seq = (gre_flags & kGreSeqPresent) != 0;
  const uint32_t hlen = 4 + (has_csum ? 4 : 0) + (has_key ? 4 : 0) + (has_seq ? 4 : 0);
  if (avail < hlen) return fail(r, DecapStatus::kGreTruncated);
  // The checksum covers the GRE header and the payload (RFC 2784 section 2.5).
  if (has_csum && (flags & kDecapChecksumNotReady) == 0 && csum_fold(csum_partial(p, avail)) != 0) {
    return fail(r, DecapStatus::kGreBadChecksum);
  }
  if (has_key != config.has_gre_key) return fail(r, DecapStatus::kGreWrongKey);
  if (has_key && load_be32(p + 4 + (has_csum ? 4 : 0)) != config.gre_key) {
    return fail(r, DecapStatus::kGreWrongKey);
  }
  Family inner = Family::kNone;
  if (proto == kEthTypeIpv4) {
    inner = Family::kIpv4;
  } else if (proto == kEthTypeIpv6) {
    inner = Family::kIpv6;
  } else {
    return fail(r, DecapStatus::kGreNotIp);
  }
  return inner_packet(r, frame, p + hlen, avail - hlen, inner, config);
}

DecapResult gue(DecapResult r, const uint8_t* frame, const uint8_t* p, uint32_t avail,
                const uint8_t* outer_ip, const DecapConfig& config, uint32_t flags) {
  if (avail < kUdpHeaderLen) return fail(r, DecapStatus::kUdpTruncated);
  if (!config.accepts_gue_port(load_be16(p + 2))) return fail(r, DecapStatus::kNotGuePort);
  r.kind = Encap::kGue;
  if (!config.from_mux(outer_source(r.outer, outer_ip))) return fail(r, DecapStatus::kSourceNotMux);
  const uint32_t udp_len = load_be16(p + 4);
  // Bytes after the UDP length inside the IP payload are ignored, as the kernel does.
  if (udp_len < kUdpHeaderLen || udp_len > avail) return fail(r, DecapStatus::kUdpBadLength);
  const uint16_t check = load_be16(p + 6);
  if (check == 0) {
    // "No checksum" exists only over IPv4 (RFC 768); IPv6 requires one (RFC 8200).
    if (r.outer == Family::kIpv6) return fail(r, DecapStatus::kUdpBadChecksum);
  } else if ((flags & kDecapChecksumNotReady) == 0) {
    const IpAddr src = outer_source(r.outer, outer_ip);
    const IpAddr dst = r.outer == Family::kIpv4 ? IpAddr::v4(outer_ip + 16) : IpAddr::v6(outer_ip + 24);
    const uint32_t sum = pseudo_header_sum(src, dst, kProtoUdp, udp_len);
    if (csum_fold(csum_partial(p, udp_len, sum)) != 0) return fail(r, DecapStatus::kUdpBadChecksum);
  }
  const uint8_t* inner = p + kUdpHeaderLen;
  const uint32_t inner_avail = udp_len - kUdpHeaderLen;
  if (inner_avail == 0) return fail(r, DecapStatus::kInnerTruncated);
  // Variant 1: the first two bits are 01, which is exactly the start of IPv4 (0100) and
  // IPv6 (0110). Variant 0 (00) carries a GUE header: not supported.
  switch (inner[0] >> 4) {
    case 4:
      return inner_packet(r, frame, inner, inner_avail, Family::kIpv4, config);
    case 6:
      return inner_packet(r, frame, inner, inner_avail, Family::kIpv6, config);
    default:
      return fail(r, DecapStatus::kGueUnsupported);
  }
}

}  // namespace

bool DecapConfig::is_vip(const IpAddr& destination) const {
  if (vips.empty()) return true;
  return std::binary_search(vips.begin(), vips.end(), destination, address_less);
}

void DecapConfig::sort_vips() {
  std::sort(vips.begin(), vips.end(), address_less);
  vips.erase(std::unique(vips.begin(), vips.end()), vips.end());
}

DecapResult decapsulate(const uint8_t* frame, uint32_t len, const DecapConfig& config, uint32_t flags) {
  DecapResult r;
  if (len < kEthHeaderLen) return fail(r, DecapStatus::kEthTruncated);
  uint32_t off = kEthHeaderLen;
  uint16_t type = load_be16(frame + kEthTypeOffset);
  // AF_PACKET hands frames over untagged (the kernel strips VLAN tags before its taps), but
  // captures and other sources may carry up to two tags (QinQ).
  for (int tags = 0; tags < 2 && (type == kEthTypeVlan || type == kEthTypeQinQ); ++tags) {
    if (len - off < kVlanTagLen) return fail(r, DecapStatus::kEthTruncated);
    type = load_be16(frame + off + 2);
    off += kVlanTagLen;
  }
  const uint8_t* ip = frame + off;
  const uint32_t avail = len - off;

  uint8_t proto = 0;
  const uint8_t* payload = nullptr;
  uint32_t payload_len = 0;
  bool fragment = false;
  bool later_fragment = false;  // no L4 header in this fragment

  if (type == kEthTypeIpv4) {
    r.outer = Family::kIpv4;
    if (avail < kIpv4HeaderLen) return fail(r, DecapStatus::kOuterTruncated);
    if ((ip[0] >> 4) != 4) return fail(r, DecapStatus::kOuterBadHeader);
    if (!config.ipv4.is_v4() || std::memcmp(ip + 16, config.ipv4.bytes.data(), 4) != 0) {
      return fail(r, DecapStatus::kNotOurAddress);
    }
    proto = ip[9];
    if (proto != kProtoIpip && proto != kProtoIpv6 && proto != kProtoGre && proto != kProtoUdp) {
      return fail(r, DecapStatus::kNotTunnel);
    }
    const uint32_t ihl = uint32_t{ip[0] & 0x0fu} * 4;
    if (ihl < kIpv4HeaderLen) return fail(r, DecapStatus::kOuterBadHeader);
    if (avail < ihl) return fail(r, DecapStatus::kOuterTruncated);
    const uint32_t total = load_be16(ip + 2);
    if (total < ihl) return fail(r, DecapStatus::kOuterBadLength);
    if (total > avail) return fail(r, DecapStatus::kOuterTruncated);  // Ethernet padding may follow
    if (csum_fold(csum_partial(ip, ihl)) != 0) return fail(r, DecapStatus::kOuterBadChecksum);
    const uint16_t frag = load_be16(ip + 6);
    fragment = (frag & kIpv4FragmentBits) != 0;  // MF or a fragment offset
    later_fragment = (frag & kIpv4FragmentOffsetMask) != 0;
    payload = ip + ihl;
    payload_len = total - ihl;
  } else if (type == kEthTypeIpv6) {
    r.outer = Family::kIpv6;
    if (avail < kIpv6HeaderLen) return fail(r, DecapStatus::kOuterTruncated);
    if ((ip[0] >> 4) != 6) return fail(r, DecapStatus::kOuterBadHeader);
    if (!config.ipv6.is_v6() || std::memcmp(ip + 24, config.ipv6.bytes.data(), 16) != 0) {
      return fail(r, DecapStatus::kNotOurAddress);
    }
    proto = ip[6];
    if (proto == kIpv6Fragment) {
      // A fragment of something: whether it is a tunnel packet is only known after
      // reassembly, which the agent does not do.
      return fail(r, DecapStatus::kOuterFragment);
    }
    if (proto != kProtoIpip && proto != kProtoIpv6 && proto != kProtoGre && proto != kProtoUdp) {
      return fail(r, DecapStatus::kNotTunnel);
    }
    payload_len = load_be16(ip + 4);
    if (payload_len > avail - kIpv6HeaderLen) return fail(r, DecapStatus::kOuterTruncated);
    payload = ip + kIpv6HeaderLen;
  } else {
    return fail(r, DecapStatus::kNotIp);
  }

  if (later_fragment) return fail(r, DecapStatus::kOuterFragment);
  // GUE is known to be ours only from its port: its source is checked in gue().
  if (proto != kProtoUdp && !config.from_mux(outer_source(r.outer, ip))) {
    if (proto == kProtoGre) r.kind = Encap::kGre;
    return fail(r, DecapStatus::kSourceNotMux);
  }
  switch (proto) {
    case kProtoIpip:
      if (fragment) return fail(r, DecapStatus::kOuterFragment);
      return inner_packet(r, frame, payload, payload_len, Family::kIpv4, config);
    case kProtoIpv6:
      if (fragment) return fail(r, DecapStatus::kOuterFragment);
      return inner_packet(r, frame, payload, payload_len, Family::kIpv6, config);
    case kProtoGre:
      if (fragment) {
        r.kind = Encap::kGre;
        return fail(r, DecapStatus::kOuterFragment);
      }
      return gre(r, frame, payload, payload_len, config, flags);
    default: {  // kProtoUdp
      // The first fragment of a UDP datagram shows its port: only GUE ones are ours.
      if (fragment) {
        if (payload_len < 4) return fail(r, DecapStatus::kUdpTruncated);
        if (!config.accepts_gue_port(load_be16(payload + 2))) return fail(r, DecapStatus::kNotGuePort);
        r.kind = Encap::kGue;
        return fail(r, DecapStatus::kOuterFragment);
      }
      return gue(r, frame, payload, payload_len, ip, config, flags);
    }
  }
}

}  // namespace l4mux
