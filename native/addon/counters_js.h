// Counters to JavaScript objects: the one shape shared by Dataplane.counters() and
// Engine.counters() (see src/dataplane/types.ts).
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "cluster/flow_sync.h"
#include "conntrack.h"
#include "counters.h"
#include "engine/engine.h"
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

// Every object's keys are the JS names of one list (counters.h, conntrack.h, io/packet_io.h).
// {<L4MUX_WORKER_COUNTERS>, drops: {reason: n}, vips: [{name, <L4MUX_VIP_COUNTERS>}],
//  backends: [{address, <L4MUX_BACKEND_COUNTERS>}], conntrack: {<L4MUX_CONNTRACK_STATS>, capacity}}
Napi::Object counters_to_js(Napi::Env env, const CountersView& view);

// {<L4MUX_CONNTRACK_STATS>, capacity}
Napi::Object conntrack_stats_to_js(Napi::Env env, const ConntrackStats& stats, uint64_t capacity);

// {<L4MUX_IO_STATS>}
Napi::Object io_stats_to_js(Napi::Env env, const IoStats& io);

// {<L4MUX_IO_RING_LEVELS>}
Napi::Object ring_levels_to_js(Napi::Env env, const IoRingLevels& rings);

// One engine worker: {<L4MUX_WORKER_COUNTERS>, drops: {reason: n}, io, rings, conntrack, description}
Napi::Object worker_status_to_js(Napi::Env env, const WorkerStatus& w);

// The names of every list: {worker, vip, backend, conntrack, io, rings, sync, drops} (counterNames()).
Napi::Object counter_names_to_js(Napi::Env env);

}  // namespace l4mux::addon
