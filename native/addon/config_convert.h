// JavaScript objects (src/dataplane/types.ts) to core structures. The TypeScript side has
// validated everything already; these conversions still refuse malformed input with a
// TypeError naming the field, because the addon must never trust its caller blindly.
#pragma once

#include <napi.h>

#include "cluster/flow_sync.h"
#include "conntrack.h"
#include "snapshot.h"

namespace l4mux::addon {

ConfigSpec to_config_spec(const Napi::Object& config);
ConntrackConfig to_conntrack_config(const Napi::Object& settings);
cluster::ClusterSpec to_cluster_spec(const Napi::Value& cluster);
// ClusterCapacity (src/dataplane/types.ts): absent fields keep their defaults.
cluster::SyncSettings to_sync_settings(const Napi::Object& capacity);
// {client, clientPort, vip, vipPort, protocol}: the flow as records name it.
FlowKey to_flow_key(const Napi::Object& flow);
std::string format_addr(const IpAddr& addr);

}  // namespace l4mux::addon
