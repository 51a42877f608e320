// Node-API binding of one pipeline driven from the calling thread: `new Dataplane(settings)`
// with setConfig / process / replay / counters / table and the cluster-sync methods, for
// replay, tests and tools. The daemon's live workers (engine_binding.cc) run the same core and
// receive configurations the same way (engine/config_publisher.h).
#include "dataplane_binding.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cluster_js.h"
#include "config_convert.h"
#include "counters.h"
#include "defaults.h"
#include "counters_js.h"
#include "engine/config_publisher.h"
#include "pcap_replay.h"
#include "persistence_js.h"
#include "pipeline.h"
#include "snapshot.h"

namespace l4mux::addon {
namespace {

constexpr uint32_t kMaxVips = defaults::kMaxVips;
constexpr uint32_t kMaxBackends = defaults::kMaxBackends;
constexpr uint32_t kHeadroom = defaults::kHeadroom;  // room for the outer headers in front of each frame

class Dataplane : public Napi::ObjectWrap<Dataplane>, public PersistenceMethods<Dataplane> {
 public:
  static Napi::Function Define(Napi::Env env) {
    std::vector<Napi::ClassPropertyDescriptor<Dataplane>> properties = {
                        InstanceMethod<&Dataplane::SetConfig>("setConfig"),
                        InstanceMethod<&Dataplane::Process>("process"),
                        InstanceMethod<&Dataplane::Replay>("replay"),
                        InstanceMethod<&Dataplane::Counters>("counters"),
                        InstanceMethod<&Dataplane::Table>("table"),
                        InstanceMethod<&Dataplane::PollFlowEvents>("pollFlowEvents"),
                        InstanceMethod<&Dataplane::InstallFlows>("installFlows"),
                        InstanceMethod<&Dataplane::DumpPeerFlows>("dumpPeerFlows"),
                        InstanceMethod<&Dataplane::SyncMark>("syncMark"),
                        InstanceMethod<&Dataplane::SyncDrained>("syncDrained"),
                        InstanceMethod<&Dataplane::Owners>("owners"),
                        InstanceMethod<&Dataplane::SyncStats>("syncStats"),
                        InstanceMethod<&Dataplane::ReleaseHeld>("releaseHeld")};
    add_persistence_methods(properties);
    return DefineClass(env, "Dataplane", properties);
  }

