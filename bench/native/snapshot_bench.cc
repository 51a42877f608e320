// Snapshot build benchmark: what a health flap costs the control thread.
//
// 100 VIPs, each with a pool of 1000 backends (overlapping pools over 20,800 distinct
// addresses), Maglev tables of 100,003 entries. A flap marks one backend of one VIP down,
// then up again; each step is a full snapshot build, as the daemon does on a health change.
// Measured in the same run with table reuse off (every VIP's table rebuilt: the behaviour
// before reuse) and on (only the flapped VIP's table rebuilt). Also a first build (nothing to
// reuse) and a rebuild of an unchanged config. Prints one JSON object on stdout.
//   snapshot_bench [--quick]    (--quick: 20 VIPs, fewer runs)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "snapshot.h"

using namespace l4mux;

namespace {

constexpr uint32_t kBackendsPerVip = 1000;
constexpr uint32_t kPoolStride = 200;  // VIP v uses backends v*200 .. v*200+999
constexpr uint32_t kTableSize = 100003;

IpAddr v4(uint32_t a) {
  const uint8_t b[4] = {static_cast<uint8_t>(a >> 24), static_cast<uint8_t>(a >> 16), static_cast<uint8_t>(a >> 8),
                        static_cast<uint8_t>(a)};
  return IpAddr::v4(b);
}

ConfigSpec make_spec(uint32_t vips) {
  ConfigSpec spec;
  spec.seed = 0x5eed1234abcdull;
  spec.outer_source_v4 = v4(0xC0000201);  // 192.0.2.1
  for (uint32_t v = 0; v < vips; ++v) {
    VipSpec vs;
    vs.name = "vip" + std::to_string(v);
    vs.key = VipKey{v4(0xCB007100 + v), kProtoTcp, 80};  // 203.0.113.x
    vs.table_size = kTableSize;
    for (uint32_t b = 0; b < kBackendsPerVip; ++b) vs.backends.emplace_back(v4(0x0A000000 + v * kPoolStride + b), 1);
    spec.vips.push_back(std::move(vs));
  }
  return spec;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Step {
  double ms = 0;
  uint32_t built = 0;
  uint32_t reused = 0;
};

// One build, with or without the previous snapshot's tables as the source.
Step timed_build(const ConfigSpec& spec, BackendRegistry& backends, VipRegistry& vips, bool reuse,
                 MaglevTables& tables) {
  const auto start = std::chrono::steady_clock::now();
  std::unique_ptr<const Snapshot> snap = Snapshot::build(spec, backends, vips, reuse ? &tables : nullptr);
  const auto stop = std::chrono::steady_clock::now();
  tables = snap->maglev_tables();
  return Step{std::chrono::duration<double, std::milli>(stop - start).count(), snap->tables_built(),
              snap->tables_reused()};
}

struct Mode {
  double first_build_ms = 0;
  double unchanged_ms = 0;
  double flap_ms = 0;  // per build (down or up)
  uint32_t flap_tables_built = 0;
  uint32_t flap_tables_reused = 0;
};

Mode measure(uint32_t vip_count, int flaps, bool reuse) {
  ConfigSpec spec = make_spec(vip_count);
  BackendRegistry backends(65536);
  VipRegistry vips(4096);
  MaglevTables tables;
  Mode m;
  m.first_build_ms = timed_build(spec, backends, vips, reuse, tables).ms;
  m.unchanged_ms = timed_build(spec, backends, vips, reuse, tables).ms;
  std::vector<double> flap_ms;
  for (int i = 0; i < flaps; ++i) {
    BackendSpec& b = spec.vips[(i * 37) % vip_count].backends[(i * 101) % kBackendsPerVip];
    for (const bool healthy : {false, true}) {
      b.healthy = healthy;
      const Step s = timed_build(spec, backends, vips, reuse, tables);
      flap_ms.push_back(s.ms);
      m.flap_tables_built = s.built;
      m.flap_tables_reused = s.reused;
    }
  }
  m.flap_ms = median(flap_ms);
  return m;
}

void print_mode(const char* name, const Mode& m, bool last) {
  std::printf(
      "    \"%s\": {\"first_build_ms\": %.2f, \"unchanged_rebuild_ms\": %.2f, \"flap_build_ms_median\": %.2f, "
      "\"flap_tables_built\": %u, \"flap_tables_reused\": %u}%s\n",
      name, m.first_build_ms, m.unchanged_ms, m.flap_ms, m.flap_tables_built, m.flap_tables_reused, last ? "" : ",");
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const uint32_t vip_count = quick ? 20 : 100;
  const int flaps = quick ? 2 : 5;
  // Off first, then on, then off again: a drift of the host's speed during the run shows.
  const Mode off = measure(vip_count, flaps, false);
  const Mode on = measure(vip_count, flaps, true);
  const Mode off_again = measure(vip_count, flaps, false);
  std::printf("{\n  \"snapshot_flap\": {\n");
  std::printf("    \"vips\": %u, \"backends_per_vip\": %u, \"distinct_backends\": %u, \"table_size\": %u, \"flaps\": %d,\n",
              vip_count, kBackendsPerVip, (vip_count - 1) * kPoolStride + kBackendsPerVip, kTableSize, flaps);
  print_mode("reuse_off", off, false);
  print_mode("reuse_on", on, false);
  print_mode("reuse_off_again", off_again, false);
  std::printf("    \"flap_speedup\": %.1f\n  }\n}\n", std::min(off.flap_ms, off_again.flap_ms) / on.flap_ms);
  return 0;
}
