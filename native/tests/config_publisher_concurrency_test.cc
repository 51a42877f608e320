// ConfigPublisher under concurrency: several threads build and publish snapshots (registries
// growing on each, so the side-by-side builds have to merge their slots) while worker threads
// read. No reader may see a torn snapshot (VIPs of two configurations, a table naming a slot
// that is not the backend the snapshot's configuration put there), and whatever was published
// last is what the readers get and what the slot names say.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/config_publisher.h"
#include "snapshot.h"

namespace l4mux {
namespace {

constexpr uint32_t kPublishers = 4;
constexpr uint32_t kRounds = 150;
constexpr uint32_t kReaders = 2;
constexpr uint8_t kVips = 3;
constexpr uint8_t kBackendsPerVip = 4;
constexpr uint32_t kAddressRounds = 32;  // backend addresses recur every 32 rounds

IpAddr v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  const uint8_t bytes[4] = {a, b, c, d};
  return IpAddr::v4(bytes);
}

// Generation g = publisher * kRounds + round. Its VIPs are named "g<g>-v<i>" (the same three
// keys every time, so VIP slots stay), its backends are 10.<publisher>.<round % 32>.<vip*4+b>.
IpAddr backend_of(uint32_t gen, uint8_t vip, uint8_t b) {
  const uint32_t publisher = gen / kRounds;
  const uint32_t round = gen % kRounds;
  return v4(10, static_cast<uint8_t>(publisher), static_cast<uint8_t>(round % kAddressRounds),
            static_cast<uint8_t>(vip * kBackendsPerVip + b + 1));
}

std::string vip_name(uint32_t gen, uint8_t vip) {
  // Appended, not "g" + std::to_string(...): GCC 12 at -O3 reports a false -Wrestrict there.
  std::string name = "g";
  name += std::to_string(gen);
  name += "-v";
  name += std::to_string(vip);
  return name;
}

ConfigSpec generation(uint32_t gen) {
  ConfigSpec spec;
  spec.seed = 7;
  spec.outer_source_v4 = v4(192, 0, 2, 1);
  for (uint8_t v = 0; v < kVips; ++v) {
    VipSpec vs;
    vs.name = vip_name(gen, v);
    vs.key = VipKey{v4(203, 0, 113, static_cast<uint8_t>(v + 1)), kProtoTcp, 80};
    vs.table_size = 251;
    for (uint8_t b = 0; b < kBackendsPerVip; ++b) vs.backends.emplace_back(backend_of(gen, v, b), 1u + b);
    spec.vips.push_back(std::move(vs));
  }
  return spec;
}

// Empty when `snap` is all of one generation; else what is wrong.
std::string torn(const Snapshot& snap) {
  if (snap.vips().size() != kVips) return "VIP count " + std::to_string(snap.vips().size());
  const std::string& first = snap.vips()[0].name;
  const uint32_t gen = static_cast<uint32_t>(std::stoul(first.substr(1, first.find('-') - 1)));
  for (uint8_t v = 0; v < kVips; ++v) {
    const Vip& vip = snap.vips()[v];
    if (vip.name != vip_name(gen, v)) return vip.name + " in a snapshot of " + first;
    for (const uint32_t slot : vip.table) {
      if (slot >= snap.backends().size()) return vip.name + ": table slot " + std::to_string(slot) + " past the backends";
      if (vip.member(slot) == nullptr) return vip.name + ": table slot " + std::to_string(slot) + " not a member";
      const IpAddr& addr = snap.backends()[slot].addr;
      bool ours = false;
      for (uint8_t b = 0; b < kBackendsPerVip; ++b) ours = ours || addr == backend_of(gen, v, b);
      if (!ours) return vip.name + ": table slot " + std::to_string(slot) + " holds another generation's backend";
    }
  }
  return "";
}

uint32_t generation_of(const Snapshot& snap) {
  const std::string& name = snap.vips()[0].name;
  return static_cast<uint32_t>(std::stoul(name.substr(1, name.find('-') - 1)));
}

TEST(ConfigPublisherConcurrency, PublishersSideBySideReadersSeeWholeSnapshotsLastPublishWins) {
  ConfigPublisher publisher(kReaders, 16, 2048);
  publisher.apply(generation(0));

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> reads{0};
  std::vector<std::string> reader_errors(kReaders);
  std::vector<std::thread> readers;
  for (uint32_t r = 0; r < kReaders; ++r) {
    readers.emplace_back([&, r] {
      while (!stop.load() && reader_errors[r].empty()) {
        const Snapshot* snap = publisher.holder().enter(r);
        reader_errors[r] = torn(*snap);
        publisher.holder().leave(r);
        reads.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }

  std::atomic<uint32_t> build_failures{0};
  std::mutex failure_mutex;
  std::string first_failure;
  std::vector<std::thread> publishers;
  for (uint32_t p = 0; p < kPublishers; ++p) {
    publishers.emplace_back([&, p] {
      for (uint32_t round = 0; round < kRounds; ++round) {
        try {
          publisher.publish(publisher.build(generation(p * kRounds + round)));
        } catch (const std::exception& e) {
          if (build_failures.fetch_add(1) == 0) {
            std::lock_guard lock(failure_mutex);
            first_failure = e.what();
          }
        }
      }
    });
  }
  for (auto& t : publishers) t.join();
  // Let the readers see the final snapshot too (bounded by a count of reads, not by time).
  const uint64_t reads_at_end = reads.load();
  for (uint64_t spins = 0; reads.load() < reads_at_end + 100 && spins < 100'000'000; ++spins) std::this_thread::yield();
  stop = true;
  for (auto& t : readers) t.join();

  EXPECT_EQ(build_failures.load(), 0u) << first_failure;
  for (uint32_t r = 0; r < kReaders; ++r) EXPECT_EQ(reader_errors[r], "") << "reader " << r;
  EXPECT_GT(reads.load(), 0u);

  // The snapshot in place is one publisher's last, whole; and the slot names are its names.
  const Snapshot* current = publisher.current();
  ASSERT_NE(current, nullptr);
  EXPECT_EQ(torn(*current), "");
  EXPECT_EQ(generation_of(*current) % kRounds, kRounds - 1) << "a publisher's last round is the last publish";
  const SlotNames names = publisher.slot_names();
  for (const Vip& vip : current->vips()) {
    ASSERT_TRUE(names.vip_names.contains(vip.slot));
    EXPECT_EQ(names.vip_names.at(vip.slot), vip.name) << "slot names follow the snapshot that is in place";
    EXPECT_EQ(names.backend_keys.size(), publisher.backend_slot_count());
  }
  // Every backend slot names one address, every address has one slot: the merges lost nothing.
  for (uint32_t slot = 0; slot < names.backend_keys.size(); ++slot) {
    EXPECT_EQ(publisher.backend_slot(names.backend_keys[slot]), slot);
  }
  EXPECT_EQ(names.backend_keys.size(), size_t{kPublishers} * kAddressRounds * kVips * kBackendsPerVip);

  // One more publish, from this thread: it wins, for a reader and for the names.
  const uint32_t final_gen = 1;  // publisher 0, round 1: its addresses and names already seen
  publisher.apply(generation(final_gen));
  const Snapshot* seen = publisher.holder().enter(0);
  EXPECT_EQ(generation_of(*seen), final_gen);
  EXPECT_EQ(torn(*seen), "");
  publisher.holder().leave(0);
  const SlotNames after = publisher.slot_names();
  for (const Vip& vip : publisher.current()->vips()) EXPECT_EQ(after.vip_names.at(vip.slot), vip.name);
  publisher.reclaim();
  EXPECT_EQ(publisher.holder().retired_count(), 0u);
}

}  // namespace
}  // namespace l4mux
