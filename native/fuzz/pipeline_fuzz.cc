// libFuzzer target: the whole pipeline (parse, VIP match, connection table, Maglev, encap,
// ICMP) on arbitrary frames against snapshots with every encapsulation and scheduler.
//
// Two pipelines see the same inputs: one as the daemon runs it, one with the plain lane off
// (PipelineOptions::plain_lane). The lane is only a shortcut, so the two must agree on every
// verdict, drop reason, output byte, counter and connection-table statistic; any difference
// traps. Each input is one frame, sent as a batch of up to four copies (the first copy makes
// the flow, the next ones hit it), under one of two snapshots (the second takes a backend
// offline, removes another, and sets an egress MTU), with room or not for the tunnel
// headers, and at times after a jump of the clock past every timeout. Beyond that, a
// transmitted frame must lie inside its buffer, and ASan/UBSan catch any stray access.
#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "../tests/frame_builder.h"
#include "counters.h"
#include "pipeline.h"
#include "snapshot.h"

using namespace l4mux;

namespace {

constexpr uint32_t kHeadroom = 128;
constexpr uint32_t kTightHeadroom = 16;  // too little for any tunnel after a 14-byte header
constexpr uint32_t kMaxVips = 64;
constexpr uint32_t kMaxBackends = 1024;
constexpr uint32_t kMaxCopies = 4;

ConfigSpec make_spec(bool changed) {
  using testing::ip;
  ConfigSpec spec;
  spec.seed = 7;
  spec.outer_source_v4 = ip("10.0.0.1");
  spec.outer_source_v6 = ip("fd00::1");
  if (changed) spec.egress_mtu = 200;
  auto add = [&](const char* addr, uint8_t proto, uint16_t port, Encap encap, bool v6_backend,
                 Scheduler scheduler = Scheduler::kMaglev) {
    VipSpec v;
    v.scheduler = scheduler;
    v.name = addr;
    v.key = VipKey{ip(addr), proto, port};
    v.encap = encap;
    v.table_size = 251;
    if (encap == Encap::kGre) v.gre_key = 9;
    v.backends.push_back({ip(v6_backend ? "fd00:1::1" : "10.1.0.1"), 1});
    // The changed snapshot takes this one offline: its flows are cut (TCP answered with RST).
    v.backends.push_back({ip(v6_backend ? "fd00:1::2" : "10.1.0.2"), 2});
    if (changed) v.backends.back().state = AdminState::kOffline;
    // An offline backend falling over to the first: shares moved.
    v.backends.push_back({ip(v6_backend ? "fd00:1::3" : "10.1.0.3"), 1});
    v.backends.back().state = AdminState::kOffline;
    v.backends.back().fallover = {v.backends.front().addr};
    // The changed snapshot removes this one: its flows are scheduled anew.
    if (!changed) v.backends.push_back({ip(v6_backend ? "fd00:1::4" : "10.1.0.4"), 1});
    spec.vips.push_back(v);
  };
  // Addresses the fuzzer can find in the seeds: 192.0.2.10 and 2001:db8::10.
  add("192.0.2.10", kProtoTcp, 80, Encap::kIpip, false);
  add("192.0.2.10", kProtoUdp, 0, Encap::kGue, true, Scheduler::kWlc);
  add("192.0.2.10", kProtoTcp, 0, Encap::kGre, false, Scheduler::kWrr);
  add("2001:db8::10", kProtoTcp, 443, Encap::kIpip, true, Scheduler::kRandom);
  add("2001:db8::10", kProtoUdp, 53, Encap::kGue, false, Scheduler::kSourceHash);
  return spec;
}

struct Harness {
  BackendRegistry backends{kMaxBackends};
  VipRegistry vips{kMaxVips};
  std::array<std::unique_ptr<const Snapshot>, 2> snapshots;
  WorkerCounters counters{kMaxVips, kMaxBackends};
  Pipeline pipeline;

