#include "engine_binding.h"

#include <net/if.h>
#include <sched.h>

#include <memory>
#include <stdexcept>
#include <string>

#include "cluster_js.h"
#include "config_convert.h"
#include "counters_js.h"
#include "engine/engine.h"
#include "introspection_js.h"
#include "persistence_js.h"

namespace l4mux::addon {
namespace {

[[noreturn]] void type_error(const Napi::Env& env, const std::string& path, const std::string& reason) {
  throw Napi::TypeError::New(env, path + ": " + reason);
}

bool present(const Napi::Object& obj, const char* name) {
  return obj.Has(name) && !obj.Get(name).IsUndefined();
}

uint32_t integer(const Napi::Object& obj, const char* name, const std::string& path, double lo, double hi) {
  const Napi::Value v = obj.Get(name);
  const std::string where = path + "." + name;
  if (!v.IsNumber()) type_error(obj.Env(), where, "expected a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= lo && d <= hi) || d != static_cast<double>(static_cast<int64_t>(d))) {
    type_error(obj.Env(), where, "expected an integer in " + std::to_string(static_cast<int64_t>(lo)) + ".." +
                                     std::to_string(static_cast<int64_t>(hi)));
  }
  return static_cast<uint32_t>(d);
}

// {interface, workers, cpus?, io?: 'auto' | 'af_packet' | 'af_xdp', xdpMode?: 'auto' | 'native' | 'generic', conntrack: {maxFlows, timeouts}, fanoutGroup?,
//  ring?: {blockSize?, blockCount?, blockTimeoutMs?, headroom?, maxFrameLen?}}
EngineOptions to_engine_options(const Napi::Object& o) {
  const Napi::Env env = o.Env();
  EngineOptions opts;
  const Napi::Value ifname = o.Get("interface");
  if (!ifname.IsString()) type_error(env, "engine.interface", "expected a string");
  opts.interface = ifname.As<Napi::String>().Utf8Value();
  if (opts.interface.empty() || opts.interface.size() >= IFNAMSIZ) {
    type_error(env, "engine.interface", "expected an interface name of 1.." + std::to_string(IFNAMSIZ - 1) + " characters");
  }
  opts.workers = integer(o, "workers", "engine", 1, 1024);
  if (present(o, "cpus")) {
    const Napi::Value v = o.Get("cpus");
    if (!v.IsArray()) type_error(env, "engine.cpus", "expected an array");
    const Napi::Array cpus = v.As<Napi::Array>();
    for (uint32_t i = 0; i < cpus.Length(); ++i) {
      const Napi::Value c = cpus.Get(i);
      const std::string where = "engine.cpus[" + std::to_string(i) + "]";
      if (!c.IsNumber()) type_error(env, where, "expected a number");
      const double d = c.As<Napi::Number>().DoubleValue();
      if (!(d >= 0 && d < CPU_SETSIZE) || d != static_cast<double>(static_cast<int64_t>(d))) {
        type_error(env, where, "expected a CPU number in 0.." + std::to_string(CPU_SETSIZE - 1));
      }
      opts.cpus.push_back(static_cast<int>(d));
    }
  }
  if (present(o, "io")) {
    const Napi::Value io = o.Get("io");
    if (!io.IsString()) type_error(env, "engine.io", "expected a string");
    const std::string kind = io.As<Napi::String>().Utf8Value();
    if (kind == "auto") {
      opts.io = IoKind::kAuto;
    } else if (kind == "af_packet") {
      opts.io = IoKind::kAfPacket;
    } else if (kind == "af_xdp") {
      opts.io = IoKind::kAfXdp;
    } else {
      type_error(env, "engine.io", "\"" + kind + "\" is not one of \"auto\", \"af_packet\", \"af_xdp\"");
    }
  }
  if (present(o, "xdpMode")) {
    const Napi::Value mode = o.Get("xdpMode");
    if (!mode.IsString()) type_error(env, "engine.xdpMode", "expected a string");
    const std::string m = mode.As<Napi::String>().Utf8Value();
    if (m == "auto") {
      opts.xdp_mode = XdpModeRequest::kAuto;
    } else if (m == "native") {
      opts.xdp_mode = XdpModeRequest::kNative;
    } else if (m == "generic") {
      opts.xdp_mode = XdpModeRequest::kGeneric;
    } else {
      type_error(env, "engine.xdpMode", "\"" + m + "\" is not one of \"auto\", \"native\", \"generic\"");
    }
  }
  if (present(o, "cluster")) {
    const Napi::Value c = o.Get("cluster");
    if (!c.IsObject()) type_error(env, "engine.cluster", "expected an object");
    opts.sync = to_sync_settings(c.As<Napi::Object>());
  }
  if (present(o, "persistenceEntries")) {
    opts.persistence_entries = integer(o, "persistenceEntries", "engine", 0, 1e9);
  }
  if (present(o, "puntSlots")) opts.punt.slots = integer(o, "puntSlots", "engine", 16, 65536);
  const Napi::Value ct = o.Get("conntrack");
  if (!ct.IsObject()) type_error(env, "engine.conntrack", "expected an object");
  opts.conntrack = to_conntrack_config(ct.As<Napi::Object>());
  if (present(o, "fanoutGroup")) opts.af_packet.fanout_group = static_cast<uint16_t>(integer(o, "fanoutGroup", "engine", 0, 65535));
  if (present(o, "ring")) {
    const Napi::Value rv = o.Get("ring");
    if (!rv.IsObject()) type_error(env, "engine.ring", "expected an object");
    const Napi::Object r = rv.As<Napi::Object>();
    AfPacketOptions& a = opts.af_packet;
    if (present(r, "blockSize")) a.block_size = integer(r, "blockSize", "engine.ring", 4096, 1u << 30);
    if (present(r, "blockCount")) a.block_count = integer(r, "blockCount", "engine.ring", 2, 65536);
    if (present(r, "blockTimeoutMs")) a.block_timeout_ms = integer(r, "blockTimeoutMs", "engine.ring", 1, 1000);
    if (present(r, "headroom")) a.headroom = integer(r, "headroom", "engine.ring", 128, 4096);
    if (present(r, "maxFrameLen")) a.max_frame_len = integer(r, "maxFrameLen", "engine.ring", 64, 65535);
  }
  return opts;
}

// A snapshot prepared off the event loop for one engine, held by JS as an External until
// publishConfig (or the garbage collector) takes it.
struct PreparedBox {
  const Engine* engine;
  PreparedConfig prepared;
};

// Marks the Externals this file makes, so that publishConfig never casts a foreign one.
constexpr napi_type_tag kPreparedTag = {0x6c346d7578707265ull, 0x70617265645f7631ull};

// prepareConfig / setConfigAsync: the ConfigSpec is read from JS on the event loop (cheap),
// the snapshot built on a libuv pool thread (the Maglev tables: the heavy part); setConfigAsync
// publishes it when the build is done, prepareConfig hands it to JS.
class PrepareWorker : public Napi::AsyncWorker {
 public:
  PrepareWorker(Napi::Object owner, Engine& engine, ConfigSpec spec, bool publish)
      : Napi::AsyncWorker(owner.Env(), publish ? "l4mux.setConfigAsync" : "l4mux.prepareConfig"),
        owner_(Napi::Persistent(owner)),
        engine_(engine),
        spec_(std::move(spec)),
        publish_(publish),
        deferred_(Napi::Promise::Deferred::New(owner.Env())) {}

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      prepared_ = engine_.prepare_config(spec_);
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }

