#include "worker.h"

#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>

namespace l4mux {
namespace {

uint64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);  // vDSO: no system call
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

uint64_t realtime_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace

Worker::Worker(uint32_t id, const ConntrackConfig& conntrack, SnapshotHolder<Snapshot>& holder,
               uint32_t max_vips, uint32_t max_backends, PipelineOptions options)
    : id_(id),
      holder_(holder),
      counters_(max_vips, max_backends),
      pipeline_(conntrack, counters_, options),
      conntrack_capacity_(pipeline_.conntrack().capacity()) {
  if (pipeline_.punts() != nullptr) {
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) throw std::system_error(errno, std::generic_category(), "worker " + std::to_string(id) + ": eventfd");
  }
}

Worker::~Worker() {
  stop();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void Worker::wake() {
  if (wake_fd_ < 0) return;
  const uint64_t one = 1;
  [[maybe_unused]] const ssize_t r = ::write(wake_fd_, &one, sizeof(one));  // EAGAIN: already pending
}

void Worker::serve_held(PacketIo& io) {
  PuntQueue* q = pipeline_.punts();
  if (q->answers_waiting() == 0 && q->held() == 0) return;
  const Snapshot* snap = holder_.enter(id_);
  if (snap != nullptr) {
    const uint64_t now = monotonic_ns();
    for (;;) {
      const uint32_t n = pipeline_.release_answers(*snap, now, std::span<Packet>(release_.data(), release_.size()),
                                                   release_slots_.data());
      const uint32_t sent = n != 0 ? io.transmit(std::span<Packet>(release_.data(), n)) : 0;
      pipeline_.finish_release(release_slots_.data(), n, sent);
      if (n < release_.size()) break;
    }
  }
  holder_.leave(id_);
}

void Worker::start(PacketIo& io, std::optional<int> cpu, int poll_timeout_ms) {
  if (thread_.joinable()) throw std::logic_error("worker " + std::to_string(id_) + " already running");
  if (cpu && (*cpu < 0 || *cpu >= CPU_SETSIZE)) {
    throw std::system_error(EINVAL, std::generic_category(),
                            "worker " + std::to_string(id_) + ": bad CPU " + std::to_string(*cpu));
  }
  stop_.store(false, std::memory_order_relaxed);
  thread_ = std::thread([this, &io, poll_timeout_ms] { run(io, poll_timeout_ms); });

  const std::string name = "l4mux-w" + std::to_string(id_);  // <= 15 characters for ids < 10^8
  ::pthread_setname_np(thread_.native_handle(), name.substr(0, 15).c_str());
  if (cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(*cpu, &set);
    const int err = ::pthread_setaffinity_np(thread_.native_handle(), sizeof(set), &set);
    if (err != 0) {
      stop();
      throw std::system_error(err, std::generic_category(),
                              "worker " + std::to_string(id_) + ": pinning to CPU " + std::to_string(*cpu));
    }
  }
}

void Worker::stop() {
  if (!thread_.joinable()) return;
  stop_.store(true, std::memory_order_relaxed);
  thread_.join();
}

ConntrackStats Worker::conntrack_stats() const {
  ConntrackStats s;
#define L4MUX_X(name, str) s.name = ct_##name##_.load(std::memory_order_relaxed);
  L4MUX_CONNTRACK_STATS(L4MUX_X)
#undef L4MUX_X
  return s;
}

void Worker::publish_conntrack_stats() {
  const ConntrackStats& s = pipeline_.conntrack().stats();
#define L4MUX_X(name, str) ct_##name##_.store(s.name, std::memory_order_relaxed);
  L4MUX_CONNTRACK_STATS(L4MUX_X)
#undef L4MUX_X
}

FlowQueryResult Worker::query_flow_now(const FlowKey& key, uint64_t hash) {
  if (thread_.joinable()) throw std::logic_error("worker " + std::to_string(id_) + " is running: ask it through flow_query()");
  return query_conntrack(pipeline_.conntrack(), key, hash, monotonic_ns());
}

void Worker::detach_capture() {
  capture_.store(nullptr, std::memory_order_seq_cst);
  while (capture_busy_.load(std::memory_order_seq_cst)) std::this_thread::yield();
}

void Worker::run(PacketIo& io, int poll_timeout_ms) {
  const std::span<Packet> batch(batch_.data(), batch_.size());
  const bool persistence = pipeline_.punts() != nullptr;
  if (persistence) io.set_wakeup_fd(wake_fd_);
  while (!stop_.load(std::memory_order_relaxed)) {
    const uint32_t n = io.receive(batch, poll_timeout_ms);
    // Answered on timeouts too: an idle worker answers within one poll timeout.
    flow_query_.serve([this](const FlowKey& key, uint64_t hash) {
      return query_conntrack(pipeline_.conntrack(), key, hash, monotonic_ns());
    });
    if (persistence) serve_held(io);
    if (n == 0) continue;
    const uint64_t now = monotonic_ns();
    // Capturing costs this one load per batch while nobody captures. Busy is raised before
    // the session is read again, so detach_capture() cannot free it under us.
    CaptureSession* capture = nullptr;
    if (capture_.load(std::memory_order_relaxed) != nullptr) {
      capture_busy_.store(true, std::memory_order_seq_cst);
      capture = capture_.load(std::memory_order_seq_cst);
      if (capture == nullptr) capture_busy_.store(false, std::memory_order_release);
      else capture->before(id_, batch.first(n), realtime_ns());
    }
    const Snapshot* snap = holder_.enter(id_);
    // The engine publishes a snapshot before any worker starts, so there always is one.
    if (snap != nullptr) {
      pipeline_.process(batch.first(n), *snap, now);
    } else {
      for (uint32_t i = 0; i < n; ++i) batch[i].verdict = Verdict::kPass;
      counters_.rx.add(n);
      counters_.passed.add(n);
    }
    holder_.leave(id_);
    if (capture != nullptr) {
      capture->after(id_, batch.first(n));
      capture_busy_.store(false, std::memory_order_release);
    }
    io.complete(batch, n);
    if (persistence) serve_held(io);  // answers that came while the batch was processed
    publish_conntrack_stats();
    batches_.store(batches_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
}

}  // namespace l4mux
