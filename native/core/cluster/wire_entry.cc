#include "wire_entry.h"

#include <cstring>

#include "../wire.h"

namespace l4mux::cluster {
namespace {

constexpr uint8_t kNoBackend = 0x20;
constexpr uint8_t kBackendV6 = 0x40;
constexpr uint8_t kFlowV6 = 0x80;
constexpr uint8_t kReservedFlags = 0x18;
constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool is_mapped(const uint8_t* a) { return std::memcmp(a, kMappedPrefix, sizeof(kMappedPrefix)) == 0; }

bool is_zero(const uint8_t* a) {
  static constexpr uint8_t kZero[16] = {};
  return std::memcmp(a, kZero, sizeof(kZero)) == 0;
}

void put_mapped(const uint8_t* v4, uint8_t* out16) {
  std::memcpy(out16, kMappedPrefix, sizeof(kMappedPrefix));
  std::memcpy(out16 + 12, v4, 4);
}

size_t entry_size(bool flow_v6, bool no_backend, bool backend_v6) {
  return 12 + (flow_v6 ? 32 : 8) + (no_backend ? 0 : backend_v6 ? 16 : 4);
}

}  // namespace

bool WireSelect::wants(const uint8_t* rec) const {
  if (member == kAllRecords) return true;
  const auto kind = static_cast<RecordKind>(rec[1]);
  if (kind == RecordKind::kTeach) return !refresh && rec[7] == member;
  if ((kind == RecordKind::kRefresh) != refresh) return false;
  return rec[5] == member || rec[6] == member;
}

size_t wire_entry_size(const uint8_t* rec) {
  const bool no_backend = is_zero(rec + 40);
  return entry_size(rec[2] == 6, no_backend, !no_backend && !is_mapped(rec + 40));
}

size_t encode_wire_entry(const uint8_t* rec, uint8_t* out) {
  const bool v6 = rec[2] == 6;
  const bool no_backend = is_zero(rec + 40);
  const bool backend_v6 = !no_backend && !is_mapped(rec + 40);
  out[0] = rec[1];
  out[1] = static_cast<uint8_t>((rec[4] & kRecordKnownFlags) | (no_backend ? kNoBackend : 0) |
                                (backend_v6 ? kBackendV6 : 0) | (v6 ? kFlowV6 : 0));
  out[2] = rec[3];
  out[3] = 0;
  std::memcpy(out + 4, rec + 60, 4);  // lifetime
  std::memcpy(out + 8, rec + 56, 4);  // ports
  uint8_t* p = out + 12;
  if (v6) {
    std::memcpy(p, rec + 8, 32);
    p += 32;
  } else {
    std::memcpy(p, rec + 20, 4);
    std::memcpy(p + 4, rec + 36, 4);
    p += 8;
  }
  if (!no_backend) {
    if (backend_v6) {
      std::memcpy(p, rec + 40, 16);
      p += 16;
    } else {
      std::memcpy(p, rec + 52, 4);
      p += 4;
    }
  }
  return static_cast<size_t>(p - out);
}

WireEncodeResult encode_wire_entries(const uint8_t* records, size_t n, size_t from, const WireSelect& select,
                                     uint8_t* out, size_t cap) {
  WireEncodeResult r;
  size_t i = from;
  for (; i < n; ++i) {
    const uint8_t* rec = records + i * kFlowRecordSize;
    if (!select.wants(rec)) continue;
    if (r.bytes + wire_entry_size(rec) > cap) break;
    r.bytes += encode_wire_entry(rec, out + r.bytes);
    ++r.count;
  }
  r.next = i;
  return r;
}

bool decode_wire_entries(const uint8_t* in, size_t len, size_t count, uint8_t* records) {
  size_t o = 0;
  for (size_t k = 0; k < count; ++k) {
    if (len - o < 12) return false;
    const uint8_t* e = in + o;
    const uint8_t kind = e[0];
    const uint8_t flags = e[1];
    const uint8_t protocol = e[2];
    if (kind < static_cast<uint8_t>(RecordKind::kNew) || kind > static_cast<uint8_t>(RecordKind::kTeach) ||
        (protocol != kProtoTcp && protocol != kProtoUdp) || e[3] != 0 || (flags & kReservedFlags) != 0) {
      return false;
    }
    const bool v6 = (flags & kFlowV6) != 0;
    const bool no_backend = (flags & kNoBackend) != 0;
    const bool backend_v6 = (flags & kBackendV6) != 0;
    if (no_backend && (backend_v6 || kind != static_cast<uint8_t>(RecordKind::kEnd))) return false;
    const size_t size = entry_size(v6, no_backend, backend_v6);
    if (len - o < size) return false;
    uint8_t* rec = records + k * kFlowRecordSize;
    rec[0] = kFlowRecordVersion;
    // A teach reaches the member it was meant for: here it is an ordinary entry.
    rec[1] = kind == static_cast<uint8_t>(RecordKind::kTeach) ? static_cast<uint8_t>(RecordKind::kNew) : kind;
    rec[2] = v6 ? 6 : 4;
    rec[3] = protocol;
    rec[4] = static_cast<uint8_t>((flags & kRecordKnownFlags) | kRecordFromPeer);
    rec[5] = rec[6] = rec[7] = kNoMember;
    std::memcpy(rec + 60, e + 4, 4);
    std::memcpy(rec + 56, e + 8, 4);
    const uint8_t* p = e + 12;
    if (v6) {
      std::memcpy(rec + 8, p, 32);
      p += 32;
    } else {
      put_mapped(p, rec + 8);
      put_mapped(p + 4, rec + 24);
      p += 8;
    }
    if (no_backend) {
      std::memset(rec + 40, 0, 16);
    } else if (backend_v6) {
      std::memcpy(rec + 40, p, 16);
    } else {
      put_mapped(p, rec + 40);
    }
    o += size;
  }
  return o == len;
}

}  // namespace l4mux::cluster
