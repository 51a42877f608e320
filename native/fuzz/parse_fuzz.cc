// libFuzzer target: parse_frame on arbitrary bytes. ASan/UBSan catch any read outside the
// frame (libFuzzer hands over an exactly-sized heap copy); the checks below catch results
// that would make the pipeline read or write outside it later, and any frame that
// parse_plain_flow reads differently from parse_frame.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "parse.h"

using namespace l4mux;

namespace {

// Not assert(): it must hold in every build type the fuzzer is compiled with.
#define PARSE_FUZZ_CHECK(cond)     \
  do {                             \
    if (!(cond)) __builtin_trap(); \
  } while (0)

void check_ok(const ParsedPacket& p, size_t size) {
  const size_t l3_end = size_t{p.l3_offset} + p.l3_length;
  PARSE_FUZZ_CHECK(p.l3_offset == 14 || p.l3_offset == 18 || p.l3_offset == 22);
  PARSE_FUZZ_CHECK(p.l3_offset <= size);
  PARSE_FUZZ_CHECK(l3_end <= size);
  PARSE_FUZZ_CHECK(p.l4_offset >= p.l3_offset && p.l4_offset <= l3_end);
  PARSE_FUZZ_CHECK(p.family == Family::kIpv4 || p.family == Family::kIpv6);
  PARSE_FUZZ_CHECK(p.src.family == p.family && p.dst.family == p.family);
  const size_t min_header = p.family == Family::kIpv4 ? 20 : 40;
  PARSE_FUZZ_CHECK(p.l3_length >= min_header && p.l4_offset >= p.l3_offset + min_header);

  // What the pipeline relies on before touching the L4 header in place.
  const size_t l4_avail = l3_end - p.l4_offset;
  if (p.has_l4) {
    PARSE_FUZZ_CHECK(!p.is_fragment || p.proto == kProtoTcp || p.proto == kProtoUdp ||
                     p.proto == kProtoIcmp || p.proto == kProtoIcmpv6);
    switch (p.proto) {
      case kProtoTcp:
        PARSE_FUZZ_CHECK(l4_avail >= 20);
        break;
      case kProtoUdp:
        PARSE_FUZZ_CHECK(l4_avail >= 8);
        break;
      case kProtoIcmp:
      case kProtoIcmpv6:
        PARSE_FUZZ_CHECK(l4_avail >= 4);
        break;
      default:
        PARSE_FUZZ_CHECK(false);  // other protocols are opaque
    }
  } else {
    PARSE_FUZZ_CHECK(p.src_port == 0 && p.dst_port == 0 && p.tcp_flags == 0);
    PARSE_FUZZ_CHECK(!p.embedded.present);
  }
  if (p.embedded.present) {
    PARSE_FUZZ_CHECK(p.proto == kProtoIcmp || p.proto == kProtoIcmpv6);
    PARSE_FUZZ_CHECK(p.embedded.family == p.family);
    PARSE_FUZZ_CHECK(p.embedded.src.family == p.family && p.embedded.dst.family == p.family);
  }

  // The flow key is 40 plain bytes: unused address bytes and padding zero.
  const FlowKey k = p.flow_key();
  uint8_t raw[sizeof(FlowKey)];
  std::memcpy(raw, &k, sizeof raw);
  PARSE_FUZZ_CHECK(raw[38] == 0 && raw[39] == 0);
  if (p.family == Family::kIpv4) {
    for (size_t i = 4; i < 16; ++i) PARSE_FUZZ_CHECK(raw[i] == 0 && raw[16 + i] == 0);
  }
  PARSE_FUZZ_CHECK(k == p.flow_key());
}

bool same(const IpAddr& a, const IpAddr& b) { return a == b; }

bool same(const ParsedPacket& a, const ParsedPacket& b) {
  const EmbeddedHeader& x = a.embedded;
  const EmbeddedHeader& y = b.embedded;
  return a.l3_offset == b.l3_offset && a.l4_offset == b.l4_offset && a.l3_length == b.l3_length &&
         a.family == b.family && a.proto == b.proto && same(a.src, b.src) && same(a.dst, b.dst) &&
         a.src_port == b.src_port && a.dst_port == b.dst_port && a.tcp_flags == b.tcp_flags &&
         a.traffic_class == b.traffic_class && a.dont_fragment == b.dont_fragment &&
         a.is_fragment == b.is_fragment && a.has_l4 == b.has_l4 && a.has_vlan == b.has_vlan &&
         a.vlan_tci == b.vlan_tci && a.icmp_type == b.icmp_type && a.icmp_code == b.icmp_code &&
         x.present == y.present &&
         (!x.present || (x.family == y.family && x.proto == y.proto && same(x.src, y.src) &&
                         same(x.dst, y.dst) && x.src_port == y.src_port && x.dst_port == y.dst_port));
}

// An 802.1Q-tagged ICMP "fragmentation needed" quoting a TCP header: sets nearly every field.
constexpr uint8_t kPrimer[] = {
    0x02, 0,    0,    0,    0,    0x01, 0x02, 0,    0,  0, 0, 0xfe,  // MACs
    0x81, 0x00, 0x00, 0x2a, 0x08, 0x00,                              // VLAN 42, IPv4
    0x45, 0x00, 0x00, 0x38, 0,    0,    0x40, 0,    64, 1, 0, 0,     // IPv4, total 56, DF, ICMP
    203,  0,    113,  1,    192,  0,    2,    10,                    // router -> VIP
    3,    4,    0,    0,    0,    0,    0x05, 0x78,                  // frag needed, MTU 1400
    0x45, 0x00, 0x05, 0xdc, 0,    0,    0x40, 0,    64, 6, 0, 0,     // quoted IPv4, total 1500, TCP
    192,  0,    2,    10,   198,  51,   100,  7,                     // VIP -> client
    0x00, 0x50, 0x9c, 0x40, 0,    0,    0,    1,                     // ports 80 -> 40000, sequence
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > UINT32_MAX) return 0;
  ParsedPacket p;
  const ParseResult r = parse_frame(data, static_cast<uint32_t>(size), p);
  switch (r.status) {
    case ParseStatus::kOk:
      check_ok(p, size);
      break;
    case ParseStatus::kNotIp:
      break;
    case ParseStatus::kMalformed:
      PARSE_FUZZ_CHECK(static_cast<size_t>(r.reason) < kDropReasonCount);
      break;
    default:
      PARSE_FUZZ_CHECK(false);
  }

