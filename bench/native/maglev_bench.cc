// Maglev table build benchmark: build time, balance and disruption, equal weights.
//
// For each table size M and backend count N: median and p90 build time over several runs,
// the largest and smallest entry count over the ideal M/N, and the share of M that changes
// owner among surviving backends when 1% of the backends (at least one) are removed.
// Prints one JSON object on stdout.
//   maglev_bench [--quick]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "maglev.h"

using namespace l4mux;

namespace {

constexpr uint64_t kSeed = 0x5eed1234abcdull;

struct Result {
  uint32_t table_size = 0;
  uint32_t backends = 0;
  double build_ms_median = 0;
  double build_ms_p90 = 0;
  double max_over_ideal = 0;
  double min_over_ideal = 0;
  double disruption_pct = 0;
};

std::vector<MaglevBackend> make_backends(uint32_t n) {
  std::vector<MaglevBackend> backends(n);
  for (uint32_t i = 0; i < n; ++i) {
    const uint8_t addr[4] = {10, static_cast<uint8_t>(i >> 16), static_cast<uint8_t>(i >> 8),
                             static_cast<uint8_t>(i)};
    backends[i] = MaglevBackend{i, IpAddr::v4(addr), 1};
  }
  return backends;
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

Result measure(uint32_t size, uint32_t n, int runs) {
  Result r;
  r.table_size = size;
  r.backends = n;
  const std::vector<MaglevBackend> backends = make_backends(n);

  std::vector<double> times_ms;
  times_ms.reserve(runs);
  std::vector<uint32_t> table;
  build_maglev_table(backends, size, kSeed);  // warm-up: page in the allocator's memory
  for (int i = 0; i < runs; ++i) {
    const auto start = std::chrono::steady_clock::now();
    table = build_maglev_table(backends, size, kSeed);
    const auto stop = std::chrono::steady_clock::now();
    times_ms.push_back(std::chrono::duration<double, std::milli>(stop - start).count());
  }
  r.build_ms_median = percentile(times_ms, 0.5);
  r.build_ms_p90 = percentile(times_ms, 0.9);

  std::vector<uint32_t> counts(n, 0);
  for (const uint32_t id : table) ++counts[id];
  const double ideal = static_cast<double>(size) / n;
  const auto [min_it, max_it] = std::minmax_element(counts.begin(), counts.end());
  r.max_over_ideal = *max_it / ideal;
  r.min_over_ideal = *min_it / ideal;

  // Remove a fixed pseudo-random 1% (ids stay the same, so entries compare directly).
  const uint32_t removed_count = std::max<uint32_t>(1, n / 100);
  std::vector<uint32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), std::mt19937(12345));
  std::vector<bool> removed(n, false);
  for (uint32_t i = 0; i < removed_count; ++i) removed[order[i]] = true;
  std::vector<MaglevBackend> survivors;
  for (const MaglevBackend& b : backends) {
    if (!removed[b.id]) survivors.push_back(b);
  }
  const std::vector<uint32_t> after = build_maglev_table(survivors, size, kSeed);
  uint32_t changed = 0;
  for (uint32_t i = 0; i < size; ++i) {
    if (!removed[table[i]] && after[i] != table[i]) ++changed;
  }
  r.disruption_pct = 100.0 * changed / size;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  std::vector<Result> results;
  for (const uint32_t size : {65537u, 655373u}) {
    const int runs = quick ? 5 : (size < 100000 ? 21 : 7);
    for (const uint32_t n : {10u, 100u, 1000u}) results.push_back(measure(size, n, runs));
  }
  std::printf("{\"maglev\": [");
  for (size_t i = 0; i < results.size(); ++i) {
    const Result& r = results[i];
    std::printf(
        "%s\n  {\"table_size\": %u, \"backends\": %u, \"build_ms_median\": %.3f, "
        "\"build_ms_p90\": %.3f, \"max_over_ideal\": %.5f, \"min_over_ideal\": %.5f, "
        "\"disruption_pct_1pct_removed\": %.3f}",
        i == 0 ? "" : ",", r.table_size, r.backends, r.build_ms_median, r.build_ms_p90,
        r.max_over_ideal, r.min_over_ideal, r.disruption_pct);
  }
  std::printf("\n]}\n");
  return 0;
}
