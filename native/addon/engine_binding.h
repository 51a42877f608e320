// Node-API binding of the live data plane (native/engine/engine.h): `new Engine(options)`
// with setConfig / start / stop / counters. Packets never reach JavaScript: the workers are
// native threads; JavaScript configures, starts, stops and reads counters.
#pragma once

#include <napi.h>

namespace l4mux::addon {

// Adds the `Engine` class to the addon's exports.
void register_engine(Napi::Env env, Napi::Object exports);

}  // namespace l4mux::addon
