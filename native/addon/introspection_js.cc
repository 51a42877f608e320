#include "introspection_js.h"

#include <arpa/inet.h>

#include <string>

#include "config_convert.h"

namespace l4mux::addon {
namespace {

[[noreturn]] void type_error(const Napi::Env& env, const std::string& path, const std::string& reason) {
  throw Napi::TypeError::New(env, path + ": " + reason);
}

IpAddr address(const Napi::Object& o, const char* name, const std::string& path) {
  const Napi::Value v = o.Get(name);
  if (!v.IsString()) type_error(o.Env(), path + "." + name, "expected a string");
  const std::string text = v.As<Napi::String>().Utf8Value();
  uint8_t buf[16] = {};
  if (inet_pton(AF_INET, text.c_str(), buf) == 1) return IpAddr::v4(buf);
  if (inet_pton(AF_INET6, text.c_str(), buf) == 1) return IpAddr::v6(buf);
  type_error(o.Env(), path + "." + name, "\"" + text + "\" is not an IPv4 or IPv6 address");
}

uint64_t integer(const Napi::Object& o, const char* name, const std::string& path, double lo, double hi) {
  const Napi::Value v = o.Get(name);
  if (!v.IsNumber()) type_error(o.Env(), path + "." + name, "expected a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= lo && d <= hi) || d != static_cast<double>(static_cast<int64_t>(d))) {
    type_error(o.Env(), path + "." + name, "expected an integer in " + std::to_string(static_cast<int64_t>(lo)) + ".." +
                                               std::to_string(static_cast<int64_t>(hi)));
  }
  return static_cast<uint64_t>(d);
}

bool present(const Napi::Object& o, const char* name) { return o.Has(name) && !o.Get(name).IsUndefined(); }

const char* scheduler_name(Scheduler s) {
  switch (s) {
    case Scheduler::kMaglev: return "maglev";
    case Scheduler::kSourceHash: return "source-hash";
    case Scheduler::kWrr: return "wrr";
    case Scheduler::kWlc: return "wlc";
    case Scheduler::kRandom: return "random";
  }
  return "unknown";
}

const char* hash_fields_name(HashFields f) {
  switch (f) {
    case HashFields::kFiveTuple: return "5-tuple";
    case HashFields::kThreeTuple: return "3-tuple";
    case HashFields::kSrcIp: return "src-ip";
    case HashFields::kSrcIpPort: return "src-ip-port";
  }
  return "unknown";
}

const char* state_name(FlowState s) {
  switch (s) {
    case FlowState::kFree: return "free";
    case FlowState::kTcpSynSeen: return "syn-seen";
    case FlowState::kTcpEstablished: return "established";
    case FlowState::kTcpClosing: return "closing";
    case FlowState::kUdp: return "udp";
    case FlowState::kOther: return "other";
  }
  return "unknown";
}

const char* fate_name(FlowFate f) {
  switch (f) {
    case FlowFate::kKeep: return "keep";
    case FlowFate::kCut: return "cut";
    case FlowFate::kReschedule: return "reschedule";
  }
  return "unknown";
}

std::string hex64(uint64_t v) {
  char buf[19];
  std::snprintf(buf, sizeof(buf), "0x%016llx", static_cast<unsigned long long>(v));
  return buf;
}

class LookupWorker : public Napi::AsyncWorker {
 public:
  LookupWorker(Napi::Object owner, Engine& engine, const FlowKey& key)
      : Napi::AsyncWorker(owner.Env(), "l4mux.lookupFlow"),
        owner_(Napi::Persistent(owner)),
        engine_(engine),
        key_(key),
        deferred_(Napi::Promise::Deferred::New(owner.Env())) {}

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      result_ = engine_.lookup_flow(key_);
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }

  void OnOK() override {
    const Napi::Env env = Env();
    const FlowLookup& r = result_;
    Napi::Object out = Napi::Object::New(env);
    out.Set("flowHash", hex64(r.flow_hash));
    out.Set("vip", r.vip_found ? Napi::Value(Napi::String::New(env, r.vip_name)) : env.Null());
    if (r.vip_found) {
      out.Set("scheduler", scheduler_name(r.scheduler));
      out.Set("hashFields", hash_fields_name(r.hash_fields));
      if (r.table_decides) {
        Napi::Object t = Napi::Object::New(env);
        t.Set("hash", hex64(r.scheduler_hash));
        t.Set("size", r.table_size);
        t.Set("index", r.table_index);
        t.Set("backend", r.table_backend ? Napi::Value(Napi::String::New(env, format_addr(*r.table_backend))) : env.Null());
        out.Set("table", t);
      } else {
        out.Set("table", env.Null());
      }
    }
    Napi::Array workers = Napi::Array::New(env, r.workers.size());
    for (uint32_t i = 0; i < r.workers.size(); ++i) {
      const WorkerFlow& w = r.workers[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("worker", w.worker);
      o.Set("answered", w.answered);
      o.Set("found", w.entry.found);
      if (w.entry.found) {
        o.Set("backend", w.backend ? Napi::Value(Napi::String::New(env, format_addr(*w.backend))) : env.Null());
        o.Set("vip", w.vip_name);
        o.Set("state", state_name(w.entry.state));
        o.Set("idleSeconds", static_cast<double>(w.entry.idle_ns) / 1e9);
        o.Set("expiresInSeconds", static_cast<double>(w.entry.expires_in_ns) / 1e9);
        o.Set("fate", fate_name(w.fate));
      }
      workers.Set(i, o);
    }
    out.Set("workers", workers);
    out.Set("backend", r.backend_now ? Napi::Value(Napi::String::New(env, format_addr(*r.backend_now))) : env.Null());
    out.Set("decidedBy", r.decided_by);
    deferred_.Resolve(out);
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::ObjectReference owner_;  // keeps the Engine (and so engine_) alive until the answer
  Engine& engine_;
  FlowKey key_;
  Napi::Promise::Deferred deferred_;
  FlowLookup result_;
};

}  // namespace

Napi::Value lookup_flow_js(const Napi::CallbackInfo& info, Engine& engine) {
  const Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "lookupFlow(query): query object expected");
  const Napi::Object q = info[0].As<Napi::Object>();
  const IpAddr src = address(q, "src", "query");
  const IpAddr dst = address(q, "dst", "query");
  if (src.family != dst.family) type_error(env, "query", "src and dst are of different address families");
  FlowKey key;
  key.family = src.family;
  key.src = src.bytes;
  key.dst = dst.bytes;
  key.proto = static_cast<uint8_t>(integer(q, "protocol", "query", 0, 255));
  key.src_port = static_cast<uint16_t>(integer(q, "srcPort", "query", 0, 65535));
  key.dst_port = static_cast<uint16_t>(integer(q, "dstPort", "query", 0, 65535));
  auto* worker = new LookupWorker(info.This().As<Napi::Object>(), engine, key);
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

void start_capture_js(const Napi::CallbackInfo& info, Engine& engine) {
  const Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "startCapture(options): options object expected");
  const Napi::Object o = info[0].As<Napi::Object>();
  CaptureRequest r;
  if (present(o, "vip")) {
    const Napi::Value v = o.Get("vip");
    if (!v.IsString()) type_error(env, "capture.vip", "expected a string");
    r.vip_name = v.As<Napi::String>().Utf8Value();
  }
  if (present(o, "backend")) r.backend = address(o, "backend", "capture");
  if (present(o, "count")) r.count = integer(o, "count", "capture", 1, 1e9);
  if (present(o, "snaplen")) r.snaplen = static_cast<uint32_t>(integer(o, "snaplen", "capture", 64, kCaptureMaxSnaplen));
  if (present(o, "sampleEvery")) r.sample_every = static_cast<uint32_t>(integer(o, "sampleEvery", "capture", 1, 1e9));
  try {
    engine.start_capture(r);
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

Napi::Value drain_capture_js(const Napi::CallbackInfo& info, Engine& engine) {
  const Napi::Env env = info.Env();
  Napi::Array out = Napi::Array::New(env);
  uint32_t n = 0;
  engine.drain_capture([&](const CaptureRecordHeader& h, const uint8_t* data) {
    Napi::Object r = Napi::Object::New(env);
    r.Set("worker", h.worker);
    r.Set("packet", h.packet);
    r.Set("direction", h.direction == CaptureDirection::kSent ? "sent" : "received");
    r.Set("verdict", h.verdict == Verdict::kTx ? "tx" : h.verdict == Verdict::kPass ? "pass" : "drop");
    r.Set("seconds", static_cast<double>(h.realtime_ns / 1000000000ull));
    r.Set("nanoseconds", static_cast<double>(h.realtime_ns % 1000000000ull));
    r.Set("originalLength", h.original_len);
    r.Set("data", Napi::Buffer<uint8_t>::Copy(env, data, h.captured_len));
    out.Set(n++, r);
  });
  return out;
}

Napi::Value stop_capture_js(const Napi::CallbackInfo& info, Engine& engine) {
  const CaptureStats s = engine.stop_capture();
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("packets", static_cast<double>(s.packets));
  out.Set("ringFull", static_cast<double>(s.ring_full));
  return out;
}

}  // namespace l4mux::addon
