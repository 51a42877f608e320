// Fast-path benchmark: the in-memory pipeline on prepared batches, one core.
//
// Each scenario delivers its prepared frames into a receive ring (see run_scenario), runs
// Pipeline::process over it in batches of 64 and reports Mpps and ns per packet, median of
// several runs. Prints one JSON object on stdout.
//   fastpath_bench [--quick] [--packets N] [--runs N] [--only NAME] [--flows N] [--table ENTRIES]
//                  [--no-sweep]
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include <emmintrin.h>

#include "../../native/tests/frame_builder.h"
#include "conntrack.h"
#include "counters.h"
#include "pipeline.h"
#include "snapshot.h"

using namespace l4mux;
using namespace l4mux::testing;

namespace {

constexpr uint32_t kHeadroom = 128;
constexpr uint32_t kSlot = 256;         // headroom + the largest frame used here
constexpr uint32_t kRingSlots = 4096;   // a receive ring's depth

// Copies a frame to a 16-byte aligned destination with non-temporal stores, as a NIC's DMA
// writes it: the destination lines end up in memory, not in this core's caches. Whole 16-byte
// chunks: the bytes past the frame's end stay inside its slot.
void stream_copy(uint8_t* dst, const uint8_t* src, size_t len) {
  for (size_t off = 0; off < len; off += 16) {
    __m128i chunk;
    if (off + 16 <= len) {
      chunk = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + off));
    } else {
      alignas(16) uint8_t tail[16] = {};
      std::memcpy(tail, src + off, len - off);
      chunk = _mm_load_si128(reinterpret_cast<const __m128i*>(tail));
    }
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + off), chunk);
  }
}

// What became of the timed packets, as fractions of them: a figure only counts if the
// pipeline did the work the scenario is about (e.g. every packet a connection-table hit).
struct Outcome {
  double tx = 0;
  double passed = 0;
  double dropped = 0;
  double new_flows = 0;  // connection-table inserts
};

struct Scenario {
  std::string name;
  std::string description;
  std::vector<Bytes> frames;      // cycled through
  std::function<void(std::vector<Bytes>&, int)> before_run;  // e.g. make flows new again
  bool warm = true;               // run once untimed first (fills the connection table)
  Outcome expected;
  bool plain_lane = true;         // off: every packet takes the general parse and decide
  // Set: the pipeline has a persistence hub (as a mux with a persistent VIP), prepared by this
  // before the runs (e.g. entries for the scenario's clients).
  std::function<void(PersistenceHub&, const Snapshot&, const BackendRegistry&)> persistence = nullptr;
};

ConfigSpec make_config() {
  ConfigSpec spec;
  spec.seed = 0x5eed1234abcdull;
  spec.source_mac = {2, 0, 0, 0, 0, 1};
  spec.gateway_mac = {2, 0, 0, 0, 0, 0xfe};
  spec.outer_source_v4 = ip("10.0.0.1");
  spec.outer_source_v6 = ip("fd00::1");
  auto vip = [](const std::string& name, const std::string& addr, uint8_t proto, uint16_t port,
                Encap encap, bool v6_backends) {
    VipSpec v;
    v.name = name;
    v.key = VipKey{ip(addr), proto, port};
    v.encap = encap;
    if (encap == Encap::kGre) v.gre_key = 42;
    for (int i = 1; i <= 10; ++i) {
      v.backends.push_back(BackendSpec{
          ip(v6_backends ? "fd00:1::" + std::to_string(i) : "10.1.0." + std::to_string(i)), 1});
    }
    return v;
  };
  spec.vips.push_back(vip("tcp4-ipip", "192.0.2.10", kProtoTcp, 80, Encap::kIpip, false));
  spec.vips.push_back(vip("tcp4-gre", "192.0.2.11", kProtoTcp, 80, Encap::kGre, false));
  spec.vips.push_back(vip("tcp6-ipip", "2001:db8::10", kProtoTcp, 443, Encap::kIpip, true));
  spec.vips.push_back(vip("udp6-gue", "2001:db8::53", kProtoUdp, 53, Encap::kGue, true));
  // Client persistence per address, as `"persistence": {"timeout": 3600, "granularity": "/32"}`.
  VipSpec persistent = vip("tcp4-ipip-persist", "192.0.2.12", kProtoTcp, 80, Encap::kIpip, false);
  persistent.persistence = VipSpec::Persistence{3600, 32, 1u << 20};
  spec.vips.push_back(persistent);
  return spec;
}

