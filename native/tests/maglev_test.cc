#include "maglev.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <unordered_set>
#include <vector>

namespace l4mux {
namespace {

constexpr uint64_t kSeed = 0x5eed1234abcdull;

// Backend i gets id i; even i an IPv4 identity, odd i an IPv6 one, so both families are used.
IpAddr identity_for(uint32_t i) {
  if (i % 2 == 0) {
    const uint8_t v4[4] = {10, static_cast<uint8_t>(i >> 16), static_cast<uint8_t>(i >> 8),
                           static_cast<uint8_t>(i)};
    return IpAddr::v4(v4);
  }
  uint8_t v6[16] = {0xfd, 0x00, 0, 1};
  v6[13] = static_cast<uint8_t>(i >> 16);
  v6[14] = static_cast<uint8_t>(i >> 8);
  v6[15] = static_cast<uint8_t>(i);
  return IpAddr::v6(v6);
}

std::vector<MaglevBackend> make_backends(uint32_t n, uint32_t (*weight_of)(uint32_t)) {
  std::vector<MaglevBackend> backends;
  for (uint32_t i = 0; i < n; ++i) backends.push_back({i, identity_for(i), weight_of(i)});
  return backends;
}

uint32_t equal_weight(uint32_t) { return 1; }
uint32_t cycling_weight(uint32_t i) { return i % 5 + 1; }  // 1..5

std::vector<uint32_t> count_entries(const std::vector<uint32_t>& table, uint32_t backends) {
  std::vector<uint32_t> counts(backends, 0);
  for (const uint32_t id : table) {
    EXPECT_LT(id, backends);
    if (id < backends) ++counts[id];
  }
  return counts;
}

// Entries that changed owner although their old owner is still there.
uint32_t changed_among_survivors(const std::vector<uint32_t>& before,
                                 const std::vector<uint32_t>& after,
                                 const std::vector<bool>& removed) {
  uint32_t changed = 0;
  for (size_t i = 0; i < before.size(); ++i) {
    if (!removed[before[i]] && after[i] != before[i]) ++changed;
  }
  return changed;
}

struct BalanceCase {
  uint32_t table_size;
  uint32_t backends;
  bool weighted;
};

class MaglevBalance : public ::testing::TestWithParam<BalanceCase> {};

TEST_P(MaglevBalance, EveryBackendWithinOnePercentAndOneEntryOfItsIdeal) {
  const BalanceCase c = GetParam();
  const auto backends = make_backends(c.backends, c.weighted ? cycling_weight : equal_weight);
  const auto table = build_maglev_table(backends, c.table_size, kSeed);
  ASSERT_EQ(table.size(), c.table_size);
  const auto counts = count_entries(table, c.backends);

  double weight_sum = 0;
  for (const auto& b : backends) weight_sum += b.weight;
  double max_relative = 0;
  double max_absolute = 0;
  for (const auto& b : backends) {
    const double ideal = c.table_size * (b.weight / weight_sum);
    const double deviation = std::abs(counts[b.id] - ideal);
    max_absolute = std::max(max_absolute, deviation);
    max_relative = std::max(max_relative, deviation / ideal);
    EXPECT_LE(deviation / ideal, 0.01) << "backend " << b.id << " count " << counts[b.id]
                                       << " ideal " << ideal;
    EXPECT_LT(deviation, 1.0) << "backend " << b.id;  // largest-remainder quotas, filled exactly
  }
  RecordProperty("max_relative_deviation_pct", std::to_string(100 * max_relative));
  std::cout << "M=" << c.table_size << " N=" << c.backends
            << (c.weighted ? " weights 1..5" : " equal weights")
            << ": max deviation from ideal " << 100 * max_relative << "% (" << max_absolute
            << " entries)\n";
}

INSTANTIATE_TEST_SUITE_P(
    Sizes, MaglevBalance,
    ::testing::Values(BalanceCase{65537, 3, false}, BalanceCase{65537, 100, false},
                      BalanceCase{65537, 1000, false}, BalanceCase{65537, 3, true},
                      BalanceCase{65537, 100, true}, BalanceCase{65537, 1000, true},
                      BalanceCase{655373, 1000, false}, BalanceCase{655373, 1000, true}),
    [](const ::testing::TestParamInfo<BalanceCase>& info) {
      return "M" + std::to_string(info.param.table_size) + "_N" +
             std::to_string(info.param.backends) + (info.param.weighted ? "_weighted" : "_equal");
    });

TEST(Maglev, SkewedWeightsStillGetExactShares) {
  // One backend carries as much weight as all others together times 50: many rounds in
  // which only it takes a turn.
  auto backends = make_backends(1000, equal_weight);
  backends[0].weight = 50000;
  const auto table = build_maglev_table(backends, kMaglevDefaultSize, kSeed);
  const auto counts = count_entries(table, 1000);
  const double weight_sum = 50000 + 999;
  for (const auto& b : backends) {
    EXPECT_LT(std::abs(counts[b.id] - kMaglevDefaultSize * (b.weight / weight_sum)), 1.0)
        << "backend " << b.id;
  }
}

TEST(Maglev, WeightScaleDoesNotMatter) {
  const auto build = [](uint32_t a, uint32_t b, uint32_t c) {
    const MaglevBackend backends[] = {
        {0, identity_for(0), a}, {1, identity_for(1), b}, {2, identity_for(2), c}};
    return build_maglev_table(backends, kMaglevDefaultSize, kSeed);
  };
  const auto small = build(1, 2, 3);
  EXPECT_EQ(small, build(100, 200, 300));
  // The weight sum exceeds 32 bits here.
  EXPECT_EQ(small, build(1000000000, 2000000000, 3000000000u));
  EXPECT_NE(small, build(1, 2, 4));
}

TEST(Maglev, BackendOrderDoesNotMatter) {
  auto backends = make_backends(100, cycling_weight);
  const auto reference = build_maglev_table(backends, kMaglevDefaultSize, kSeed);
  std::mt19937 rng(7);
  for (int i = 0; i < 5; ++i) {
    std::shuffle(backends.begin(), backends.end(), rng);
    EXPECT_EQ(build_maglev_table(backends, kMaglevDefaultSize, kSeed), reference);
  }
}

TEST(Maglev, RemovingOnePercentMovesFewOtherEntries) {
  struct Case {
    uint32_t table_size;
    uint32_t backends;
  };
  for (const Case c : {Case{65537, 100}, Case{65537, 1000}, Case{655373, 1000}}) {
    const auto backends = make_backends(c.backends, equal_weight);
    const auto before = build_maglev_table(backends, c.table_size, kSeed);
    // Remove a pseudo-random 1%.
    std::vector<uint32_t> order(c.backends);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), std::mt19937(11));
    std::vector<bool> removed(c.backends, false);
    for (uint32_t i = 0; i < std::max<uint32_t>(1, c.backends / 100); ++i) removed[order[i]] = true;
    std::vector<MaglevBackend> survivors;
    for (const auto& b : backends) {
      if (!removed[b.id]) survivors.push_back(b);
    }
    const auto after = build_maglev_table(survivors, c.table_size, kSeed);
    for (const uint32_t id : after) ASSERT_FALSE(removed[id]);