  // The pipeline reuses one ParsedPacket per batch slot: parsing into one that still holds
  // a previous packet (tagged, ICMP error with a quote) must give exactly the same result.
  ParsedPacket reused;
  PARSE_FUZZ_CHECK(parse_frame(kPrimer, sizeof kPrimer, reused).status == ParseStatus::kOk);
  PARSE_FUZZ_CHECK(reused.embedded.present && reused.has_vlan);
  const ParseResult r2 = parse_frame(data, static_cast<uint32_t>(size), reused);
  PARSE_FUZZ_CHECK(r2.status == r.status);
  if (r.status == ParseStatus::kMalformed) PARSE_FUZZ_CHECK(r2.reason == r.reason);
  if (r.status == ParseStatus::kOk) PARSE_FUZZ_CHECK(same(p, reused));

  // The plain lane's parser: whatever it accepts, parse_frame parses the same way.
  FlowKey key;
  PlainFlow plain;
  if (parse_plain_flow(data, static_cast<uint32_t>(size), key, plain)) {
    PARSE_FUZZ_CHECK(r.status == ParseStatus::kOk);
    PARSE_FUZZ_CHECK(key == p.flow_key());
    PARSE_FUZZ_CHECK(p.l3_offset == kPlainL3Offset && p.has_l4 && !p.is_fragment);
    PARSE_FUZZ_CHECK(p.proto == kProtoTcp || p.proto == kProtoUdp);
    PARSE_FUZZ_CHECK(plain.l3_length == p.l3_length && plain.tcp_flags == p.tcp_flags &&
                     plain.traffic_class == p.traffic_class &&
                     plain.dont_fragment == p.dont_fragment);
  }
  return 0;
}
