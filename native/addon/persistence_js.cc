#include "persistence_js.h"

#include <arpa/inet.h>

#include <limits>
#include <string>

#include "config_convert.h"

namespace l4mux::addon {
namespace {

constexpr uint32_t kDefaultDrain = 4096;
constexpr uint32_t kMaxTouches = 65536;

[[noreturn]] void type_error(const Napi::Env& env, const std::string& path, const std::string& reason) {
  throw Napi::TypeError::New(env, path + ": " + reason);
}

std::string string_field(const Napi::Object& o, const char* name, const std::string& path) {
  const Napi::Value v = o.Get(name);
  if (!v.IsString()) type_error(o.Env(), path + "." + name, "expected a string");
  return v.As<Napi::String>().Utf8Value();
}

double number_field(const Napi::Object& o, const char* name, const std::string& path) {
  const Napi::Value v = o.Get(name);
  if (!v.IsNumber()) type_error(o.Env(), path + "." + name, "expected a number");
  return v.As<Napi::Number>().DoubleValue();
}

bool parse_ip(const std::string& text, IpAddr* out) {
  uint8_t buf[16] = {};
  if (inet_pton(AF_INET, text.c_str(), buf) == 1) {
    *out = IpAddr::v4(buf);
    return true;
  }
  if (inet_pton(AF_INET6, text.c_str(), buf) == 1) {
    *out = IpAddr::v6(buf);
    return true;
  }
  return false;
}

// Milliseconds from now to a deadline in ns (clamped to what a double holds exactly).
uint64_t deadline_after(uint64_t now_ns, double ttl_ms) {
  if (!(ttl_ms > 0)) return now_ns;
  const double ns = ttl_ms * 1e6;
  if (ns >= 9e18) return UINT64_MAX / 2;
  return now_ns + static_cast<uint64_t>(ns);
}

Napi::Array array_arg(const Napi::CallbackInfo& info, const char* what) {
  if (info.Length() < 1 || !info[0].IsArray()) type_error(info.Env(), what, "expected an array");
  return info[0].As<Napi::Array>();
}

uint32_t optional_count(const Napi::CallbackInfo& info, size_t i, uint32_t fallback, const char* what) {
  if (info.Length() <= i || info[i].IsUndefined()) return fallback;
  if (!info[i].IsNumber()) type_error(info.Env(), what, "expected a number");
  const double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= 0)) type_error(info.Env(), what, "expected a count >= 0");
  return d > 4294967295.0 ? UINT32_MAX : static_cast<uint32_t>(d);
}

}  // namespace

// The JS callback and the uv_async that calls it on the event loop. A worker's notify only
// calls uv_async_send (thread-safe, coalescing, no allocation). Freed in the close callback.
struct PersistenceJs::Wakeup {
  uv_async_t async{};
  Napi::FunctionReference callback;
  napi_env env = nullptr;

  static void fire(uv_async_t* handle) {
    auto* self = static_cast<Wakeup*>(handle->data);
    if (self->callback.IsEmpty()) return;
    Napi::Env env(self->env);
    Napi::HandleScope scope(env);
    try {
      self->callback.Call({});
    } catch (const Napi::Error& e) {
      // An exception in the handler must not be lost silently, nor take the process down.
      fprintf(stderr, "l4mux: persistence onPunt handler threw: %s\n", e.Message().c_str());
    }
  }
};

PersistenceJs::PersistenceJs(PersistenceHub& hub, ConfigPublisher& publisher, std::function<uint64_t()> now,
                             std::function<void(uint32_t)> wake)
    : hub_(hub), publisher_(publisher), now_(std::move(now)), wake_(std::move(wake)) {}

PersistenceJs::~PersistenceJs() {
  if (wakeup_ == nullptr) return;
  wakeup_->callback.Reset();
  uv_close(reinterpret_cast<uv_handle_t*>(&wakeup_->async),
           [](uv_handle_t* h) { delete static_cast<Wakeup*>(h->data); });
  wakeup_ = nullptr;
}

Napi::Value PersistenceJs::OnPunt(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsFunction()) type_error(env, "onPunt(callback)", "expected a function");
  if (wakeup_ == nullptr) {
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
      throw Napi::Error::New(env, "onPunt: no event loop");
    }
    auto* w = new Wakeup;
    w->env = env;
    w->async.data = w;
    if (uv_async_init(loop, &w->async, &Wakeup::fire) != 0) {
      delete w;
      throw Napi::Error::New(env, "onPunt: uv_async_init failed");
    }
    uv_unref(reinterpret_cast<uv_handle_t*>(&w->async));  // never keeps the process alive
    wakeup_ = w;
    uv_async_t* async = &w->async;
    hub_.set_notify([async] { uv_async_send(async); });
  }
  wakeup_->callback = Napi::Persistent(info[0].As<Napi::Function>());
  return env.Undefined();
}

