// The persistence methods of Engine and Dataplane (PersistenceApi in src/dataplane/engine.ts):
// JavaScript values to and from the hub's table and punt queues. VIPs are named, clients are
// "address" or "address/prefix", backends are addresses; slots are resolved against the
// published snapshot (control thread).
#pragma once

#include <napi.h>
#include <uv.h>

#include <functional>
#include <memory>
#include <vector>

#include "engine/config_publisher.h"
#include "persistence.h"

namespace l4mux::addon {

// The persistence methods, X(Method, "jsName"): one list for PersistenceJs and for the classes
// that expose it (PersistenceMethods below).
#define L4MUX_PERSISTENCE_METHODS(X)      \
  X(OnPunt, "onPunt")                     \
  X(Drain, "persistenceDrain")            \
  X(Answer, "persistenceAnswer")          \
  X(Install, "persistenceInstall")        \
  X(Refresh, "persistenceRefresh")        \
  X(Remove, "persistenceRemove")          \
  X(Expire, "persistenceExpire")          \
  X(Lookup, "persistenceLookup")          \
  X(Entries, "persistenceEntries")        \
  X(Accepts, "persistenceAccepts")        \
  X(Stats, "persistenceStats")            \
  X(Arm, "persistenceArm")

class PersistenceJs {
 public:
  // `now`: the workers' clock. `wake(worker)`: called after answers were queued for it.
  PersistenceJs(PersistenceHub& hub, ConfigPublisher& publisher, std::function<uint64_t()> now,
                std::function<void(uint32_t)> wake);
  ~PersistenceJs();
  PersistenceJs(const PersistenceJs&) = delete;
  PersistenceJs& operator=(const PersistenceJs&) = delete;

  // OnPunt(callback) must be called before the workers start (the hub's notify is set there).
#define L4MUX_X(method, js) Napi::Value method(const Napi::CallbackInfo& info);
  L4MUX_PERSISTENCE_METHODS(L4MUX_X)
#undef L4MUX_X

 private:
  struct Wakeup;  // the uv_async handle and the JS callback, closed on the loop
  const Snapshot& snapshot(const Napi::Env& env) const;
  std::string vip_name(uint32_t slot) const;
  std::string client_text(const ClientKey& k) const;
  std::string backend_text(uint32_t slot) const;
  Napi::Object client_object(const Napi::Env& env, const ClientKey& k) const;  // {vip, client}
  // False (and nothing set) when the VIP is unknown or not persistent, or the client does not
  // parse as one of its clients.
  bool resolve(const Napi::Env& env, const Napi::Object& o, const std::string& path, ClientKey* key,
               const Vip** vip) const;

  PersistenceHub& hub_;
  ConfigPublisher& publisher_;
  std::function<uint64_t()> now_;
  std::function<void(uint32_t)> wake_;
  Wakeup* wakeup_ = nullptr;
};

// Mixed into an ObjectWrap class `Wrap` (Engine, Dataplane) that has
// `PersistenceJs& persistence(const Napi::Env&)` (throwing when it has none): its persistence
// methods, forwarded, and their property descriptors for DefineClass.
template <class Wrap>
class PersistenceMethods {
 public:
#define L4MUX_X(method, js) \
  Napi::Value P##method(const Napi::CallbackInfo& info) { return self().persistence(info.Env()).method(info); }
  L4MUX_PERSISTENCE_METHODS(L4MUX_X)
#undef L4MUX_X

  static void add_persistence_methods(std::vector<Napi::ClassPropertyDescriptor<Wrap>>& properties) {
    using Method = typename Napi::ObjectWrap<Wrap>::InstanceMethodCallback;
#define L4MUX_X(method, js) \
  properties.push_back(Napi::ObjectWrap<Wrap>::InstanceMethod(js, static_cast<Method>(&PersistenceMethods::P##method)));
    L4MUX_PERSISTENCE_METHODS(L4MUX_X)
#undef L4MUX_X
  }

 private:
  Wrap& self() { return *static_cast<Wrap*>(this); }
};

}  // namespace l4mux::addon
