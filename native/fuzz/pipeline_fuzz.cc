// libFuzzer target: the whole pipeline (parse, VIP match, connection table, Maglev, encap,
// ICMP) on arbitrary frames against a snapshot with every encapsulation. Asserts that a
// transmitted frame lies inside its buffer and that nothing reads or writes out of bounds
// (ASan/UBSan do the rest).
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

struct Harness {
  BackendRegistry backends{1024};
  VipRegistry vips{64};
  std::unique_ptr<const Snapshot> snapshot;
  WorkerCounters counters{64, 1024};
  Pipeline pipeline{ConntrackConfig{1024, {}}, counters};

  Harness() {
    using testing::ip;
    ConfigSpec spec;
    spec.seed = 7;
    spec.outer_source_v4 = ip("10.0.0.1");
    spec.outer_source_v6 = ip("fd00::1");
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
      v.backends.push_back({ip(v6_backend ? "fd00:1::2" : "10.1.0.2"), 2});
      // An offline backend falling over to the first: flows cut with RSTs, shares moved.
      v.backends.push_back({ip(v6_backend ? "fd00:1::3" : "10.1.0.3"), 1});
      v.backends.back().state = AdminState::kOffline;
      v.backends.back().fallover = {v.backends.front().addr};
      spec.vips.push_back(v);
    };
    // Addresses the fuzzer can find in the seeds: 192.0.2.10 and 2001:db8::10.
    add("192.0.2.10", kProtoTcp, 80, Encap::kIpip, false);
    add("192.0.2.10", kProtoUdp, 0, Encap::kGue, true, Scheduler::kWlc);
    add("192.0.2.10", kProtoTcp, 0, Encap::kGre, false, Scheduler::kWrr);
    add("2001:db8::10", kProtoTcp, 443, Encap::kIpip, true, Scheduler::kRandom);
    add("2001:db8::10", kProtoUdp, 53, Encap::kGue, false, Scheduler::kSourceHash);
    snapshot = Snapshot::build(spec, backends, vips);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Harness h;
  if (size < 1) return 0;
  const uint32_t flags = data[0] & 1 ? kPacketChecksumPartial : 0;
  ++data;
  --size;
  // The frame sits at the end of an exactly sized buffer so ASan catches any over-read.
  std::vector<uint8_t> buffer(kHeadroom + size);
  std::memcpy(buffer.data() + kHeadroom, data, size);
  Packet pkt;
  pkt.data = buffer.data() + kHeadroom;
  pkt.len = static_cast<uint32_t>(size);
  pkt.headroom = kHeadroom;
  pkt.flags = flags;
  static uint64_t now = 0;
  h.pipeline.process(std::span<Packet>(&pkt, 1), *h.snapshot, now += 1000);
  if (pkt.verdict == Verdict::kTx) {
    if (pkt.data < buffer.data() || pkt.data + pkt.len > buffer.data() + buffer.size()) __builtin_trap();
    volatile uint8_t sink = 0;
    for (uint32_t i = 0; i < pkt.len; ++i) sink = sink + pkt.data[i];  // touch every byte
  }
  return 0;
}
