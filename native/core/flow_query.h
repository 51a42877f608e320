// A question to one worker about its own connection table ("do you hold this flow?"), answered
// by the worker itself between two batches, so that the table needs no lock and the worker is
// never stopped. One question at a time per worker; the control thread polls for the answer.
//
// States: idle -> asked (control wrote the key) -> serving (worker reads it) -> answered
// (worker wrote the result) -> idle (control took it). The control thread may abandon a
// question that is still `asked` (a worker that is gone); one being served it waits for.
#pragma once

#include <atomic>
#include <cstdint>

#include "conntrack.h"
#include "types.h"

namespace l4mux {

struct FlowQueryResult {
  bool found = false;
  uint32_t backend = 0;  // backend slot
  uint32_t vip = 0;      // VIP slot the flow was scheduled under
  FlowState state = FlowState::kFree;
  uint64_t idle_ns = 0;        // since the flow's last packet
  uint64_t expires_in_ns = 0;  // until the entry expires without another packet
};

// Idle timeout of an entry in `state` (as Conntrack applies them).
inline uint64_t flow_timeout_ns(const ConntrackTimeouts& t, FlowState state) {
  switch (state) {
    case FlowState::kTcpSynSeen:
      return t.tcp_syn_ns;
    case FlowState::kTcpEstablished:
      return t.tcp_established_ns;
    case FlowState::kTcpClosing:
      return t.tcp_closing_ns;
    case FlowState::kUdp:
      return t.udp_ns;
    case FlowState::kOther:
    case FlowState::kFree:
      break;
  }
  return t.other_ns;
}

// What a table says of `key` at `now_ns`.
inline FlowQueryResult query_conntrack(Conntrack& table, const FlowKey& key, uint64_t hash, uint64_t now_ns) {
  FlowQueryResult r;
  const FlowEntry* e = table.lookup(key, hash, now_ns);
  if (e == nullptr) return r;
  r.found = true;
  r.backend = e->backend;
  r.vip = e->vip;
  r.state = e->state;
  r.expires_in_ns = e->expires_ns - now_ns;
  const uint64_t timeout = flow_timeout_ns(table.timeouts(), e->state);
  r.idle_ns = timeout > r.expires_in_ns ? timeout - r.expires_in_ns : 0;
  return r;
}

class FlowQuerySlot {
 public:
  // Control side. False when a question is still open.
  bool post(const FlowKey& key, uint64_t hash) {
    if (state_.load(std::memory_order_acquire) != kIdle) return false;
    key_ = key;
    hash_ = hash;
    state_.store(kAsked, std::memory_order_release);
    return true;
  }
  // Control side: true (and the slot idle again) once answered.
  bool take(FlowQueryResult* out) {
    if (state_.load(std::memory_order_acquire) != kAnswered) return false;
    *out = result_;
    state_.store(kIdle, std::memory_order_release);
    return true;
  }
  // Control side: gives up an open question. Returns once the slot is idle (a question being
  // served is finished first: that takes nanoseconds).
  void abandon() {
    for (;;) {
      uint32_t s = kAsked;
      if (state_.compare_exchange_strong(s, kIdle, std::memory_order_acq_rel)) return;
      if (s == kAnswered) {
        state_.store(kIdle, std::memory_order_release);
        return;
      }
      if (s == kIdle) return;
      // kServing: the worker is answering right now.
    }
  }
  // Worker side, once per loop turn: one load when nobody asks.
  template <typename Answer>
  void serve(Answer&& answer) {
    if (state_.load(std::memory_order_relaxed) != kAsked) return;
    uint32_t s = kAsked;
    if (!state_.compare_exchange_strong(s, kServing, std::memory_order_acquire)) return;
    result_ = answer(key_, hash_);
    state_.store(kAnswered, std::memory_order_release);
  }

 private:
  static constexpr uint32_t kIdle = 0;
  static constexpr uint32_t kAsked = 1;
  static constexpr uint32_t kServing = 2;
  static constexpr uint32_t kAnswered = 3;

  std::atomic<uint32_t> state_{kIdle};
  FlowKey key_{};
  uint64_t hash_ = 0;
  FlowQueryResult result_{};
};

}  // namespace l4mux