    const uint32_t changed = changed_among_survivors(before, after, removed);
    const double pct = 100.0 * changed / c.table_size;
    std::cout << "M=" << c.table_size << " N=" << c.backends << ", 1% removed: " << changed
              << " entries of surviving backends changed (" << pct << "% of M)\n";
    RecordProperty("disruption_pct_M" + std::to_string(c.table_size) + "_N" +
                       std::to_string(c.backends),
                   std::to_string(pct));
    EXPECT_LT(pct, 5.0);
  }
}

// Turns interleave across backends, so a change early in identity order does not cascade
// through everyone filled after it (as a backend-by-backend fill would: ~3% here).
TEST(Maglev, OneBackendChangeMovesFewEntriesWhereverItSortsInIdentityOrder) {
  const auto backends = make_backends(100, equal_weight);
  const auto before = build_maglev_table(backends, kMaglevDefaultSize, kSeed);
  double worst_pct = 0;
  // Identity order is even ids (IPv4) by id, then odd ids (IPv6) by id.
  for (const uint32_t gone : {0u, 2u, 50u, 98u, 1u, 99u}) {
    std::vector<MaglevBackend> survivors;
    for (const auto& b : backends) {
      if (b.id != gone) survivors.push_back(b);
    }
    std::vector<bool> removed(100, false);
    removed[gone] = true;
    const auto after = build_maglev_table(survivors, kMaglevDefaultSize, kSeed);
    const double pct = 100.0 * changed_among_survivors(before, after, removed) / before.size();
    worst_pct = std::max(worst_pct, pct);
    EXPECT_LT(pct, 1.5) << "removing backend " << gone;
  }
  // A newcomer that sorts before everyone takes the first turn of every round.
  auto grown = backends;
  const uint8_t lowest[4] = {1, 0, 0, 1};
  grown.push_back({100, IpAddr::v4(lowest), 1});
  const auto after = build_maglev_table(grown, kMaglevDefaultSize, kSeed);
  uint32_t changed = 0;
  for (size_t i = 0; i < before.size(); ++i) changed += after[i] != before[i] && after[i] != 100;
  const double added_pct = 100.0 * changed / before.size();
  EXPECT_LT(added_pct, 1.5);
  std::cout << "M=65537 N=100: one backend removed moves at most " << worst_pct
            << "% of M among the others; one added moves " << added_pct << "%\n";
}