  explicit Dataplane(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<Dataplane>(info),
        publisher_(1, kMaxVips, kMaxBackends),
        counters_(kMaxVips, kMaxBackends) {
    if (info.Length() < 1 || !info[0].IsObject()) {
      throw Napi::TypeError::New(info.Env(), "Dataplane(settings): settings object expected");
    }
    const ConntrackConfig conntrack = to_conntrack_config(info[0].As<Napi::Object>());
    // Dataplane(settings, clusterCapacity?): with the second, the pipeline exports flow records
    // and uses a peer-entry table, as an engine's worker does.
    PipelineOptions options;
    if (info.Length() >= 2 && info[1].IsObject()) {
      sync_ = std::make_unique<cluster::SyncHub>(to_sync_settings(info[1].As<Napi::Object>()), 1, conntrack.timeouts);
      options.sync = &sync_->worker(0);
    }
    // settings.persistenceEntries (> 0): a persistence table and punt slots (settings.puntSlots),
    // the Engine's persistence API with the clock of the last process() call, and
    // releaseHeld() to run the answered packets through the pipeline.
    const Napi::Object settings = info[0].As<Napi::Object>();
    const Napi::Value entries = settings.Get("persistenceEntries");
    if (entries.IsNumber() && entries.As<Napi::Number>().DoubleValue() >= 1) {
      PuntSettings punt;
      const Napi::Value slots = settings.Get("puntSlots");
      if (slots.IsNumber()) punt.slots = std::clamp<uint32_t>(slots.As<Napi::Number>().Uint32Value(), 1, 65536);
      hub_ = std::make_unique<PersistenceHub>(
          static_cast<uint32_t>(std::min(entries.As<Napi::Number>().DoubleValue(), 1e9)), kMaxVips, 1, punt);
      options.persistence = hub_.get();
      persistence_ = std::make_unique<PersistenceJs>(*hub_, publisher_, [this] { return last_now_; }, nullptr);
    }
    pipeline_ = std::make_unique<Pipeline>(conntrack, counters_, options);
  }

 private:
  Napi::Value SetConfig(const Napi::CallbackInfo& info) {
    if (info.Length() < 1 || !info[0].IsObject()) {
      throw Napi::TypeError::New(info.Env(), "setConfig(config): config object expected");
    }
    const ConfigSpec spec = to_config_spec(info[0].As<Napi::Object>());
    try {
      publisher_.apply(spec);
    } catch (const std::invalid_argument& e) {
      throw Napi::Error::New(info.Env(), e.what());
    }
    return info.Env().Undefined();
  }

  const Snapshot& current(const Napi::Env& env) {
    const Snapshot* snap = publisher_.current();
    if (snap == nullptr) throw Napi::Error::New(env, "no configuration: call setConfig first");
    return *snap;
  }

  // process([{frame: Buffer, checksumPartial?: boolean}], nowNs: bigint) -> results
  Napi::Value Process(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsArray() || !info[1].IsBigInt()) {
      throw Napi::TypeError::New(env, "process(packets, nowNs): array and bigint expected");
    }
    bool lossless = false;
    const uint64_t now_ns = info[1].As<Napi::BigInt>().Uint64Value(&lossless);
    last_now_ = now_ns;
    const Napi::Array input = info[0].As<Napi::Array>();
    const Snapshot& snap = current(env);
    Napi::Array results = Napi::Array::New(env, input.Length());

    std::vector<uint8_t> storage;
    std::vector<Packet> batch;
    for (uint32_t start = 0; start < input.Length(); start += kMaxBatch) {
      const uint32_t n = std::min<uint32_t>(kMaxBatch, input.Length() - start);
      size_t slot_size = 0;
      for (uint32_t i = 0; i < n; ++i) {
        slot_size = std::max<size_t>(slot_size, frame_of(env, input, start + i).Length());
      }
      slot_size += kHeadroom;
      storage.assign(slot_size * n, 0);
      batch.assign(n, Packet{});
      for (uint32_t i = 0; i < n; ++i) {
        const Napi::Buffer<uint8_t> frame = frame_of(env, input, start + i);
        uint8_t* slot = storage.data() + i * slot_size;
        std::memcpy(slot + kHeadroom, frame.Data(), frame.Length());
        batch[i].data = slot + kHeadroom;
        batch[i].len = static_cast<uint32_t>(frame.Length());
        batch[i].headroom = kHeadroom;
        const Napi::Value partial = input.Get(start + i).As<Napi::Object>().Get("checksumPartial");
        if (partial.IsBoolean() && partial.As<Napi::Boolean>().Value()) {
          batch[i].flags |= kPacketChecksumPartial;
        }
      }
      pipeline_->process(std::span<Packet>(batch.data(), n), snap, now_ns);
      for (uint32_t i = 0; i < n; ++i) results.Set(start + i, result_of(env, snap, batch[i]));
    }
    return results;
  }

  static Napi::Object result_of(const Napi::Env& env, const Snapshot& snap, const Packet& p) {
    Napi::Object r = Napi::Object::New(env);
    switch (p.verdict) {
      case Verdict::kTx:
        r.Set("verdict", "tx");
        r.Set("frame", Napi::Buffer<uint8_t>::Copy(env, p.data, p.len));
        if (p.backend != kMaglevNoBackend) {
          r.Set("backend", format_addr(snap.backends()[p.backend].addr));
        }
        break;
      case Verdict::kPass:
        r.Set("verdict", "pass");
        break;
      case Verdict::kDrop:
        r.Set("verdict", "drop");
        r.Set("reason", std::string(drop_reason_name(p.reason)));
        break;
      case Verdict::kHeld:
        r.Set("verdict", "held");
        break;
    }
    return r;
  }

  // ---- Client persistence (PersistenceApi), with the clock of the last process() ----

