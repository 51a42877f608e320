// Node-API binding: a thin layer over the core. `Dataplane` is one pipeline driven from the
// calling thread (replay, tests, tools); the live workers of the daemon use the same core.
#include <napi.h>

#include <cstring>
#include <memory>
#include <vector>

#include "config_convert.h"
#include "counters.h"
#include "pcap_replay.h"
#include "pipeline.h"
#include "snapshot.h"
#include "snapshot_holder.h"

namespace l4mux::addon {
namespace {

constexpr uint32_t kMaxVips = 4096;
constexpr uint32_t kMaxBackends = 65536;
constexpr uint32_t kHeadroom = 256;
constexpr uint32_t kReader = 0;

class Dataplane : public Napi::ObjectWrap<Dataplane> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Dataplane",
                       {InstanceMethod<&Dataplane::SetConfig>("setConfig"),
                        InstanceMethod<&Dataplane::Process>("process"),
                        InstanceMethod<&Dataplane::Replay>("replay"),
                        InstanceMethod<&Dataplane::Counters>("counters")});
  }

  explicit Dataplane(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<Dataplane>(info),
        backends_(kMaxBackends),
        vips_(kMaxVips),
        snapshots_(1),
        counters_(kMaxVips, kMaxBackends) {
    if (info.Length() < 1 || !info[0].IsObject()) {
      throw Napi::TypeError::New(info.Env(), "Dataplane(settings): settings object expected");
    }
    pipeline_ = std::make_unique<Pipeline>(to_conntrack_config(info[0].As<Napi::Object>()), counters_);
  }

 private:
  Napi::Value SetConfig(const Napi::CallbackInfo& info) {
    if (info.Length() < 1 || !info[0].IsObject()) {
      throw Napi::TypeError::New(info.Env(), "setConfig(config): config object expected");
    }
    const ConfigSpec spec = to_config_spec(info[0].As<Napi::Object>());
    try {
      snapshots_.publish(Snapshot::build(spec, backends_, vips_));
    } catch (const std::invalid_argument& e) {
      throw Napi::Error::New(info.Env(), e.what());
    }
    for (const VipSpec& v : spec.vips) {
      if (auto slot = vips_.find(v.key)) vip_names_[*slot] = v.name;
    }
    return info.Env().Undefined();
  }

  const Snapshot& current(const Napi::Env& env) {
    const Snapshot* snap = snapshots_.current_for_control();
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
      for (uint32_t i = 0; i < n; ++i) {
        Napi::Object r = Napi::Object::New(env);
        const Packet& p = batch[i];
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
        }
        results.Set(start + i, r);
      }
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
    const Napi::Env env = info.Env();
    auto num = [](const Counter& c) { return static_cast<double>(c.get()); };
    Napi::Object out = Napi::Object::New(env);
    out.Set("rx", num(counters_.rx));
    out.Set("tx", num(counters_.tx));
    out.Set("passed", num(counters_.passed));
    out.Set("dropped", num(counters_.dropped));
    out.Set("echoReplies", num(counters_.echo_replies));
    out.Set("icmpErrorsForwarded", num(counters_.icmp_errors_forwarded));
    out.Set("checksumsFinalized", num(counters_.checksums_finalized));
    out.Set("icmpTooBigSent", num(counters_.icmp_too_big_sent));

    Napi::Object drops = Napi::Object::New(env);
    for (size_t r = 0; r < kDropReasonCount; ++r) {
      drops.Set(std::string(drop_reason_name(static_cast<DropReason>(r))), num(counters_.drops[r]));
    }
    out.Set("drops", drops);

    Napi::Array vips = Napi::Array::New(env);
    for (uint32_t slot = 0; slot < vips_.keys().size(); ++slot) {
      const VipCounters* c = counters_.vip(slot);
      Napi::Object v = Napi::Object::New(env);
      auto name = vip_names_.find(slot);
      v.Set("name", name != vip_names_.end() ? name->second : format_addr(vips_.keys()[slot].addr));
      v.Set("packets", num(c->packets));
      v.Set("bytes", num(c->bytes));
      v.Set("newFlows", num(c->new_flows));
      vips.Set(slot, v);
    }
    out.Set("vips", vips);

    Napi::Array backends = Napi::Array::New(env);
    for (uint32_t slot = 0; slot < backends_.keys().size(); ++slot) {
      const BackendCounters* c = counters_.backend(slot);
      Napi::Object b = Napi::Object::New(env);
      b.Set("address", format_addr(backends_.keys()[slot]));
      b.Set("packets", num(c->packets));
      b.Set("bytes", num(c->bytes));
      backends.Set(slot, b);
    }
    out.Set("backends", backends);

    const ConntrackStats& ct = pipeline_->conntrack().stats();
    Napi::Object conntrack = Napi::Object::New(env);
    conntrack.Set("inserts", static_cast<double>(ct.inserts));
    conntrack.Set("evictions", static_cast<double>(ct.evictions));
    conntrack.Set("expiredReused", static_cast<double>(ct.expired_reused));
    conntrack.Set("capacity", static_cast<double>(pipeline_->conntrack().capacity()));
    out.Set("conntrack", conntrack);
    return out;
  }

  BackendRegistry backends_;
  VipRegistry vips_;
  SnapshotHolder<Snapshot> snapshots_;
  WorkerCounters counters_;
  std::unique_ptr<Pipeline> pipeline_;
  std::unordered_map<uint32_t, std::string> vip_names_;
};

Napi::Value DropReasons(const Napi::CallbackInfo& info) {
  Napi::Array names = Napi::Array::New(info.Env(), kDropReasonCount);
  for (size_t r = 0; r < kDropReasonCount; ++r) {
    names.Set(static_cast<uint32_t>(r), std::string(drop_reason_name(static_cast<DropReason>(r))));
  }
  return names;
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Dataplane", Dataplane::Define(env));
  exports.Set("dropReasons", Napi::Function::New<DropReasons>(env));
  return exports;
}

}  // namespace l4mux::addon

// The registration macro pastes its argument into an identifier: it needs an unqualified name.
static Napi::Object InitL4mux(Napi::Env env, Napi::Object exports) {
  return l4mux::addon::Init(env, exports);
}
NODE_API_MODULE(l4mux, InitL4mux)
