#include "snapshot_holder.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace l4mux {
namespace {

struct Versioned {
  explicit Versioned(uint64_t v) : value(v), copy(v) {}
  ~Versioned() { value = copy = 0xdead; }
  uint64_t value;
  uint64_t copy;
};

TEST(SnapshotHolderTest, ReadersNeverSeeAFreedSnapshotWhileWritersPublish) {
  constexpr uint32_t kReaders = 3;
  SnapshotHolder<Versioned> holder(kReaders);
  holder.publish(std::make_unique<Versioned>(1));
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> reads{0};
  std::atomic<bool> torn{false};
  std::vector<std::thread> readers;
  for (uint32_t r = 0; r < kReaders; ++r) {
    readers.emplace_back([&, r] {
      uint64_t last = 0;
      while (!stop.load()) {
        const Versioned* v = holder.enter(r);
        // Under ASan a use after free aborts here; without it, the poisoned values show.
        if (v->value != v->copy || v->value < last) torn = true;
        last = v->value;
        holder.leave(r);
        reads.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  // Publish while the readers read: at least 3000 swaps, and until they have done 30000 reads
  // between them (bounded by a count, never by time, so a loaded machine only makes it slower).
  for (uint64_t v = 2; v < 3000 || (reads.load() < 30000 && v < 5'000'000); ++v) {
    holder.publish(std::make_unique<Versioned>(v));
  }
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_FALSE(torn.load());
  EXPECT_GT(reads.load(), 0u);
  holder.reclaim();
  EXPECT_EQ(holder.retired_count(), 0u) << "all readers quiescent: everything retired is freed";
}

TEST(SnapshotHolderTest, ASnapshotInUseIsKeptUntilItsReaderLeaves) {
  SnapshotHolder<Versioned> holder(1);
  holder.publish(std::make_unique<Versioned>(1));
  const Versioned* held = holder.enter(0);
  holder.publish(std::make_unique<Versioned>(2));
  EXPECT_EQ(holder.retired_count(), 1u);
  EXPECT_EQ(held->value, 1u);
  holder.leave(0);
  holder.reclaim();
  EXPECT_EQ(holder.retired_count(), 0u);
  EXPECT_EQ(holder.enter(0)->value, 2u);
  holder.leave(0);
}

}  // namespace
}  // namespace l4mux
