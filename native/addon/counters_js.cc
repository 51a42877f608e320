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
  out.Set("rx", num(counters.rx));
  out.Set("tx", num(counters.tx));
  out.Set("passed", num(counters.passed));
  out.Set("dropped", num(counters.dropped));
  out.Set("echoReplies", num(counters.echo_replies));
  out.Set("icmpErrorsForwarded", num(counters.icmp_errors_forwarded));
  out.Set("checksumsFinalized", num(counters.checksums_finalized));
  out.Set("icmpTooBigSent", num(counters.icmp_too_big_sent));
  out.Set("tcpResetsSent", num(counters.tcp_resets_sent));

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
    v.Set("packets", num(c->packets));
    v.Set("bytes", num(c->bytes));
    v.Set("newFlows", num(c->new_flows));
    v.Set("noBackend", num(c->no_backend));
    v.Set("flowsUntracked", num(c->flows_untracked));
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
    b.Set("packets", num(c->packets));
    b.Set("bytes", num(c->bytes));
    b.Set("activeFlows", num(c->active_flows));
    b.Set("flowsCut", num(c->flows_cut));
    backends.Set(slot, b);
  }
  out.Set("backends", backends);

  out.Set("conntrack", conntrack_stats_to_js(env, view.conntrack, view.conntrack_capacity));
  return out;
}

Napi::Object conntrack_stats_to_js(Napi::Env env, const ConntrackStats& stats, uint64_t capacity) {
  Napi::Object conntrack = Napi::Object::New(env);
  conntrack.Set("inserts", num(stats.inserts));
  conntrack.Set("evictions", num(stats.evictions));
  conntrack.Set("expiredReused", num(stats.expired_reused));
  conntrack.Set("liveEntries", num(stats.live_entries));
  conntrack.Set("capacity", num(capacity));
  return conntrack;
}

Napi::Object io_stats_to_js(Napi::Env env, const IoStats& io) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("rxPackets", num(io.rx_packets));
  out.Set("rxKernelDrops", num(io.rx_kernel_drops));
  out.Set("rxOversized", num(io.rx_oversized));
  out.Set("rxIgnored", num(io.rx_ignored));
  out.Set("txPackets", num(io.tx_packets));
  out.Set("txErrors", num(io.tx_errors));
  out.Set("txRingFull", num(io.tx_ring_full));
  return out;
}

}  // namespace l4mux::addon
