// JavaScript objects (src/dataplane/types.ts) to core structures. The TypeScript side has
// validated everything already; these conversions still refuse malformed input with a
// TypeError naming the field, because the addon must never trust its caller blindly.
#pragma once

#include <napi.h>

#include "conntrack.h"
#include "snapshot.h"

namespace l4mux::addon {

ConfigSpec to_config_spec(const Napi::Object& config);
ConntrackConfig to_conntrack_config(const Napi::Object& settings);
std::string format_addr(const IpAddr& addr);

}  // namespace l4mux::addon
