// The engine's introspection to JavaScript: flow lookup (a Promise: the workers answer between
// batches) and live capture (start, drain, stop). Used by engine_binding.cc.
#pragma once

#include <napi.h>

#include "engine/engine.h"

namespace l4mux::addon {

// lookupFlow({protocol, src, srcPort, dst, dstPort}) -> Promise<FlowLookup as an object>.
// `owner` (the Engine's JS object) is kept alive until the answer.
Napi::Value lookup_flow_js(const Napi::CallbackInfo& info, Engine& engine);
// startCapture({vip?, backend?, count, snaplen, sampleEvery})
void start_capture_js(const Napi::CallbackInfo& info, Engine& engine);
// drainCapture() -> [{worker, packet, direction: 'received' | 'sent', verdict, seconds, nanoseconds, originalLength, data}]
Napi::Value drain_capture_js(const Napi::CallbackInfo& info, Engine& engine);
// stopCapture() -> {packets, ringFull}
Napi::Value stop_capture_js(const Napi::CallbackInfo& info, Engine& engine);

}  // namespace l4mux::addon