  explicit Harness(bool plain_lane)
      : pipeline(ConntrackConfig{1024, {}}, counters, PipelineOptions{plain_lane, 0x5eed}) {
    snapshots[0] = Snapshot::build(make_spec(false), backends, vips);
    snapshots[1] = Snapshot::build(make_spec(true), backends, vips);
  }
};

struct Run {
  std::array<std::vector<uint8_t>, kMaxCopies> buffers;
  std::array<Packet, kMaxCopies> packets;
};

void check(bool ok) {
  if (!ok) __builtin_trap();
}

bool same_counter(const Counter& a, const Counter& b) { return a.get() == b.get(); }

bool same_counters(const WorkerCounters& a, const WorkerCounters& b) {
  bool same = same_counter(a.rx, b.rx) && same_counter(a.tx, b.tx) && same_counter(a.passed, b.passed) &&
              same_counter(a.dropped, b.dropped) && same_counter(a.echo_replies, b.echo_replies) &&
              same_counter(a.icmp_errors_forwarded, b.icmp_errors_forwarded) &&
              same_counter(a.checksums_finalized, b.checksums_finalized) &&
              same_counter(a.icmp_too_big_sent, b.icmp_too_big_sent) &&
              same_counter(a.tcp_resets_sent, b.tcp_resets_sent);
  for (size_t r = 0; r < kDropReasonCount; ++r) same = same && same_counter(a.drops[r], b.drops[r]);
  for (uint32_t v = 0; v < kMaxVips; ++v) {
    const VipCounters& x = *a.vip(v);
    const VipCounters& y = *b.vip(v);
    same = same && same_counter(x.packets, y.packets) && same_counter(x.bytes, y.bytes) &&
           same_counter(x.new_flows, y.new_flows) && same_counter(x.no_backend, y.no_backend);
  }
  for (uint32_t s = 0; s < kMaxBackends; ++s) {
    const BackendCounters& x = *a.backend(s);
    const BackendCounters& y = *b.backend(s);
    same = same && same_counter(x.packets, y.packets) && same_counter(x.bytes, y.bytes) &&
           same_counter(x.active_flows, y.active_flows) && same_counter(x.flows_cut, y.flows_cut);
  }
  return same;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Harness general(false);
  static Harness with_lane(true);
  static uint64_t now = 0;
  if (size < 1) return 0;
  // The first byte: checksum-partial flag, copies, snapshot, headroom, clock jump.
  const uint8_t control = data[0];
  const uint32_t flags = (control & 1) != 0 ? kPacketChecksumPartial : 0;
  const uint32_t copies = 1 + ((control >> 1) & 3);
  const size_t snapshot = (control >> 3) & 1;
  const uint32_t headroom = (control & 0x10) != 0 ? kTightHeadroom : kHeadroom;
  now += (control & 0x20) != 0 ? 100'000'000'000ull : 1000;  // 100 s: past every timeout
  ++data;
  --size;

  Run runs[2];
  Harness* harnesses[2] = {&general, &with_lane};
  for (int h = 0; h < 2; ++h) {
    Run& run = runs[h];
    for (uint32_t c = 0; c < copies; ++c) {
      // Each frame sits at the end of an exactly sized buffer so ASan catches any over-read.
      std::vector<uint8_t>& buffer = run.buffers[c];
      buffer.resize(headroom + size);
      std::memcpy(buffer.data() + headroom, data, size);
      Packet& pkt = run.packets[c];
      pkt = Packet{};
      pkt.data = buffer.data() + headroom;
      pkt.len = static_cast<uint32_t>(size);
      pkt.headroom = headroom;
      pkt.flags = flags;
    }
    harnesses[h]->pipeline.process(std::span<Packet>(run.packets.data(), copies),
                                   *harnesses[h]->snapshots[snapshot], now);
  }

  for (uint32_t c = 0; c < copies; ++c) {
    const Packet& a = runs[0].packets[c];
    const Packet& b = runs[1].packets[c];
    check(a.verdict == b.verdict);
    if (a.verdict == Verdict::kDrop) {
      check(a.reason == b.reason);
      continue;
    }
    check(a.len == b.len && a.headroom == b.headroom && std::memcmp(a.data, b.data, a.len) == 0);
    if (a.verdict == Verdict::kTx) {
      check(a.backend == b.backend);
      const std::vector<uint8_t>& buffer = runs[1].buffers[c];
      check(b.data >= buffer.data() && b.data + b.len <= buffer.data() + buffer.size());
    }
  }
  check(same_counters(general.counters, with_lane.counters));
  const ConntrackStats& x = general.pipeline.conntrack().stats();
  const ConntrackStats& y = with_lane.pipeline.conntrack().stats();
  check(x.inserts == y.inserts && x.evictions == y.evictions && x.expired_reused == y.expired_reused &&
        x.live_entries == y.live_entries);
  return 0;
}
