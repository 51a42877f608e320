// Engine introspection: flow lookup and live capture. Both reach the workers through state
// they poll between batches (flow_query.h, capture.h); no worker is stopped or slowed.
#include <chrono>
#include <stdexcept>
#include <thread>

#include "hash.h"
#include "engine.h"

namespace l4mux {
namespace {

IpAddr destination_of(const FlowKey& key) {
  IpAddr a;
  a.bytes = key.dst;
  a.family = key.family;
  return a;
}

}  // namespace

FlowLookup Engine::lookup_flow(const FlowKey& key, int timeout_ms) {
  std::lock_guard one_at_a_time(lookup_mutex_);
  FlowLookup out;
  out.workers.resize(workers_.size());
  bool asked = false;
  {
    std::lock_guard lock(mutex_);
    const Snapshot* snap = publisher_.current();
    const SlotNames names = publisher_.slot_names();
    const uint64_t seed = snap->seed();
    out.flow_hash = hash_flow(key, HashFields::kFiveTuple, seed);
    if (const Vip* vip = snap->find_vip(destination_of(key), key.proto, key.dst_port)) {
      out.vip_found = true;
      if (auto name = names.vip_names.find(vip->slot); name != names.vip_names.end()) out.vip_name = name->second;
      out.scheduler = vip->scheduler;
      out.hash_fields = vip->scheduler == Scheduler::kSourceHash ? HashFields::kSrcIp : vip->hash_fields;
      out.table_decides = vip->scheduler == Scheduler::kMaglev || vip->scheduler == Scheduler::kSourceHash;
      out.table_size = vip->table_size;
      if (out.table_decides && vip->table_size > 0) {
        out.scheduler_hash = hash_flow(key, out.hash_fields, seed);
        out.table_index = static_cast<uint32_t>(out.scheduler_hash % vip->table_size);
        const uint32_t slot = vip->table[out.table_index];
        if (slot != kMaglevNoBackend && slot < names.backend_keys.size()) out.table_backend = names.backend_keys[slot];
      }
    }
    for (uint32_t i = 0; i < workers_.size(); ++i) {
      out.workers[i].worker = i;
      if (!running_) {
        // No thread runs: the tables are ours to read (start() waits for this lock).
        out.workers[i].entry = workers_[i]->query_flow_now(key, out.flow_hash);
        out.workers[i].answered = true;
        continue;
      }
      workers_[i]->flow_query().abandon();  // a question an earlier lookup gave up on
      workers_[i]->flow_query().post(key, out.flow_hash);
      asked = true;
    }
  }

  if (asked) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      bool all = true;
      for (uint32_t i = 0; i < workers_.size(); ++i) {
        WorkerFlow& w = out.workers[i];
        if (!w.answered) w.answered = workers_[i]->flow_query().take(&w.entry);
        all = all && w.answered;
      }
      if (all || std::chrono::steady_clock::now() >= deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    for (uint32_t i = 0; i < workers_.size(); ++i) {
      if (!out.workers[i].answered) workers_[i]->flow_query().abandon();
    }
  }

  std::lock_guard lock(mutex_);
  const Snapshot* snap = publisher_.current();
  const SlotNames names = publisher_.slot_names();
  const WorkerFlow* holder = nullptr;
  for (WorkerFlow& w : out.workers) {
    if (!w.entry.found) continue;
    if (w.entry.backend < names.backend_keys.size()) w.backend = names.backend_keys[w.entry.backend];
    if (auto name = names.vip_names.find(w.entry.vip); name != names.vip_names.end()) w.vip_name = name->second;
    const Vip* vip = snap->vip_by_slot(w.entry.vip);
    w.fate = vip != nullptr ? vip->fate_of(w.entry.backend) : FlowFate::kReschedule;
    if (holder == nullptr && w.fate == FlowFate::kKeep) holder = &w;
  }
  if (!out.vip_found) {
    out.decided_by = "no VIP";
  } else if (holder != nullptr) {
    out.backend_now = holder->backend;
    out.decided_by = "connection table";
  } else if (out.table_decides) {
    out.backend_now = out.table_backend;
    out.decided_by = out.table_backend ? (out.scheduler == Scheduler::kSourceHash ? "source-hash table" : "maglev table") : "no backend";
  } else {
    out.decided_by = "decided per worker";
  }
  return out;
}

void Engine::start_capture(const CaptureRequest& request) {
  std::lock_guard lock(mutex_);
  if (capture_ && !capture_stopped_) throw std::invalid_argument("a capture is already running on " + options_.interface);
  capture_.reset();  // a stopped one nobody drained
  CaptureFilter filter;
  filter.count = request.count;
  filter.snaplen = request.snaplen;
  filter.sample_every = request.sample_every;
  if (!request.vip_name.empty()) {
    const SlotNames names = publisher_.slot_names();
    for (const auto& [slot, name] : names.vip_names) {
      if (name == request.vip_name && slot < names.vip_keys.size()) filter.vip = names.vip_keys[slot];
    }
    if (!filter.vip) throw std::invalid_argument("no VIP named \"" + request.vip_name + "\"");
  }
  if (request.backend) {
    filter.backend = publisher_.backend_slot(*request.backend);
    if (!filter.backend) throw std::invalid_argument("the backend is not in the running configuration");
  }
  capture_ = std::make_unique<CaptureSession>(filter, static_cast<uint32_t>(workers_.size()));
  capture_stopped_ = false;
  for (auto& w : workers_) w->attach_capture(capture_.get());
}

uint32_t Engine::drain_capture(const std::function<void(const CaptureRecordHeader&, const uint8_t*)>& sink) {
  std::lock_guard lock(mutex_);
  if (!capture_) return 0;
  const uint32_t n = capture_->drain(sink);
  if (capture_stopped_) capture_.reset();  // the last records are out: the rings go
  return n;
}

bool Engine::capture_complete() const {
  std::lock_guard lock(mutex_);
  return capture_ && capture_->complete();
}

CaptureStats Engine::stop_capture() {
  std::lock_guard lock(mutex_);
  if (!capture_ || capture_stopped_) return {};
  for (auto& w : workers_) w->detach_capture();
  capture_stopped_ = true;
  return capture_->stats();
}

}  // namespace l4mux
