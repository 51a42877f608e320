// Node-API binding of the backend agent (native/agent/agent.h): `new Agent(options)` with
// start / stop / running / error / counters. The packet loop runs on its own native thread;
// JavaScript only starts, stops and reads counters.
#pragma once

#include <napi.h>

namespace l4mux::addon {

// Adds `Agent` and `decapStatuses()` to the addon's exports.
void register_agent(Napi::Env env, Napi::Object exports);

}  // namespace l4mux::addon
