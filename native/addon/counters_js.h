// Counters to JavaScript objects: the one shape shared by Dataplane.counters() and
// Engine.counters() (see src/dataplane/types.ts).
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "conntrack.h"
#include "counters.h"
#include "io/packet_io.h"
#include "types.h"

namespace l4mux::addon {

struct CountersView {
  const WorkerCounters& counters;
  const std::vector<VipKey>& vip_keys;  // slot -> VIP
  const std::unordered_map<uint32_t, std::string>& vip_names;
  const std::vector<IpAddr>& backend_keys;  // slot -> backend address
  const ConntrackStats& conntrack;
  uint64_t conntrack_capacity;
};

// {rx, tx, passed, dropped, echoReplies, icmpErrorsForwarded, checksumsFinalized,
//  icmpTooBigSent, drops: {name: n}, vips: [{name, packets, bytes, newFlows}], backends: [{address, packets,
//  bytes}], conntrack: {inserts, evictions, expiredReused, capacity}}
Napi::Object counters_to_js(Napi::Env env, const CountersView& view);

// {inserts, evictions, expiredReused, liveEntries, capacity}
Napi::Object conntrack_stats_to_js(Napi::Env env, const ConntrackStats& stats, uint64_t capacity);

// {rxPackets, rxKernelDrops, rxOversized, rxIgnored, txPackets, txErrors, txRingFull}
Napi::Object io_stats_to_js(Napi::Env env, const IoStats& io);

}  // namespace l4mux::addon
