// The cluster-sync methods shared by Dataplane and Engine: argument checks and conversions
// between JS values and the core's records, marks, owners and statistics.
#pragma once

#include <napi.h>

#include <vector>

#include "cluster/flow_sync.h"

namespace l4mux::addon {

// pollFlowEvents(maxRecords?): how many records at most (default and cap 65536).
size_t max_records_arg(const Napi::CallbackInfo& info, size_t index);
// installFlows(records): the Buffer's bytes.
Napi::Buffer<uint8_t> records_arg(const Napi::CallbackInfo& info, size_t index);
// syncDrained(mark): the array syncMark() returned.
std::vector<uint64_t> mark_arg(const Napi::CallbackInfo& info, size_t index);

Napi::Value mark_to_js(Napi::Env env, const std::vector<uint64_t>& mark);
// dumpPeerFlows(cursor): the table position to start from (0: the beginning).
uint32_t cursor_arg(const Napi::CallbackInfo& info, size_t index);
// {records: Buffer, cursor: number}: cursor 0 once the whole table was walked.
Napi::Value dump_to_js(Napi::Env env, const std::vector<uint8_t>& out, size_t n, uint32_t cursor);
Napi::Value install_result_to_js(Napi::Env env, const cluster::InstallResult& r);
Napi::Value owners_to_js(Napi::Env env, const cluster::Owners& o);
// {polled, selfInstalled, accepted, refused: {reason: n}, peerTable: {...}, workers: [...],
//  syncExportOverflow}
Napi::Value sync_stats_to_js(Napi::Env env, const cluster::HubStats& hub,
                             const std::vector<std::vector<std::pair<std::string_view, uint64_t>>>& workers,
                             const std::vector<uint64_t>& overflow);

// Module functions of the cluster channel's wire codec (core/cluster/wire_entry.h):
//   encodeWireEntries(records, from, member, refresh, out, outStart, outEnd) -> {next, count, end}
//   decodeWireEntries(payload, start, count, out) -> true with count*64 bytes of records in out,
//     false when malformed
void register_wire_codec(Napi::Env env, Napi::Object exports);

}  // namespace l4mux::addon
