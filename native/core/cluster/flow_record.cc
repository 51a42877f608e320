#include "flow_record.h"

#include <cstring>

#include "../bytes.h"

namespace l4mux::cluster {
namespace {

constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool is_mapped(const uint8_t* in16) { return std::memcmp(in16, kMappedPrefix, sizeof(kMappedPrefix)) == 0; }

// The flow's own addresses must be of its family: a mapped address in an IPv6 flow, or a
// plain IPv6 one in an IPv4 flow, would name a different connection.
bool address_of_family(const uint8_t* in16, Family family) {
  return family == Family::kIpv4 ? is_mapped(in16) : !is_mapped(in16);
}

bool is_unspecified(const uint8_t* in16) {
  static constexpr uint8_t kZero[16] = {};
  return std::memcmp(in16, kZero, sizeof(kZero)) == 0;
}

}  // namespace

std::string_view record_error_name(RecordError e) {
  static constexpr std::string_view kNames[] = {
#define L4MUX_X(name, str) str,
      L4MUX_RECORD_ERRORS(L4MUX_X)
#undef L4MUX_X
  };
  const auto i = static_cast<size_t>(e);
  return i < static_cast<size_t>(RecordError::kCount) ? kNames[i] : "unknown";
}

void to_wire_address(const IpAddr& a, uint8_t* out16) {
  if (a.is_v4()) {
    std::memcpy(out16, kMappedPrefix, sizeof(kMappedPrefix));
    std::memcpy(out16 + 12, a.bytes.data(), 4);
  } else {
    std::memcpy(out16, a.bytes.data(), 16);
  }
}

IpAddr from_wire_address(const uint8_t* in16) {
  return is_mapped(in16) ? IpAddr::v4(in16 + 12) : IpAddr::v6(in16);
}

void encode_flow_record(const FlowRecord& r, uint8_t* out) {
  out[0] = kFlowRecordVersion;
  out[1] = static_cast<uint8_t>(r.kind);
  out[2] = static_cast<uint8_t>(r.key.family);
  out[3] = r.key.proto;
  out[4] = r.flags;
  out[5] = r.owner;
  out[6] = r.backup;
  out[7] = r.peer;
  IpAddr client;
  IpAddr vip;
  client.family = vip.family = r.key.family;
  client.bytes = r.key.src;
  vip.bytes = r.key.dst;
  to_wire_address(client, out + 8);
  to_wire_address(vip, out + 24);
  if (r.backend.family == Family::kNone) {
    std::memset(out + 40, 0, 16);
  } else {
    to_wire_address(r.backend, out + 40);
  }
  store_be16(out + 56, r.key.src_port);
  store_be16(out + 58, r.key.dst_port);
  store_be32(out + 60, r.lifetime_s);
}

RecordError decode_flow_record(const uint8_t* in, size_t len, FlowRecord* out) {
  if (len < kFlowRecordSize) return RecordError::kTruncated;
  if (in[0] != kFlowRecordVersion) return RecordError::kBadVersion;
  if (in[1] < static_cast<uint8_t>(RecordKind::kNew) || in[1] > static_cast<uint8_t>(RecordKind::kTeach)) {
    return RecordError::kBadKind;
  }
  const uint8_t family = in[2];
  if (family != 4 && family != 6) return RecordError::kBadFamily;
  if (in[3] != kProtoTcp && in[3] != kProtoUdp) return RecordError::kBadProtocol;
  if ((in[4] & ~kRecordKnownFlags) != 0) return RecordError::kBadFlags;
  const auto kind = static_cast<RecordKind>(in[1]);
  // Only a teach record names a peer, and it must.
  if ((kind == RecordKind::kTeach) != (in[7] != kNoMember)) return RecordError::kBadMember;

  const Family fam = family == 4 ? Family::kIpv4 : Family::kIpv6;
  if (!address_of_family(in + 8, fam) || !address_of_family(in + 24, fam)) return RecordError::kBadAddress;
  // An end record may leave the backend unspecified; every other kind names one.
  const bool no_backend = is_unspecified(in + 40);
  if (no_backend && kind != RecordKind::kEnd) return RecordError::kBadAddress;

  FlowRecord r;
  r.kind = kind;
  r.flags = in[4];
  r.owner = in[5];
  r.backup = in[6];
  r.peer = in[7];
  r.key = FlowKey{};
  r.key.family = fam;
  r.key.proto = in[3];
  r.key.src = from_wire_address(in + 8).bytes;
  r.key.dst = from_wire_address(in + 24).bytes;
  r.key.src_port = load_be16(in + 56);
  r.key.dst_port = load_be16(in + 58);
  r.backend = no_backend ? IpAddr{} : from_wire_address(in + 40);
  r.lifetime_s = load_be32(in + 60);
  *out = r;
  return RecordError::kOk;
}

}  // namespace l4mux::cluster