const Snapshot& PersistenceJs::snapshot(const Napi::Env& env) const {
  const Snapshot* s = publisher_.current();
  if (s == nullptr) throw Napi::Error::New(env, "no configuration: call setConfig first");
  return *s;
}

std::string PersistenceJs::vip_name(uint32_t slot) const {
  if (const Snapshot* s = publisher_.current(); s != nullptr) {
    if (const Vip* v = s->vip_by_slot(slot)) return v->name;
  }
  const SlotNames names = publisher_.slot_names();
  const auto it = names.vip_names.find(slot);
  if (it != names.vip_names.end()) return it->second;
  // Appended, not `"#" + std::to_string(...)`: GCC 12 at -O3 reports a false -Wrestrict there.
  std::string unnamed = "#";
  unnamed += std::to_string(slot);
  return unnamed;
}

std::string PersistenceJs::client_text(const ClientKey& k) const {
  IpAddr a;
  a.bytes = k.addr;
  a.family = k.family;
  const uint32_t bits = k.family == Family::kIpv4 ? 32 : 128;
  std::string text = format_addr(a);
  if (k.prefix < bits) {
    text += '/';
    text += std::to_string(k.prefix);
  }
  return text;
}

Napi::Object PersistenceJs::client_object(const Napi::Env& env, const ClientKey& k) const {
  Napi::Object o = Napi::Object::New(env);
  o.Set("vip", vip_name(k.vip));
  o.Set("client", client_text(k));
  return o;
}

std::string PersistenceJs::backend_text(uint32_t slot) const {
  if (const Snapshot* s = publisher_.current(); s != nullptr && slot < s->backends().size()) {
    return format_addr(s->backends()[slot].addr);
  }
  const SlotNames names = publisher_.slot_names();
  return slot < names.backend_keys.size() ? format_addr(names.backend_keys[slot]) : "";
}

bool PersistenceJs::resolve(const Napi::Env& env, const Napi::Object& o, const std::string& path, ClientKey* key,
                            const Vip** vip_out) const {
  const std::string name = string_field(o, "vip", path);
  const std::string client = string_field(o, "client", path);
  const Vip* vip = nullptr;
  for (const Vip& v : snapshot(env).vips()) {
    if (v.name == name) {
      vip = &v;
      break;
    }
  }
  if (vip == nullptr || vip->persist_prefix == 0) return false;
  const size_t slash = client.find('/');
  IpAddr addr;
  if (!parse_ip(client.substr(0, slash), &addr) || addr.family != vip->key.addr.family) return false;
  if (slash != std::string::npos) {
    const std::string len = client.substr(slash + 1);
    if (len.empty() || len.size() > 3 || len.find_first_not_of("0123456789") != std::string::npos) return false;
    if (std::stoi(len) != vip->persist_prefix) return false;
  }
  *key = make_client_key(vip->slot, addr.bytes, addr.family, vip->persist_prefix);
  *vip_out = vip;
  return true;
}