  friend class PersistenceMethods<Dataplane>;  // its methods forward to persistence()
  PersistenceJs& persistence(const Napi::Env& env) {
    if (!persistence_) throw Napi::Error::New(env, "this Dataplane was made without persistenceEntries");
    return *persistence_;
  }

  // releaseHeld(nowNs?) -> results (as process() gives them) of the answered held packets,
  // re-injected as a worker does between batches; packets held too long are dropped.
  Napi::Value ReleaseHeld(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    persistence(env);
    if (info.Length() >= 1 && info[0].IsBigInt()) {
      bool lossless = false;
      last_now_ = info[0].As<Napi::BigInt>().Uint64Value(&lossless);
    }
    const Snapshot& snap = current(env);
    Napi::Array results = Napi::Array::New(env);
    uint32_t total = 0;
    std::array<Packet, kMaxBatch> out{};
    std::array<uint32_t, kMaxBatch> slots{};
    for (;;) {
      const uint32_t n = pipeline_->release_answers(snap, last_now_, std::span<Packet>(out.data(), out.size()), slots.data());
      for (uint32_t i = 0; i < n; ++i) results.Set(total++, result_of(env, snap, out[i]));
      pipeline_->finish_release(slots.data(), n, n);  // "sent": handed to JavaScript
      if (n < out.size()) break;
    }
    return results;
  }

  static Napi::Buffer<uint8_t> frame_of(const Napi::Env& env, const Napi::Array& input, uint32_t i) {
    const Napi::Value v = input.Get(i);
    if (!v.IsObject() || !v.As<Napi::Object>().Get("frame").IsBuffer()) {
      throw Napi::TypeError::New(env, "packets[" + std::to_string(i) + "].frame: Buffer expected");
    }
    return v.As<Napi::Object>().Get("frame").As<Napi::Buffer<uint8_t>>();
  }

  Napi::Value Replay(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString()) {
      throw Napi::TypeError::New(env, "replay(inPath, outPath): two paths expected");
    }
    ReplayResult result;
    try {
      result = replay_pcap(info[0].As<Napi::String>(), info[1].As<Napi::String>(), *pipeline_,
                           current(env));
    } catch (const std::runtime_error& e) {
      throw Napi::Error::New(env, e.what());
    }
    Napi::Object summary = Napi::Object::New(env);
    summary.Set("packetsIn", static_cast<double>(result.packets_in));
    summary.Set("packetsOut", static_cast<double>(result.packets_out));
    summary.Set("counters", Counters(info));
    return summary;
  }

  Napi::Value Counters(const Napi::CallbackInfo& info) {
    const SlotNames names = publisher_.slot_names();
    return counters_to_js(info.Env(), CountersView{counters_, names.vip_keys, names.vip_names, names.backend_keys,
                                                   pipeline_->conntrack().stats(),
                                                   pipeline_->conntrack().capacity()});
  }

  // table(vipName) -> {backends: string[], entries: Int32Array}: the VIP's Maglev table, each
  // entry an index into backends (-1: no backend). For tests and tools measuring disruption.
  Napi::Value Table(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "table(vipName): a name expected");
    const std::string name = info[0].As<Napi::String>();
    const Snapshot& snap = current(env);
    for (const Vip& vip : snap.vips()) {
      if (vip.name != name) continue;
      Napi::Array backends = Napi::Array::New(env, snap.backends().size());
      for (uint32_t s = 0; s < snap.backends().size(); ++s) backends.Set(s, format_addr(snap.backends()[s].addr));
      Napi::Int32Array entries = Napi::Int32Array::New(env, vip.table.size());
      for (size_t i = 0; i < vip.table.size(); ++i) {
        entries[i] = vip.table[i] == kMaglevNoBackend ? -1 : static_cast<int32_t>(vip.table[i]);
      }
      Napi::Object out = Napi::Object::New(env);
      out.Set("backends", backends);
      out.Set("entries", entries);
      return out;
    }
    throw Napi::Error::New(env, "no VIP named \"" + name + "\"");
  }

