// The persistence methods of Engine and Dataplane (PersistenceApi in src/dataplane/engine.ts):
// JavaScript values to and from the hub's table and punt queues. VIPs are named, clients are
// "address" or "address/prefix", backends are addresses; slots are resolved against the
// published snapshot (control thread).
#pragma once

#include <napi.h>
#include <uv.h>

#include <functional>
#include <memory>

#include "engine/config_publisher.h"
#include "persistence.h"

namespace l4mux::addon {

class PersistenceJs {
 public:
  // `now`: the workers' clock. `wake(worker)`: called after answers were queued for it.
  PersistenceJs(PersistenceHub& hub, ConfigPublisher& publisher, std::function<uint64_t()> now,
                std::function<void(uint32_t)> wake);
  ~PersistenceJs();
  PersistenceJs(const PersistenceJs&) = delete;
  PersistenceJs& operator=(const PersistenceJs&) = delete;

  // onPunt(callback): must be called before the workers start (the hub's notify is set here).
  Napi::Value OnPunt(const Napi::CallbackInfo& info);
  Napi::Value Drain(const Napi::CallbackInfo& info);
  Napi::Value Answer(const Napi::CallbackInfo& info);
  Napi::Value Install(const Napi::CallbackInfo& info);
  Napi::Value Refresh(const Napi::CallbackInfo& info);
  Napi::Value Remove(const Napi::CallbackInfo& info);
  Napi::Value Expire(const Napi::CallbackInfo& info);
  Napi::Value Lookup(const Napi::CallbackInfo& info);
  Napi::Value Entries(const Napi::CallbackInfo& info);
  Napi::Value Accepts(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  Napi::Value Arm(const Napi::CallbackInfo& info);

 private:
  struct Wakeup;  // the uv_async handle and the JS callback, closed on the loop
  const Snapshot& snapshot(const Napi::Env& env) const;
  std::string vip_name(uint32_t slot) const;
  std::string client_text(const ClientKey& k) const;
  std::string backend_text(uint32_t slot) const;
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

}  // namespace l4mux::addon