  void OnOK() override {
    const Napi::Env env = Env();
    if (publish_) {
      try {
        engine_.publish_config(std::move(prepared_));
      } catch (const std::exception& e) {
        deferred_.Reject(Napi::Error::New(env, e.what()).Value());
        return;
      }
      deferred_.Resolve(env.Undefined());
      return;
    }
    auto* box = new PreparedBox{&engine_, std::move(prepared_)};
    Napi::External<PreparedBox> handle =
        Napi::External<PreparedBox>::New(env, box, [](Napi::Env, PreparedBox* b) { delete b; });
    handle.TypeTag(&kPreparedTag);
    deferred_.Resolve(handle);
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::ObjectReference owner_;  // keeps the engine alive while the build runs
  Engine& engine_;
  ConfigSpec spec_;
  bool publish_;
  PreparedConfig prepared_;
  Napi::Promise::Deferred deferred_;
};

class EngineWrap : public Napi::ObjectWrap<EngineWrap>, public PersistenceMethods<EngineWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    std::vector<Napi::ClassPropertyDescriptor<EngineWrap>> properties = {
                        InstanceMethod<&EngineWrap::SetConfig>("setConfig"),
                        InstanceMethod<&EngineWrap::SetConfigAsync>("setConfigAsync"),
                        InstanceMethod<&EngineWrap::PrepareConfig>("prepareConfig"),
                        InstanceMethod<&EngineWrap::PublishConfig>("publishConfig"),
                        InstanceMethod<&EngineWrap::Start>("start"),
                        InstanceMethod<&EngineWrap::Stop>("stop"),
                        InstanceMethod<&EngineWrap::Counters>("counters"),
                        InstanceMethod<&EngineWrap::IoMode>("ioMode"),
                        InstanceMethod<&EngineWrap::PollFlowEvents>("pollFlowEvents"),
                        InstanceMethod<&EngineWrap::InstallFlows>("installFlows"),
                        InstanceMethod<&EngineWrap::DumpPeerFlows>("dumpPeerFlows"),
                        InstanceMethod<&EngineWrap::SyncMark>("syncMark"),
                        InstanceMethod<&EngineWrap::SyncDrained>("syncDrained"),
                        InstanceMethod<&EngineWrap::Owners>("owners"),
                        InstanceMethod<&EngineWrap::SyncStats>("syncStats"),
                        InstanceMethod<&EngineWrap::LookupFlow>("lookupFlow"),
                        InstanceMethod<&EngineWrap::StartCapture>("startCapture"),
                        InstanceMethod<&EngineWrap::DrainCapture>("drainCapture"),
                        InstanceMethod<&EngineWrap::StopCapture>("stopCapture")};
    add_persistence_methods(properties);
    return DefineClass(env, "Engine", properties);
  }