std::string client_v4(uint32_t i) {
  return "198.51." + std::to_string((i >> 16) & 0xff) + "." + std::to_string((i >> 8) & 0xff);
}
std::string client_v6(uint32_t i) {
  char buf[48];
  std::snprintf(buf, sizeof(buf), "2001:db8:c::%x:%x", (i >> 24) & 0xff, (i >> 8) & 0xffff);
  return buf;
}

std::vector<Bytes> tcp_flows(uint32_t n, const std::string& vip, uint16_t port, uint8_t flags, bool v6) {
  std::vector<Bytes> frames;
  frames.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    L4Spec l4;
    l4.src_port = static_cast<uint16_t>(1024 + (i & 0xff) * 200 + (i >> 24));
    l4.dst_port = port;
    l4.tcp_flags = flags;
    l4.payload.assign(6, 'x');
    frames.push_back(flow_frame(v6 ? client_v6(i) : client_v4(i), vip, l4));
  }
  return frames;
}

// Makes every flow new again for the next run: rewrites a byte of the client address
// (checksums are not verified by the pipeline, so they need no update for this purpose).
void renumber_clients(std::vector<Bytes>& frames, int run) {
  for (Bytes& f : frames) f[14 + 12] = static_cast<uint8_t>(100 + run);
}

// Entries in the persistence table for every client of `frames` (their source address, and
// the addresses renumber_clients gives them in `runs` runs), each on the backend the VIP's
// Maglev table would pick: the clients are known, so their new flows never punt.
void know_clients(const std::vector<Bytes>& frames, int runs, PersistenceHub& hub, const Snapshot& snapshot,
                  const BackendRegistry& backends) {
  const Vip* vip = snapshot.find_vip(ip("192.0.2.12"), kProtoTcp, 80);
  if (vip == nullptr || vip->persist_prefix == 0) throw std::runtime_error("no persistent VIP 192.0.2.12:80");
  const uint32_t backend = *backends.find(ip("10.1.0.3"));
  ClientKey evicted;
  bool did_evict = false;
  for (int run = -1; run < runs; ++run) {
    for (size_t i = 0; i < frames.size(); i += 256) {  // 256 flows per client address
      std::array<uint8_t, 16> src{};
      std::memcpy(src.data(), frames[i].data() + 14 + 12, 4);
      if (run >= 0) src[0] = static_cast<uint8_t>(100 + run);
      const ClientKey key = make_client_key(vip->slot, src, Family::kIpv4, vip->persist_prefix);
      if (hub.table().install(key, backend, UINT64_MAX / 2, 0, UINT32_MAX, &evicted, &did_evict) !=
              InstallOutcome::kInstalled ||
          did_evict) {
        throw std::runtime_error("persistence table refused a client");
      }
    }
  }
}

// The core's effective clock: a chain of dependent adds runs one per cycle. On a shared
// virtual machine the host's load shows here, which explains a slow run.
double effective_ghz() {
  constexpr uint64_t kAdds = 200'000'000;
  uint64_t x = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (uint64_t i = 0; i < kAdds; ++i) asm volatile("add $1, %0" : "+r"(x));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return static_cast<double>(kAdds) / secs / 1e9;
}

struct Result {
  Outcome outcome;
  double mpps_median = 0;
  double ns_per_packet_median = 0;
  std::vector<double> mpps_runs;
};

