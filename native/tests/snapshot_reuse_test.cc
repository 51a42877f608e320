// A snapshot build takes a VIP's Maglev table over from the previous build when the table's
// inputs are unchanged, and builds it anew, identical to a build from nothing, when they are not.
#include <gtest/gtest.h>

#include <string>

#include "engine/config_publisher.h"
#include "snapshot.h"

namespace l4mux {
namespace {

IpAddr v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  const uint8_t bytes[4] = {a, b, c, d};
  return IpAddr::v4(bytes);
}

ConfigSpec three_vips() {
  ConfigSpec spec;
  spec.seed = 42;
  spec.outer_source_v4 = v4(192, 0, 2, 1);
  for (uint8_t v = 0; v < 3; ++v) {
    VipSpec vs;
    vs.name = "vip" + std::to_string(v);
    vs.key = VipKey{v4(203, 0, 113, v), kProtoTcp, 80};
    vs.table_size = 251;
    for (uint8_t b = 1; b <= 4; ++b) vs.backends.emplace_back(v4(10, v, 0, b), 1);
    spec.vips.push_back(std::move(vs));
  }
  return spec;
}

// The table a build with nothing to reuse gives (the same slots: same order of first sight).
std::vector<uint32_t> fresh_table(const ConfigSpec& spec, size_t vip) {
  BackendRegistry backends(64);
  VipRegistry vips(16);
  const auto snap = Snapshot::build(spec, backends, vips);
  return snap->vips()[vip].maglev->entries;
}

TEST(SnapshotReuse, AHealthFlapRebuildsOnlyThatVipsTable) {
  ConfigPublisher publisher(1, 16, 64);
  ConfigSpec spec = three_vips();
  const auto first = publisher.build(spec);
  EXPECT_EQ(first->tables_built(), 3u);
  EXPECT_EQ(first->tables_reused(), 0u);

  spec.vips[1].backends[2].healthy = false;
  const auto flapped = publisher.build(spec);
  EXPECT_EQ(flapped->tables_built(), 1u);
  EXPECT_EQ(flapped->tables_reused(), 2u);
  EXPECT_EQ(flapped->vips()[0].maglev, first->vips()[0].maglev);
  EXPECT_EQ(flapped->vips()[2].maglev, first->vips()[2].maglev);
  EXPECT_NE(flapped->vips()[1].maglev, first->vips()[1].maglev);
  EXPECT_EQ(flapped->vips()[1].maglev->entries, fresh_table(spec, 1));
  EXPECT_EQ(flapped->vips()[1].table.data(), flapped->vips()[1].maglev->entries.data());

  spec.vips[1].backends[2].healthy = true;
  const auto recovered = publisher.build(spec);
  EXPECT_EQ(recovered->tables_built(), 1u);
  EXPECT_EQ(recovered->vips()[1].maglev->entries, first->vips()[1].maglev->entries);
}

TEST(SnapshotReuse, EveryTableInputCountsAndNothingElseDoes) {
  ConfigPublisher publisher(1, 16, 64);
  ConfigSpec spec = three_vips();
  (void)publisher.build(spec);
  EXPECT_EQ(publisher.build(spec)->tables_reused(), 3u) << "unchanged config";

  spec.vips[0].icmp_echo = false;  // not a table input
  spec.vips[0].scheduler = Scheduler::kWrr;
  EXPECT_EQ(publisher.build(spec)->tables_reused(), 3u) << "echo and scheduler do not touch the table";

  spec.vips[0].backends[0].weight = 3;
  EXPECT_EQ(publisher.build(spec)->tables_built(), 1u) << "weight";
  spec.vips[0].backends[1].state = AdminState::kDraining;
  EXPECT_EQ(publisher.build(spec)->tables_built(), 1u) << "admin state";
  spec.vips[0].backends[1].fallover = {v4(10, 0, 0, 4)};
  EXPECT_EQ(publisher.build(spec)->tables_built(), 1u) << "fall-over target";
  spec.vips[2].table_size = 257;
  EXPECT_EQ(publisher.build(spec)->tables_built(), 1u) << "table size";
  spec.vips[1].backends.pop_back();
  const auto removed = publisher.build(spec);
  EXPECT_EQ(removed->tables_built(), 1u) << "a backend leaving";
  EXPECT_EQ(removed->vips()[1].maglev->entries, fresh_table(spec, 1));
  spec.seed = 43;
  EXPECT_EQ(publisher.build(spec)->tables_built(), 3u) << "seed";
}

TEST(SnapshotReuse, AFailedBuildLeavesTheSourceAsItWas) {
  ConfigPublisher publisher(1, 16, 64);
  ConfigSpec spec = three_vips();
  const auto first = publisher.build(spec);
  ConfigSpec bad = spec;
  bad.vips[0].table_size = 252;  // not prime
  EXPECT_THROW((void)publisher.build(bad), std::invalid_argument);
  const auto again = publisher.build(spec);
  EXPECT_EQ(again->tables_reused(), 3u);
  EXPECT_EQ(again->vips()[0].maglev, first->vips()[0].maglev);
}

}  // namespace
}  // namespace l4mux