TEST(Maglev, SameInputsSameTableOtherSeedOtherTable) {
  const auto backends = make_backends(100, equal_weight);
  const auto a = build_maglev_table(backends, kMaglevDefaultSize, 1);
  EXPECT_EQ(a, build_maglev_table(backends, kMaglevDefaultSize, 1));
  const auto b = build_maglev_table(backends, kMaglevDefaultSize, 2);
  uint32_t differing = 0;
  for (size_t i = 0; i < a.size(); ++i) differing += a[i] != b[i];
  // Independent tables over 100 backends agree on about 1% of entries.
  EXPECT_GT(differing, a.size() * 9 / 10);
}

TEST(Maglev, ZeroWeightBackendIsLeftOut) {
  auto backends = make_backends(10, equal_weight);
  backends[3].weight = 0;
  const auto table = build_maglev_table(backends, kMaglevDefaultSize, kSeed);
  EXPECT_EQ(count_entries(table, 10)[3], 0u);
  // Exactly as if it were not listed at all.
  backends.erase(backends.begin() + 3);
  EXPECT_EQ(build_maglev_table(backends, kMaglevDefaultSize, kSeed), table);
}

TEST(Maglev, NoUsableBackendGivesAnEmptyTable) {
  const auto expect_empty = [](const std::vector<uint32_t>& table) {
    ASSERT_EQ(table.size(), kMaglevDefaultSize);
    EXPECT_TRUE(std::all_of(table.begin(), table.end(),
                            [](uint32_t id) { return id == kMaglevNoBackend; }));
  };
  expect_empty(build_maglev_table({}, kMaglevDefaultSize, kSeed));
  auto all_zero = make_backends(3, equal_weight);
  for (auto& b : all_zero) b.weight = 0;
  expect_empty(build_maglev_table(all_zero, kMaglevDefaultSize, kSeed));
}

TEST(Maglev, NonPrimeSizeThrows) {
  const auto backends = make_backends(3, equal_weight);
  for (const uint32_t size : {0u, 1u, 4u, 9u, 65535u, 65536u, 65541u}) {
    EXPECT_THROW(build_maglev_table(backends, size, kSeed), std::invalid_argument) << size;
  }
  EXPECT_THROW(build_maglev_table({}, 100, kSeed), std::invalid_argument);
  // The smallest primes work, even with more backends than entries.
  for (const uint32_t size : {2u, 3u}) {
    const auto table = build_maglev_table(backends, size, kSeed);
    ASSERT_EQ(table.size(), size);
    for (const uint32_t id : table) EXPECT_LT(id, 3u);
  }
}

