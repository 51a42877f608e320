// Flow records: the fixed 64-byte unit in which connection-table entries leave and enter the
// fast path of a cluster mux (export rings -> pollFlowEvents, installFlows <- peers) and the
// basis of the entries cluster-ctl puts on the wire. The TypeScript mirror is
// src/cluster/record.ts; both sides are tested against the same bytes.
//
// Layout (multi-byte fields in network byte order):
//   off size field
//    0   1   version (kFlowRecordVersion)
//    1   1   kind: 1 new/update, 2 end (FIN/RST/expiry), 3 refresh (still alive),
//              4 teach (an owner answering a redirected packet: meant for member `peer`)
//    2   1   family: 4 | 6 (of the client and VIP addresses)
//    3   1   protocol: 6 | 17
//    4   1   flags: bit0 proven (two-way progress or a repeat seen), bit1 must-sync (placed by
//              wrr/wlc/random/persistence, or made divergent by a pending table change),
//              bit2 from-peer (installed from a peer, not decided here); bits 3-7 zero
//    5   1   owner index (members[] of the snapshot that produced it), 255 = none
//    6   1   backup index, 255 = none
//    7   1   peer index for kind 4 (the mux that asked), else 255
//    8  16   client address (IPv4 as ::ffff:a.b.c.d)
//   24  16   VIP address (same encoding)
//   40  16   backend address (same encoding; its family may differ from the flow's: 4-in-6)
//   56   2   client port
//   58   2   VIP port (the flow's destination port, also for an all-ports VIP)
//   60   4   remaining lifetime in seconds
//
// Decoding is strict about what would misplace a flow (version, kind, family, protocol,
// address encodings) and ignores nothing silently: an unknown flag bit is refused too, so a
// later version must bump `version`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "../types.h"

namespace l4mux::cluster {

inline constexpr size_t kFlowRecordSize = 64;
inline constexpr uint8_t kFlowRecordVersion = 1;
inline constexpr uint8_t kNoMember = 255;
// Members a snapshot may name (indexes 0..254; 255 means none).
inline constexpr size_t kMaxMembers = 255;

enum class RecordKind : uint8_t {
  kNew = 1,
  kEnd = 2,
  kRefresh = 3,
  kTeach = 4,
};

inline constexpr uint8_t kRecordProven = 1u << 0;
inline constexpr uint8_t kRecordMustSync = 1u << 1;
inline constexpr uint8_t kRecordFromPeer = 1u << 2;
inline constexpr uint8_t kRecordKnownFlags = kRecordProven | kRecordMustSync | kRecordFromPeer;

struct FlowRecord {
  RecordKind kind = RecordKind::kNew;
  uint8_t flags = 0;
  uint8_t owner = kNoMember;
  uint8_t backup = kNoMember;
  uint8_t peer = kNoMember;
  // The flow, as the connection table keys it (family and protocol included; ports in host
  // order).
  FlowKey key;
  IpAddr backend;
  uint32_t lifetime_s = 0;
};

// Why a record was refused. Order is part of the addon's API (counted by name).
#define L4MUX_RECORD_ERRORS(X)               \
  X(kOk, "ok")                               \
  X(kTruncated, "truncated")                 \
  X(kBadVersion, "bad_version")              \
  X(kBadKind, "bad_kind")                    \
  X(kBadFamily, "bad_family")                \
  X(kBadProtocol, "bad_protocol")            \
  X(kBadFlags, "bad_flags")                  \
  X(kBadAddress, "bad_address")              \
  X(kBadMember, "bad_member")

enum class RecordError : uint8_t {
#define L4MUX_X(name, str) name,
  L4MUX_RECORD_ERRORS(L4MUX_X)
#undef L4MUX_X
      kCount
};

std::string_view record_error_name(RecordError e);

// Writes `r` as 64 bytes at `out`.
void encode_flow_record(const FlowRecord& r, uint8_t* out);

// Reads the record at `in` (`len` bytes available). On kOk, `*out` holds it; otherwise `*out`
// is unspecified. Never reads past in[min(len, 64)).
RecordError decode_flow_record(const uint8_t* in, size_t len, FlowRecord* out);

// The 16-byte wire form of an address (IPv4 as ::ffff:a.b.c.d) and back. from_wire_address
// gives an IPv4 address for the mapped form, IPv6 otherwise.
void to_wire_address(const IpAddr& a, uint8_t* out16);
IpAddr from_wire_address(const uint8_t* in16);

}  // namespace l4mux::cluster