  explicit EngineWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EngineWrap>(info), env_(info.Env()) {
    if (info.Length() < 1 || !info[0].IsObject()) {
      throw Napi::TypeError::New(info.Env(), "Engine(options): options object expected");
    }
    const EngineOptions opts = to_engine_options(info[0].As<Napi::Object>());
    try {
      engine_ = std::make_unique<Engine>(opts);
    } catch (const std::exception& e) {
      throw Napi::Error::New(info.Env(), e.what());
    }
    if (PersistenceHub* hub = engine_->persistence()) {
      Engine* engine = engine_.get();
      persistence_ = std::make_unique<PersistenceJs>(*hub, engine->publisher(), [] { return Engine::clock_ns(); },
                                                     [engine](uint32_t w) { engine->wake_worker(w); });
    }
    // Worker threads must not outlive the environment (process exit, worker_threads).
    if (napi_add_env_cleanup_hook(env_, &EngineWrap::OnEnvCleanup, this) == napi_ok) hooked_ = true;
  }

  ~EngineWrap() override {
    if (hooked_) napi_remove_env_cleanup_hook(env_, &EngineWrap::OnEnvCleanup, this);
    if (engine_) engine_->stop();  // no worker notifies the wakeup any more
    persistence_.reset();
    engine_.reset();  // joins the workers
  }

