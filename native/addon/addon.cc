// Node-API binding: a thin layer over the native code, one file per class: `Dataplane`
// (dataplane_binding.cc: one pipeline on the calling thread, for replay, tests and tools),
// `Engine` (engine_binding.cc: the live workers), `Agent` (agent_binding.cc: the backend's
// decapsulator). This file registers them, the name lists and dropCapabilities (privileges.cc).
#include <napi.h>

#include <string>

#include "aead_binding.h"
#include "agent_binding.h"
#include "cluster_js.h"
#include "counters_js.h"
#include "dataplane_binding.h"
#include "engine_binding.h"
#include "privileges.h"
#include "types.h"

namespace l4mux::addon {
namespace {

Napi::Value DropReasons(const Napi::CallbackInfo& info) {
  Napi::Array names = Napi::Array::New(info.Env(), kDropReasonCount);
  for (size_t r = 0; r < kDropReasonCount; ++r) {
    names.Set(static_cast<uint32_t>(r), std::string(drop_reason_name(static_cast<DropReason>(r))));
  }
  return names;
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  register_dataplane(env, exports);
  exports.Set("dropReasons", Napi::Function::New<DropReasons>(env));
  exports.Set("counterNames", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
                return counter_names_to_js(info.Env());
              }));
  exports.Set("dropCapabilities", Napi::Function::New<DropCapabilities>(env));
  register_engine(env, exports);
  register_agent(env, exports);
  register_wire_codec(env, exports);
  register_aead(env, exports);
  return exports;
}

}  // namespace l4mux::addon

// The registration macro pastes its argument into an identifier: it needs an unqualified name.
static Napi::Object InitL4mux(Napi::Env env, Napi::Object exports) {
  return l4mux::addon::Init(env, exports);
}
NODE_API_MODULE(l4mux, InitL4mux)