Napi::Value PersistenceJs::Drain(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  const uint32_t max = optional_count(info, 0, kDefaultDrain, "drain(max)");
  const uint64_t now = now_();
  Napi::Array punts = Napi::Array::New(env);
  Napi::Array touches = Napi::Array::New(env);
  uint32_t np = 0;
  uint32_t nt = 0;
  for (uint32_t w = 0; w < hub_.workers(); ++w) {
    PuntQueue& q = hub_.worker(w);
    PuntRecord r;
    while (np < max && q.next_punt(&r)) {
      Napi::Object o = client_object(env, r.client);
      o.Set("worker", w);
      o.Set("slot", r.slot);
      o.Set("ticket", r.ticket);
      if (r.proposed != kPersistNoBackend) o.Set("proposed", backend_text(r.proposed));
      if (r.recorded != kPersistNoBackend) o.Set("recorded", backend_text(r.recorded));
      o.Set("ageUs", static_cast<double>((now - std::min(now, r.held_ns)) / 1000));
      punts.Set(np++, o);
    }
    TouchRecord t;
    while (nt < kMaxTouches && q.next_touch(&t)) {
      touches.Set(nt++, client_object(env, t.client));
    }
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("punts", punts);
  out.Set("touches", touches);
  return out;
}

Napi::Value PersistenceJs::Answer(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  const Napi::Array answers = array_arg(info, "answer(answers)");
  std::vector<bool> woken(hub_.workers(), false);
  uint32_t accepted = 0;
  for (uint32_t i = 0; i < answers.Length(); ++i) {
    const std::string path = "answers[" + std::to_string(i) + "]";
    const Napi::Value v = answers.Get(i);
    if (!v.IsObject()) type_error(env, path, "expected an object");
    const Napi::Object o = v.As<Napi::Object>();
    const double worker = number_field(o, "worker", path);
    if (!(worker >= 0 && worker < hub_.workers())) continue;
    AnswerRecord a;
    a.slot = static_cast<uint32_t>(number_field(o, "slot", path));
    a.ticket = static_cast<uint32_t>(number_field(o, "ticket", path));
    if (o.Has("backend") && !o.Get("backend").IsUndefined()) {
      IpAddr addr;
      const std::string text = string_field(o, "backend", path);
      if (parse_ip(text, &addr)) {
        if (const auto slot = publisher_.backend_slot(addr)) a.backend = *slot;
      }
    }
    const auto w = static_cast<uint32_t>(worker);
    if (hub_.worker(w).answer(a)) {
      ++accepted;
      woken[w] = true;
    }
  }
  for (uint32_t w = 0; w < hub_.workers(); ++w) {
    if (woken[w] && wake_) wake_(w);
  }
  return Napi::Number::New(env, accepted);
}

Napi::Value PersistenceJs::Install(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  const Napi::Array entries = array_arg(info, "install(entries)");
  const uint64_t now = now_();
  uint32_t installed = 0;
  Napi::Array evicted = Napi::Array::New(env);
  uint32_t ne = 0;
  for (uint32_t i = 0; i < entries.Length(); ++i) {
    const std::string path = "entries[" + std::to_string(i) + "]";
    const Napi::Value v = entries.Get(i);
    if (!v.IsObject()) type_error(env, path, "expected an object");
    const Napi::Object o = v.As<Napi::Object>();
    ClientKey key;
    const Vip* vip = nullptr;
    const std::string backend = string_field(o, "backend", path);
    const double ttl = number_field(o, "ttlMs", path);
    if (!resolve(env, o, path, &key, &vip)) continue;
    IpAddr addr;
    if (!parse_ip(backend, &addr)) continue;
    const auto slot = publisher_.backend_slot(addr);
    if (!slot || vip->member(*slot) == nullptr) continue;  // not in the VIP's pool (any more)
    ClientKey ev;
    bool did_evict = false;
    const InstallOutcome r =
        hub_.table().install(key, *slot, deadline_after(now, ttl), now, vip->persist_max_entries, &ev, &did_evict);
    if (r != InstallOutcome::kOverLimit) ++installed;
    if (did_evict) evicted.Set(ne++, client_object(env, ev));
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("installed", installed);
  out.Set("evicted", evicted);
  return out;
}

Napi::Value PersistenceJs::Refresh(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  const Napi::Array entries = array_arg(info, "refresh(entries)");
  const uint64_t now = now_();
  uint32_t n = 0;
  for (uint32_t i = 0; i < entries.Length(); ++i) {
    const std::string path = "entries[" + std::to_string(i) + "]";
    const Napi::Value v = entries.Get(i);
    if (!v.IsObject()) type_error(env, path, "expected an object");
    const Napi::Object o = v.As<Napi::Object>();
    ClientKey key;
    const Vip* vip = nullptr;
    const double ttl = number_field(o, "ttlMs", path);
    if (resolve(env, o, path, &key, &vip) && hub_.table().refresh(key, deadline_after(now, ttl))) ++n;
  }
  return Napi::Number::New(env, n);
}

Napi::Value PersistenceJs::Remove(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  const Napi::Array entries = array_arg(info, "remove(entries)");
  uint32_t n = 0;
  for (uint32_t i = 0; i < entries.Length(); ++i) {
    const std::string path = "entries[" + std::to_string(i) + "]";
    const Napi::Value v = entries.Get(i);
    if (!v.IsObject()) type_error(env, path, "expected an object");
    const Napi::Object o = v.As<Napi::Object>();
    ClientKey key;
    const Vip* vip = nullptr;
    if (!resolve(env, o, path, &key, &vip)) continue;
    uint32_t backend = kPersistNoBackend;
    if (o.Has("backend") && !o.Get("backend").IsUndefined()) {
      IpAddr addr;
      if (!parse_ip(string_field(o, "backend", path), &addr)) continue;
      const auto slot = publisher_.backend_slot(addr);
      if (!slot) continue;  // an unknown backend: no entry names it
      backend = *slot;
    }
    if (hub_.table().remove(key, backend)) ++n;
  }
  return Napi::Number::New(env, n);
}

Napi::Value PersistenceJs::Expire(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  const uint32_t buckets = optional_count(info, 0, UINT32_MAX, "expire(buckets)");
  Napi::Array out = Napi::Array::New(env);
  uint32_t n = 0;
  hub_.table().expire(now_(), buckets, [&](const PersistEntryView& v) {
    out.Set(n++, client_object(env, v.key));
  });
  return out;
}

Napi::Value PersistenceJs::Lookup(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString()) {
    type_error(env, "lookup(vip, client)", "expected two strings");
  }
  Napi::Object q = Napi::Object::New(env);
  q.Set("vip", info[0]);
  q.Set("client", info[1]);
  ClientKey key;
  const Vip* vip = nullptr;
  if (!resolve(env, q, "lookup", &key, &vip)) return env.Null();
  const uint64_t now = now_();
  PersistHit hit;
  if (!hub_.table().lookup(key, hash_client_key(key), now, &hit)) return env.Null();
  Napi::Object o = client_object(env, key);
  o.Set("backend", backend_text(hit.backend));
  o.Set("expiresInMs", static_cast<double>((hit.expires_ns - now) / 1000000));
  return o;
}

Napi::Value PersistenceJs::Entries(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  const uint32_t max = optional_count(info, 0, UINT32_MAX, "entries(max)");
  const uint64_t now = now_();
  Napi::Array out = Napi::Array::New(env);
  uint32_t n = 0;
  hub_.table().for_each([&](const PersistEntryView& v) {
    if (n >= max) return false;
    if (v.expires_ns <= now) return true;
    Napi::Object o = client_object(env, v.key);
    o.Set("backend", backend_text(v.backend));
    o.Set("expiresInMs", static_cast<double>((v.expires_ns - now) / 1000000));
    out.Set(n++, o);
    return true;
  });
  return out;
}

Napi::Value PersistenceJs::Accepts(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString()) {
    type_error(env, "accepts(vip, backend)", "expected two strings");
  }
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  IpAddr addr;
  if (!parse_ip(info[1].As<Napi::String>().Utf8Value(), &addr)) return Napi::Boolean::New(env, false);
  const auto slot = publisher_.backend_slot(addr);
  if (!slot) return Napi::Boolean::New(env, false);
  for (const Vip& v : snapshot(env).vips()) {
    if (v.name != name) continue;
    const VipMember* m = v.member(*slot);
    return Napi::Boolean::New(env, m != nullptr && m->accepts_new_flows);
  }
  return Napi::Boolean::New(env, false);
}

