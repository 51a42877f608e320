// Node-API binding of one pipeline on the calling thread (replay, tests, tools): `Dataplane`.
#pragma once

#include <napi.h>

namespace l4mux::addon {

// Adds the `Dataplane` class to the addon's exports.
void register_dataplane(Napi::Env env, Napi::Object exports);

}  // namespace l4mux::addon