  // ---- Cluster sync: the Engine's methods, with the caller's clock (nowNs) ----

  static uint64_t now_arg(const Napi::CallbackInfo& info, size_t index) {
    if (info.Length() <= index || info[index].IsUndefined()) return 0;
    if (!info[index].IsBigInt()) throw Napi::TypeError::New(info.Env(), "nowNs: a bigint expected");
    bool lossless = false;
    return info[index].As<Napi::BigInt>().Uint64Value(&lossless);
  }

  cluster::SyncHub& sync(const Napi::Env& env) {
    if (!sync_) throw Napi::Error::New(env, "this Dataplane was made without cluster capacity: no sync");
    return *sync_;
  }

  cluster::BackendResolver resolver() {
    return [this](const IpAddr& a) { return publisher_.backend_slot(a); };
  }

  // pollFlowEvents(maxRecords?, nowNs?) -> Buffer of n*64 bytes
  Napi::Value PollFlowEvents(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    const size_t max = max_records_arg(info, 0);
    std::vector<uint8_t> out(max * cluster::kFlowRecordSize);
    const cluster::BackendAddress address = [this](uint32_t slot) { return publisher_.backend_address(slot); };
    const size_t n = sync(env).poll(current(env), address, out.data(), max, now_arg(info, 1));
    return Napi::Buffer<uint8_t>::Copy(env, out.data(), n * cluster::kFlowRecordSize);
  }

  // installFlows(records, nowNs?) -> {accepted, refused}
  Napi::Value InstallFlows(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    const Napi::Buffer<uint8_t> records = records_arg(info, 0);
    return install_result_to_js(
        env, sync(env).install(records.Data(), records.Length(), current(env), resolver(), now_arg(info, 1)));
  }

  Napi::Value SyncMark(const Napi::CallbackInfo& info) { return mark_to_js(info.Env(), sync(info.Env()).mark()); }

  // dumpPeerFlows(cursor, maxRecords?, nowNs?) -> {records, cursor}
  Napi::Value DumpPeerFlows(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    uint32_t cursor = cursor_arg(info, 0);
    const size_t max = max_records_arg(info, 1);
    std::vector<uint8_t> out(max * cluster::kFlowRecordSize);
    const size_t n = sync(env).dump(current(env), &cursor, out.data(), max, now_arg(info, 2));
    return dump_to_js(env, out, n, cursor);
  }

  Napi::Value SyncDrained(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), sync(info.Env()).drained(mark_arg(info, 0)));
  }

  // owners({client, clientPort, vip, vipPort, protocol}) -> {owner, backup} (255: none)
  Napi::Value Owners(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "owners(flow): flow object expected");
    const FlowKey key = to_flow_key(info[0].As<Napi::Object>());
    const cluster::ClusterView* c = current(env).cluster();
    return owners_to_js(env, c != nullptr ? c->owners(key) : cluster::Owners{});
  }

  Napi::Value SyncStats(const Napi::CallbackInfo& info) {
    const cluster::SyncHub& hub = sync(info.Env());
    const cluster::WorkerSync& w = hub.worker(0);
    std::vector<std::pair<std::string_view, uint64_t>> counters;
#define L4MUX_X(name, str) counters.emplace_back(str, w.counters().name.get());
    L4MUX_SYNC_COUNTERS(L4MUX_X)
#undef L4MUX_X
    return sync_stats_to_js(info.Env(), hub.stats(), {counters}, {w.ring().overflow()});
  }

  ConfigPublisher publisher_;  // one reader: this thread
  WorkerCounters counters_;
  std::unique_ptr<cluster::SyncHub> sync_;  // before pipeline_, which points into it
  std::unique_ptr<PersistenceHub> hub_;  // before pipeline_, which points into it
  std::unique_ptr<PersistenceJs> persistence_;
  uint64_t last_now_ = 0;
  std::unique_ptr<Pipeline> pipeline_;
};

}  // namespace

void register_dataplane(Napi::Env env, Napi::Object exports) {
  exports.Set("Dataplane", Dataplane::Define(env));
}

}  // namespace l4mux::addon