Napi::Value PersistenceJs::Stats(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  const PersistTableStats t = hub_.table().stats();
  Napi::Object out = Napi::Object::New(env);
  out.Set("capacity", static_cast<double>(t.capacity));
  out.Set("bytes", static_cast<double>(t.bytes));
  out.Set("entries", static_cast<double>(t.entries));
  out.Set("installs", static_cast<double>(t.installs));
  out.Set("evictions", static_cast<double>(t.evictions));
  out.Set("expired", static_cast<double>(t.expired));
  PuntCounters total;
  uint64_t held = 0;
  Napi::Array workers = Napi::Array::New(env, hub_.workers());
  for (uint32_t w = 0; w < hub_.workers(); ++w) {
    const PuntCounters& c = hub_.worker(w).counters();
    Napi::Object o = Napi::Object::New(env);
#define L4MUX_X(name, str)                                \
  o.Set(str, static_cast<double>(c.name.get()));          \
  total.name.add(c.name.get());
    L4MUX_PUNT_COUNTERS(L4MUX_X)
#undef L4MUX_X
    o.Set("held", static_cast<double>(c.held.get()));
    held += c.held.get();
    workers.Set(w, o);
  }
#define L4MUX_X(name, str) out.Set(str, static_cast<double>(total.name.get()));
  L4MUX_PUNT_COUNTERS(L4MUX_X)
#undef L4MUX_X
  out.Set("held", static_cast<double>(held));
  out.Set("workers", workers);
  return out;
}

Napi::Value PersistenceJs::Arm(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(hub_.arm()));
}

}  // namespace l4mux::addon