Result run_scenario(Scenario& s, uint64_t packets_per_run, int runs, const ConntrackConfig& ct) {
  BackendRegistry backends(65536);
  VipRegistry vips(4096);
  auto snapshot = Snapshot::build(make_config(), backends, vips);
  WorkerCounters counters(4096, 65536);
  PersistenceHub hub(1u << 17, 4096, 1, PuntSettings{});
  PipelineOptions options{.plain_lane = s.plain_lane};
  if (s.persistence) {
    options.persistence = &hub;
    s.persistence(hub, *snapshot, backends);
  }
  Pipeline pipeline(ct, counters, options);

  std::vector<Packet> batch(kMaxBatch);
  uint64_t clock_ns = 1'000'000'000;
  for (const Bytes& f : s.frames) {
    if (f.size() + kHeadroom > kSlot) throw std::runtime_error("frame too long for its slot");
  }

  // Frames arrive as a NIC delivers them into an AF_XDP UMEM or a receive ring: a ring of
  // kRingSlots frame buffers, each with headroom in front, refilled in order. Each batch's
  // frames are written with non-temporal stores, which leave no copy in the CPU caches (as
  // DMA does on hosts without cache injection), so the pipeline reads every frame from
  // memory. The headroom lines in front of the frames are not written by the delivery, as a
  // NIC does not write them either. Only Pipeline::process is timed: the delivery stands in
  // for the NIC and is not the pipeline's work.
  std::vector<uint8_t> ring_storage(size_t{kRingSlots} * kSlot + 64);
  uint8_t* const ring = ring_storage.data() + (64 - reinterpret_cast<uintptr_t>(ring_storage.data()) % 64);
  size_t next_frame = 0;
  uint32_t next_slot = 0;
  auto deliver = [&](Packet& pkt) {
    const Bytes& f = s.frames[next_frame];
    next_frame = next_frame + 1 == s.frames.size() ? 0 : next_frame + 1;
    uint8_t* slot = ring + size_t{next_slot} * kSlot;
    next_slot = next_slot + 1 == kRingSlots ? 0 : next_slot + 1;
    stream_copy(slot + kHeadroom, f.data(), f.size());
    pkt.data = slot + kHeadroom;
    pkt.len = static_cast<uint32_t>(f.size());
    pkt.headroom = kHeadroom;
    pkt.flags = 0;
  };

  // Returns the seconds spent in the pipeline.
  auto pass = [&](uint64_t packets) {
    std::chrono::steady_clock::duration in_pipeline{};
    for (uint64_t done = 0; done < packets; done += kMaxBatch) {
      for (uint32_t i = 0; i < kMaxBatch; ++i) deliver(batch[i]);
      _mm_sfence();  // the frames are in memory before the pipeline reads them
      const auto t0 = std::chrono::steady_clock::now();
      pipeline.process(batch, *snapshot, clock_ns);
      in_pipeline += std::chrono::steady_clock::now() - t0;
      clock_ns += 1000;
    }
    return std::chrono::duration<double>(in_pipeline).count();
  };

  Result r;
  uint64_t timed = 0;
  uint64_t tx = 0;
  uint64_t passed = 0;
  uint64_t dropped = 0;
  uint64_t inserts = 0;
  for (int run = 0; run < runs; ++run) {
    if (s.before_run) s.before_run(s.frames, run);
    next_frame = 0;
    if (s.warm) pass(s.frames.size());
    const uint64_t rx0 = counters.rx.get();
    const uint64_t tx0 = counters.tx.get();
    const uint64_t passed0 = counters.passed.get();
    const uint64_t dropped0 = counters.dropped.get();
    const uint64_t inserts0 = pipeline.conntrack().stats().inserts;
    const double secs = pass(packets_per_run);
    r.mpps_runs.push_back(static_cast<double>(packets_per_run) / secs / 1e6);
    timed += counters.rx.get() - rx0;
    tx += counters.tx.get() - tx0;
    passed += counters.passed.get() - passed0;
    dropped += counters.dropped.get() - dropped0;
    inserts += pipeline.conntrack().stats().inserts - inserts0;
  }
  const auto fraction = [&](uint64_t n) { return static_cast<double>(n) / static_cast<double>(timed); };
  r.outcome = Outcome{fraction(tx), fraction(passed), fraction(dropped), fraction(inserts)};
  std::vector<double> sorted = r.mpps_runs;
  std::sort(sorted.begin(), sorted.end());
  r.mpps_median = sorted[sorted.size() / 2];
  r.ns_per_packet_median = 1000.0 / r.mpps_median;
  const auto near = [](double a, double b) { return a > b - 0.01 && a < b + 0.01; };
  const Outcome& o = r.outcome;
  const Outcome& e = s.expected;
  if (!near(o.tx, e.tx) || !near(o.passed, e.passed) || !near(o.dropped, e.dropped) ||
      !near(o.new_flows, e.new_flows)) {
    std::fprintf(stderr,
                 "fastpath_bench: %s did other work than it measures: tx %.3f passed %.3f dropped %.3f "
                 "new flows %.3f, expected %.3f %.3f %.3f %.3f\n",
                 s.name.c_str(), o.tx, o.passed, o.dropped, o.new_flows, e.tx, e.passed, e.dropped,
                 e.new_flows);
    std::exit(1);
  }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  uint64_t packets_override = 0;
  int runs_override = 0;
  std::string only;
  uint32_t flows = 100000;  // established flows of the single-kind scenarios
  ConntrackConfig ct;  // the daemon's default table: 262144 entries per worker
  bool sweep = true;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--quick") quick = true;
    if (arg == "--packets" && i + 1 < argc) packets_override = std::stoull(argv[++i]);
    if (arg == "--runs" && i + 1 < argc) runs_override = std::stoi(argv[++i]);
    if (arg == "--only" && i + 1 < argc) only = argv[++i];
    if (arg == "--flows" && i + 1 < argc) flows = static_cast<uint32_t>(std::stoul(argv[++i]));
    if (arg == "--no-sweep") sweep = false;
    if (arg == "--table" && i + 1 < argc) ct.capacity = static_cast<uint32_t>(std::stoul(argv[++i]));
  }
  const int runs = runs_override > 0 ? runs_override : quick ? 3 : 7;

  std::vector<Scenario> scenarios;
  const Outcome all_hits{1, 0, 0, 0};
  scenarios.push_back({"established_tcp4_ipip",
                       "100k established TCP flows (ACK), IPv4-in-IPv4, connection-table hits",
                       tcp_flows(flows, "192.0.2.10", 80, 0x10, false), nullptr, true, all_hits});
  scenarios.push_back({"established_tcp4_ipip_general_path",
                       "established_tcp4_ipip with the plain lane off: the general parse and decision for every packet (the lane's baseline)",
                       tcp_flows(flows, "192.0.2.10", 80, 0x10, false), nullptr, true, all_hits, false});
  scenarios.push_back({"new_flows_tcp4_syn",
                       "every packet a SYN of a new flow (1M distinct per run): Maglev + insert, evicting once the table is full",
                       tcp_flows(1000000, "192.0.2.10", 80, 0x02, false), renumber_clients, false,
                       Outcome{1, 0, 0, 1}});
  // Client persistence: what a persistent VIP costs flows that never take the slow path.
  scenarios.push_back({"established_tcp4_ipip_persistent",
                       "established_tcp4_ipip on a persistent VIP (the connection table answers; the persistence table is not read)",
                       tcp_flows(flows, "192.0.2.12", 80, 0x10, false), nullptr, true, all_hits, true,
                       [](PersistenceHub&, const Snapshot&, const BackendRegistry&) {}});
  {
    auto known = tcp_flows(1000000, "192.0.2.12", 80, 0x02, false);
    scenarios.push_back({"new_flows_tcp4_syn_known_clients",
                         "new_flows_tcp4_syn on a persistent VIP whose clients all have an entry: a persistence-table hit, then insert",
                         known, renumber_clients, false, Outcome{1, 0, 0, 1}, true,
                         [known, runs](PersistenceHub& hub, const Snapshot& snap, const BackendRegistry& b) {
                           know_clients(known, runs, hub, snap, b);
                         }});
  }
  scenarios.push_back({"established_tcp4_gre", "100k established TCP flows, GRE with key",
                       tcp_flows(flows, "192.0.2.11", 80, 0x10, false), nullptr, true, all_hits});
  scenarios.push_back({"established_tcp6_ipip", "100k established TCP flows, IPv6-in-IPv6",
                       tcp_flows(flows, "2001:db8::10", 443, 0x10, true), nullptr, true, all_hits});
  {
    // Mixed: established v4 and v6 TCP, GUE UDP over IPv6, pings to a VIP, traffic for other
    // hosts (passed to the kernel) and unknown VIP ports (dropped).
    std::vector<Bytes> mixed;
    auto v4 = tcp_flows(40000, "192.0.2.10", 80, 0x10, false);
    auto v6 = tcp_flows(20000, "2001:db8::10", 443, 0x10, true);
    std::vector<Bytes> udp6;
    for (uint32_t i = 0; i < 20000; ++i) {
      L4Spec l4;
      l4.proto = kProtoUdp;
      l4.src_port = static_cast<uint16_t>(1024 + i % 60000);
      l4.dst_port = 53;
      udp6.push_back(flow_frame(client_v6(i * 256), "2001:db8::53", l4));
    }
    for (uint32_t i = 0; i < 80000; ++i) {
      switch (i % 10) {
        case 0: case 1: case 2: case 3: mixed.push_back(v4[i % v4.size()]); break;
        case 4: case 5: mixed.push_back(v6[i % v6.size()]); break;
        case 6: case 7: mixed.push_back(udp6[i % udp6.size()]); break;
        case 8: mixed.push_back(flow_frame(client_v4(i), "203.0.113.9", L4Spec{})); break;
        default: {
          L4Spec l4;
          l4.dst_port = 8080;  // VIP address, no VIP on this port
          mixed.push_back(flow_frame(client_v4(i), "192.0.2.10", l4));
        }
      }
    }
    scenarios.push_back({"mixed", "40% TCP4 established, 20% TCP6, 20% UDP6 GUE, 10% not for a VIP, 10% unknown VIP port",
                         std::move(mixed), nullptr, true, Outcome{0.8, 0.1, 0.1, 0}});
  }

  const double ghz_at_start = effective_ghz();
  std::printf("{\n  \"benchmark\": \"fastpath\",\n  \"batch\": %u,\n  \"runs\": %d,\n  \"scenarios\": [\n",
              kMaxBatch, runs);
  std::erase_if(scenarios, [&](const Scenario& s) { return !only.empty() && s.name != only; });
  for (size_t i = 0; i < scenarios.size(); ++i) {
    Scenario& s = scenarios[i];
    // New flows: one pass over the 1M flows, so that every timed packet is new.
    const uint64_t packets = packets_override > 0            ? packets_override
                             : s.name.starts_with("new_flows_tcp4_syn") ? 1'000'000
                             : quick                          ? 2'000'000
                                                              : 10'000'000;
    const Result r = run_scenario(s, packets, runs, ct);
    std::printf("    {\"name\": \"%s\", \"description\": \"%s\", \"packets_per_run\": %llu, "
                "\"outcome\": {\"tx\": %.3f, \"passed\": %.3f, \"dropped\": %.3f, \"new_flows\": %.3f}, "
                "\"mpps_median\": %.2f, \"ns_per_packet_median\": %.1f, \"mpps_runs\": [",
                s.name.c_str(), s.description.c_str(), static_cast<unsigned long long>(packets),
                r.outcome.tx, r.outcome.passed, r.outcome.dropped, r.outcome.new_flows,
                r.mpps_median, r.ns_per_packet_median);
    for (size_t k = 0; k < r.mpps_runs.size(); ++k) {
      std::printf("%s%.2f", k ? ", " : "", r.mpps_runs[k]);
    }
    std::printf("]}%s\n", i + 1 < scenarios.size() ? "," : "");
    std::fflush(stdout);
  }
  std::printf("  ]");

  if (sweep && only.empty()) {
    // The established case again, varying what decides its memory behaviour: the number of
    // flows (1000 fit in cache: the pipeline's own cost) and the table's size (the same
    // 100k flows spread over more memory: more cache and address-translation misses). No
    // smaller table: at 100k flows in 2^17 entries, enough 8-way buckets overflow that 8%
    // of the packets are re-inserted flows, and the figure would no longer be of hits.
    struct Point { uint32_t flows; uint32_t table; };
    const Point points[] = {{1000, ct.capacity}, {100000, 1u << 18}, {100000, 1u << 20},
                            {100000, 1u << 22}};
    std::printf(",\n  \"established_tcp4_ipip_sweep\": [\n");
    for (size_t i = 0; i < std::size(points); ++i) {
      Scenario s{"sweep", "", tcp_flows(points[i].flows, "192.0.2.10", 80, 0x10, false), nullptr, true,
                 all_hits};
      ConntrackConfig table = ct;
      table.capacity = points[i].table;
      const Result r = run_scenario(s, quick ? 2'000'000 : 4'000'000, 3, table);
      const double table_mb = static_cast<double>(Conntrack::table_bytes(table)) / 1e6;
      std::printf("    {\"flows\": %u, \"table_entries\": %u, \"table_mb\": %.1f, \"mpps_median\": %.2f, "
                  "\"ns_per_packet_median\": %.1f}%s\n",
                  points[i].flows, points[i].table, table_mb, r.mpps_median, r.ns_per_packet_median,
                  i + 1 < std::size(points) ? "," : "");
      std::fflush(stdout);
    }
    std::printf("  ]");
  }
  std::printf(",\n  \"core_clock_ghz\": {\"start\": %.2f, \"end\": %.2f}\n}\n", ghz_at_start, effective_ghz());
  return 0;
}
