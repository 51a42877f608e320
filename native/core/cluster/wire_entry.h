// Wire entries: the compact form in which the cluster channel carries flow records between
// muxes (24 bytes for IPv4, 60 for IPv6, 36 for IPv4 with an IPv6 backend; the layout is
// documented in src/cluster/wire.ts, which has the same codec in TypeScript). The channel
// encodes a batch's worth of records per call and decodes a whole batch per call, so that
// no JavaScript runs per entry.
#pragma once

#include <cstddef>
#include <cstdint>

#include "flow_record.h"

namespace l4mux::cluster {

inline constexpr size_t kWireEntryMin = 20;  // an end without backend, IPv4
inline constexpr size_t kWireEntryMax = 60;

// Which records of a buffer go into one peer's queue of one class. kAllRecords: every one.
// Otherwise member `member` gets the teach records naming it as peer (non-refresh class
// only) and the other records naming it as owner or backup, refreshes in the refresh class
// and the rest in the other.
struct WireSelect {
  static constexpr uint8_t kAllRecords = 255;
  uint8_t member = kAllRecords;
  bool refresh = false;
  bool wants(const uint8_t* rec) const;
};

// Bytes the wire entry of `rec` (a 64-byte record) takes.
size_t wire_entry_size(const uint8_t* rec);
// Writes the wire entry of `rec` at `out` (room for wire_entry_size); returns its size.
size_t encode_wire_entry(const uint8_t* rec, uint8_t* out);

struct WireEncodeResult {
  size_t next = 0;     // the first record not looked at
  uint32_t count = 0;  // entries written
  size_t bytes = 0;    // bytes written
};
// Encodes the selected records among records[from, n) into out[0, cap) in order, until the
// next selected one does not fit or the records end.
WireEncodeResult encode_wire_entries(const uint8_t* records, size_t n, size_t from, const WireSelect& select,
                                     uint8_t* out, size_t cap);

// Decodes exactly `count` entries that take exactly `len` bytes into count*64 bytes of
// records (from-peer set, owner, backup and peer unset; a teach becomes a new entry). false
// when an entry is malformed or the lengths disagree (the batch is refused whole).
bool decode_wire_entries(const uint8_t* in, size_t len, size_t count, uint8_t* records);

}  // namespace l4mux::cluster