 private:
  static void OnEnvCleanup(void* arg) {
    auto* self = static_cast<EngineWrap*>(arg);
    self->hooked_ = false;
    if (self->engine_) self->engine_->stop();
    self->persistence_.reset();
  }

  // ---- Client persistence (PersistenceApi in src/dataplane/engine.ts) ----

  friend class PersistenceMethods<EngineWrap>;  // its methods forward to persistence()
  PersistenceJs& persistence(const Napi::Env& env) {
    if (!persistence_) throw Napi::Error::New(env, "this engine was made without persistenceEntries");
    return *persistence_;
  }

  Napi::Value SetConfig(const Napi::CallbackInfo& info) {
    if (info.Length() < 1 || !info[0].IsObject()) {
      throw Napi::TypeError::New(info.Env(), "setConfig(config): config object expected");
    }
    const ConfigSpec spec = to_config_spec(info[0].As<Napi::Object>());
    try {
      engine_->set_config(spec);
    } catch (const std::invalid_argument& e) {
      throw Napi::Error::New(info.Env(), e.what());
    }
    return info.Env().Undefined();
  }

  // setConfigAsync(config) -> Promise<void>: setConfig with the build off the event loop. Bad
  // input: a TypeError thrown at once (nothing started), or a rejection (nothing applied).
  Napi::Value SetConfigAsync(const Napi::CallbackInfo& info) { return Prepare(info, true); }
  // prepareConfig(config) -> Promise<prepared>: the build alone; publishConfig(prepared) swaps
  // it in. A prepared snapshot never published is freed by the garbage collector.
  Napi::Value PrepareConfig(const Napi::CallbackInfo& info) { return Prepare(info, false); }

  Napi::Value Prepare(const Napi::CallbackInfo& info, bool publish) {
    if (info.Length() < 1 || !info[0].IsObject()) {
      throw Napi::TypeError::New(info.Env(), std::string(publish ? "setConfigAsync" : "prepareConfig") +
                                                 "(config): config object expected");
    }
    ConfigSpec spec = to_config_spec(info[0].As<Napi::Object>());
    auto* worker = new PrepareWorker(info.This().As<Napi::Object>(), *engine_, std::move(spec), publish);
    Napi::Promise promise = worker->promise();
    worker->Queue();
    return promise;
  }

  Napi::Value PublishConfig(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsExternal() || !info[0].As<Napi::External<PreparedBox>>().CheckTypeTag(&kPreparedTag)) {
      throw Napi::TypeError::New(env, "publishConfig(prepared): a value from prepareConfig expected");
    }
    PreparedBox* box = info[0].As<Napi::External<PreparedBox>>().Data();
    if (box->engine != engine_.get()) throw Napi::Error::New(env, "publishConfig: prepared for another engine");
    if (!box->prepared.snapshot) throw Napi::Error::New(env, "publishConfig: already published");
    try {
      engine_->publish_config(std::move(box->prepared));
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
    box->prepared = PreparedConfig{};
    return env.Undefined();
  }

  // ---- Cluster sync (see cluster/flow_sync.h) ----

  Napi::Value PollFlowEvents(const Napi::CallbackInfo& info) {
    const size_t max = max_records_arg(info, 0);
    std::vector<uint8_t> out(max * cluster::kFlowRecordSize);
    const size_t n = engine_->poll_flow_events(out.data(), max);
    return Napi::Buffer<uint8_t>::Copy(info.Env(), out.data(), n * cluster::kFlowRecordSize);
  }

  Napi::Value InstallFlows(const Napi::CallbackInfo& info) {
    const Napi::Buffer<uint8_t> records = records_arg(info, 0);
    return install_result_to_js(info.Env(), engine_->install_flows(records.Data(), records.Length()));
  }

  Napi::Value SyncMark(const Napi::CallbackInfo& info) { return mark_to_js(info.Env(), engine_->sync_mark()); }

