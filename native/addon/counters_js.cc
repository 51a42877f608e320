#include "counters_js.h"

#include "config_convert.h"

namespace l4mux::addon {
namespace {

double num(const Counter& c) { return static_cast<double>(c.get()); }
double num(uint64_t v) { return static_cast<double>(v); }

}  // namespace

Napi::Object counters_to_js(Napi::Env env, const CountersView& view) {
  const WorkerCounters& counters = view.counters;
  Napi::Object out = Napi::Object::New(env);
#define L4MUX_X(name, str) out.Set(str, num(counters.name));
  L4MUX_WORKER_COUNTERS(L4MUX_X)
#undef L4MUX_X

  Napi::Object drops = Napi::Object::New(env);
  for (size_t r = 0; r < kDropReasonCount; ++r) {
    drops.Set(std::string(drop_reason_name(static_cast<DropReason>(r))), num(counters.drops[r]));
  }
  out.Set("drops", drops);

  const VipCounters no_vip_counters;
  Napi::Array vips = Napi::Array::New(env);
  for (uint32_t slot = 0; slot < view.vip_keys.size(); ++slot) {
    const VipCounters* c = counters.vip(slot);
    if (c == nullptr) c = &no_vip_counters;
    Napi::Object v = Napi::Object::New(env);
    auto name = view.vip_names.find(slot);
    v.Set("name", name != view.vip_names.end() ? name->second : format_addr(view.vip_keys[slot].addr));
#define L4MUX_X(name, str) v.Set(str, num(c->name));
    L4MUX_VIP_COUNTERS(L4MUX_X)
#undef L4MUX_X
    vips.Set(slot, v);
  }
  out.Set("vips", vips);

  const BackendCounters no_backend_counters;
  Napi::Array backends = Napi::Array::New(env);
  for (uint32_t slot = 0; slot < view.backend_keys.size(); ++slot) {
    const BackendCounters* c = counters.backend(slot);
    if (c == nullptr) c = &no_backend_counters;
    Napi::Object b = Napi::Object::New(env);
    b.Set("address", format_addr(view.backend_keys[slot]));
#define L4MUX_X(name, str) b.Set(str, num(c->name));
    L4MUX_BACKEND_COUNTERS(L4MUX_X)
#undef L4MUX_X
    backends.Set(slot, b);
  }
  out.Set("backends", backends);

  out.Set("conntrack", conntrack_stats_to_js(env, view.conntrack, view.conntrack_capacity));
  return out;
}

Napi::Object conntrack_stats_to_js(Napi::Env env, const ConntrackStats& stats, uint64_t capacity) {
  Napi::Object conntrack = Napi::Object::New(env);
#define L4MUX_X(name, str) conntrack.Set(str, num(stats.name));
  L4MUX_CONNTRACK_STATS(L4MUX_X)
#undef L4MUX_X
  conntrack.Set("capacity", num(capacity));
  return conntrack;
}

Napi::Object io_stats_to_js(Napi::Env env, const IoStats& io) {
  Napi::Object out = Napi::Object::New(env);
#define L4MUX_X(name, str) out.Set(str, num(io.name));
  L4MUX_IO_STATS(L4MUX_X)
#undef L4MUX_X
  return out;
}

Napi::Object ring_levels_to_js(Napi::Env env, const IoRingLevels& rings) {
  Napi::Object out = Napi::Object::New(env);
#define L4MUX_X(name, str) out.Set(str, num(rings.name));
  L4MUX_IO_RING_LEVELS(L4MUX_X)
#undef L4MUX_X
  return out;
}

Napi::Object worker_status_to_js(Napi::Env env, const WorkerStatus& w) {
  Napi::Object o = Napi::Object::New(env);
#define L4MUX_X(name, str) o.Set(str, num(w.name));
  L4MUX_WORKER_COUNTERS(L4MUX_X)
#undef L4MUX_X
  Napi::Object drops = Napi::Object::New(env);
  for (size_t r = 0; r < kDropReasonCount; ++r) {
    drops.Set(std::string(drop_reason_name(static_cast<DropReason>(r))), num(w.drops[r]));
  }
  o.Set("drops", drops);
  o.Set("io", io_stats_to_js(env, w.io));
  o.Set("rings", ring_levels_to_js(env, w.rings));
  o.Set("conntrack", conntrack_stats_to_js(env, w.conntrack, w.conntrack_capacity));
  o.Set("description", w.io_description);
  return o;
}

Napi::Object counter_names_to_js(Napi::Env env) {
  Napi::Object out = Napi::Object::New(env);
  const auto list = [&](const char* set, std::initializer_list<const char*> names) {
    Napi::Array a = Napi::Array::New(env, names.size());
    uint32_t i = 0;
    for (const char* n : names) a.Set(i++, n);
    out.Set(set, a);
  };
#define L4MUX_X(name, str) str,
  list("worker", {L4MUX_WORKER_COUNTERS(L4MUX_X)});
  list("vip", {L4MUX_VIP_COUNTERS(L4MUX_X)});
  list("backend", {L4MUX_BACKEND_COUNTERS(L4MUX_X)});
  list("conntrack", {L4MUX_CONNTRACK_STATS(L4MUX_X)});
  list("io", {L4MUX_IO_STATS(L4MUX_X)});
  list("rings", {L4MUX_IO_RING_LEVELS(L4MUX_X)});
  list("sync", {L4MUX_SYNC_COUNTERS(L4MUX_X)});
#undef L4MUX_X
  Napi::Array drops = Napi::Array::New(env, kDropReasonCount);
  for (size_t r = 0; r < kDropReasonCount; ++r) {
    drops.Set(static_cast<uint32_t>(r), std::string(drop_reason_name(static_cast<DropReason>(r))));
  }
  out.Set("drops", drops);
  return out;
}

}  // namespace l4mux::addon