TEST(Maglev, DuplicateIdentityThrows) {
  auto backends = make_backends(5, equal_weight);
  backends.push_back({99, identity_for(2), 1});
  EXPECT_THROW(build_maglev_table(backends, kMaglevDefaultSize, kSeed), std::invalid_argument);
  backends.back().weight = 0;  // still a configuration error
  EXPECT_THROW(build_maglev_table(backends, kMaglevDefaultSize, kSeed), std::invalid_argument);
}

TEST(Maglev, SameBytesOtherFamilyIsAnotherIdentity) {
  const uint8_t bytes[16] = {192, 0, 2, 1};
  const MaglevBackend backends[] = {{0, IpAddr::v4(bytes), 1}, {1, IpAddr::v6(bytes), 1}};
  const auto counts = count_entries(build_maglev_table(backends, kMaglevDefaultSize, kSeed), 2);
  EXPECT_EQ(counts[0] + counts[1], kMaglevDefaultSize);
  EXPECT_EQ(std::max(counts[0], counts[1]) - std::min(counts[0], counts[1]), 1u);
}

TEST(Maglev, LargeTableIsFullyAssigned) {
  const auto backends = make_backends(1000, cycling_weight);
  const auto table = build_maglev_table(backends, 655373, kSeed);
  ASSERT_EQ(table.size(), 655373u);
  const auto counts = count_entries(table, 1000);
  EXPECT_EQ(std::accumulate(counts.begin(), counts.end(), uint64_t{0}), 655373u);
  EXPECT_TRUE(std::all_of(counts.begin(), counts.end(), [](uint32_t n) { return n > 0; }));
}

// Every mux of a cluster, whatever its version, must build the same table from the same
// configuration, or flows change backend during a rolling upgrade. Fingerprints (FNV-1a over
// the entries) of tables built by the implementation before its build was made faster
// (2acbad5); small primes exercise the wrap-around of the four-place probing.
TEST(Maglev, TablesStayTheSameAcrossVersions) {
  struct Golden {
    uint32_t table_size;
    uint32_t backends;
    bool weighted;
    uint64_t fingerprint;
  };
  const Golden goldens[] = {
      {2, 1, false, 0x08328807b4eb6fedull},       {3, 2, true, 0xd949ad186c0c4e41ull},
      {13, 5, true, 0x4915fcd5927ec66aull},       {251, 7, true, 0x1d59c317a59a2849ull},
      {65537, 3, true, 0x9d681651324bc109ull},    {65537, 1000, false, 0xb2ddd8ae904ea52cull},
      {65537, 100, true, 0xf566a9caf3c6b5d6ull},
  };
  for (const Golden& g : goldens) {
    SCOPED_TRACE(std::to_string(g.table_size) + " entries, " + std::to_string(g.backends) + " backends");
    const auto table = build_maglev_table(
        make_backends(g.backends, g.weighted ? cycling_weight : equal_weight), g.table_size, kSeed);
    uint64_t fingerprint = 0xcbf29ce484222325ull;
    for (const uint32_t id : table) {
      fingerprint ^= id;
      fingerprint *= 0x100000001b3ull;
    }
    EXPECT_EQ(fingerprint, g.fingerprint);
  }
}

TEST(Maglev, IsPrime) {
  for (const uint32_t p : {2u, 3u, 5u, 7u, 13u, 251u, 65521u, 65537u, 655373u, 4294967291u}) {
    EXPECT_TRUE(is_prime(p)) << p;
  }
  // 4294049777 = 65521 * 65537: only a divisor search up to sqrt(n) finds its factors.
  for (const uint32_t n : {0u, 1u, 4u, 9u, 25u, 49u, 65535u, 65536u, 4294049777u, 4294967295u}) {
    EXPECT_FALSE(is_prime(n)) << n;
  }
}

}  // namespace
}  // namespace l4mux