  // dumpPeerFlows(cursor, maxRecords?) -> {records, cursor}
  Napi::Value DumpPeerFlows(const Napi::CallbackInfo& info) {
    uint32_t cursor = cursor_arg(info, 0);
    const size_t max = max_records_arg(info, 1);
    std::vector<uint8_t> out(max * cluster::kFlowRecordSize);
    const size_t n = engine_->dump_peer_flows(&cursor, out.data(), max);
    return dump_to_js(info.Env(), out, n, cursor);
  }

  Napi::Value SyncDrained(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), engine_->sync_drained(mark_arg(info, 0)));
  }

  Napi::Value Owners(const Napi::CallbackInfo& info) {
    if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(info.Env(), "owners(flow): flow object expected");
    return owners_to_js(info.Env(), engine_->owners(to_flow_key(info[0].As<Napi::Object>())));
  }

  Napi::Value SyncStats(const Napi::CallbackInfo& info) {
    const Engine::SyncStatus s = engine_->sync_status();
    std::vector<std::vector<std::pair<std::string_view, uint64_t>>> workers;
    std::vector<uint64_t> overflow;
    for (const auto& w : s.workers) {
      workers.push_back(w.counters);
      overflow.push_back(w.export_overflow);
    }
    return sync_stats_to_js(info.Env(), s.hub, workers, overflow);
  }

  Napi::Value Start(const Napi::CallbackInfo& info) {
    try {
      engine_->start();
    } catch (const std::exception& e) {
      throw Napi::Error::New(info.Env(), e.what());
    }
    return info.Env().Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    engine_->stop();
    return info.Env().Undefined();
  }

  // Dataplane.counters() summed over the workers, plus
  //   io: {rxPackets, rxKernelDrops, rxOversized, rxIgnored, txPackets, txErrors, txRingFull}
  //   workers: [{rx, tx, passed, dropped, io: {...as above}, description}]
  // {mode: 'af_xdp' | 'af_packet', xdpMode?: 'native' | 'generic', reason}
  Napi::Value IoMode(const Napi::CallbackInfo& info) {
    const IoChoice c = engine_->io_choice();
    Napi::Object out = Napi::Object::New(info.Env());
    out.Set("mode", c.mode);
    if (!c.xdp_mode.empty()) out.Set("xdpMode", c.xdp_mode);
    out.Set("reason", c.reason);
    return out;
  }

  Napi::Value LookupFlow(const Napi::CallbackInfo& info) { return lookup_flow_js(info, *engine_); }
  Napi::Value StartCapture(const Napi::CallbackInfo& info) {
    start_capture_js(info, *engine_);
    return info.Env().Undefined();
  }
  Napi::Value DrainCapture(const Napi::CallbackInfo& info) { return drain_capture_js(info, *engine_); }
  Napi::Value StopCapture(const Napi::CallbackInfo& info) { return stop_capture_js(info, *engine_); }

  Napi::Value Counters(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    const EngineCounters c = engine_->counters();
    Napi::Object out = counters_to_js(
        env, CountersView{*c.total, c.vip_keys, c.vip_names, c.backend_keys, c.conntrack, c.conntrack_capacity});
    out.Set("io", io_stats_to_js(env, c.io));
    out.Set("rings", ring_levels_to_js(env, c.rings));
    Napi::Array workers = Napi::Array::New(env, c.workers.size());
    for (uint32_t i = 0; i < c.workers.size(); ++i) {
      workers.Set(i, worker_status_to_js(env, c.workers[i]));
    }
    out.Set("workers", workers);
    return out;
  }

  napi_env env_;
  bool hooked_ = false;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<PersistenceJs> persistence_;  // reset before engine_ (it points into it)
};

}  // namespace

void register_engine(Napi::Env env, Napi::Object exports) {
  exports.Set("Engine", EngineWrap::Define(env));
}

}  // namespace l4mux::addon
