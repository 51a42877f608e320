// Publishes immutable snapshots to worker threads and frees a replaced snapshot only when
// no worker can still be reading it (epoch-based reclamation, the RCU idea in miniature).
//
// Workers bracket each batch with enter()/leave(); between batches they hold nothing.
// The control thread publishes; retired snapshots are freed by reclaim(), which publish()
// also calls. Nothing here runs per packet.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace l4mux {

template <typename T>
class SnapshotHolder {
 public:
  explicit SnapshotHolder(uint32_t max_readers) : readers_(max_readers) {}
  ~SnapshotHolder() { delete current_.load(); }
  SnapshotHolder(const SnapshotHolder&) = delete;
  SnapshotHolder& operator=(const SnapshotHolder&) = delete;

  // Reader side (one reader id per worker thread, 0 <= id < max_readers).
  const T* enter(uint32_t reader) {
    readers_[reader].epoch.store(epoch_.load(std::memory_order_seq_cst), std::memory_order_seq_cst);
    return current_.load(std::memory_order_seq_cst);
  }
  void leave(uint32_t reader) { readers_[reader].epoch.store(kQuiescent, std::memory_order_release); }

  // Control side.
  void publish(std::unique_ptr<const T> next) {
    std::lock_guard lock(control_mutex_);
    const T* old = current_.exchange(next.release(), std::memory_order_seq_cst);
    const uint64_t retired_at = epoch_.fetch_add(1, std::memory_order_seq_cst);
    if (old != nullptr) retired_.push_back(Retired{old, retired_at});
    reclaim_locked();
  }
  void reclaim() {
    std::lock_guard lock(control_mutex_);
    reclaim_locked();
  }
  // Only for the control thread (e.g. to read config for status), never freed under it
  // because the control thread is the one that frees.
  const T* current_for_control() const { return current_.load(std::memory_order_acquire); }
  size_t retired_count() {
    std::lock_guard lock(control_mutex_);
    return retired_.size();
  }

 private:
  static constexpr uint64_t kQuiescent = UINT64_MAX;
  struct alignas(64) ReaderSlot {
    std::atomic<uint64_t> epoch{kQuiescent};
  };
  struct Retired {
    const T* snapshot;
    uint64_t epoch;  // readers that entered at or before this epoch may hold it
  };

  void reclaim_locked() {
    uint64_t oldest_reader = kQuiescent;
    for (const ReaderSlot& r : readers_) {
      oldest_reader = std::min(oldest_reader, r.epoch.load(std::memory_order_seq_cst));
    }
    std::erase_if(retired_, [&](const Retired& r) {
      if (oldest_reader <= r.epoch) return false;
      delete r.snapshot;
      return true;
    });
  }

  std::atomic<const T*> current_{nullptr};
  std::atomic<uint64_t> epoch_{1};
  std::vector<ReaderSlot> readers_;
  std::mutex control_mutex_;  // control thread(s) only
  std::vector<Retired> retired_;
};

}  // namespace l4mux
