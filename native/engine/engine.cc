#include "engine.h"

#include <sched.h>

#include <ctime>
#include <stdexcept>

namespace l4mux {
namespace {

constexpr uint32_t kMaxWorkers = 1024;

const EngineOptions& validated(const EngineOptions& o) {
  if (o.workers == 0 || o.workers > kMaxWorkers) {
    throw std::invalid_argument("engine: workers must be 1.." + std::to_string(kMaxWorkers));
  }
  for (int cpu : o.cpus) {
    if (cpu < 0 || cpu >= CPU_SETSIZE) throw std::invalid_argument("engine: bad CPU " + std::to_string(cpu));
  }
  if (o.conntrack.capacity == 0) throw std::invalid_argument("engine: conntrack capacity must be > 0");
  if (o.max_vips == 0 || o.max_backends == 0) throw std::invalid_argument("engine: slot capacities must be > 0");
  if (o.sync && (o.sync->peer_flows == 0 || o.sync->export_ring == 0)) {
    throw std::invalid_argument("engine: cluster sync capacities must be > 0");
  }
  return o;
}

// The workers' clock (worker.cc), for the deadlines of installed entries.
uint64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace

Engine::Engine(const EngineOptions& options, PacketIoFactory factory)
    : options_(validated(options)),
      factory_(std::move(factory)),
      publisher_(options.workers, options.max_vips, options.max_backends),
      io_carry_(options.workers) {
  if (!factory_) throw std::invalid_argument("engine: no PacketIo factory");
  // Workers always find a snapshot: until the first set_config, one with no VIP (everything
  // that parses goes to the kernel, malformed frames are counted drops).
  publisher_.apply(ConfigSpec{});
  ConntrackConfig per_worker = options_.conntrack;
  per_worker.capacity = (options_.conntrack.capacity + options_.workers - 1) / options_.workers;
  if (options_.sync) sync_ = std::make_unique<cluster::SyncHub>(*options_.sync, options_.workers, per_worker.timeouts);
  if (options_.persistence_entries > 0) {
    persist_ = std::make_unique<PersistenceHub>(options_.persistence_entries, options_.max_vips, options_.workers,
                                                options_.punt);
  }
  workers_.reserve(options_.workers);
  for (uint32_t i = 0; i < options_.workers; ++i) {
    PipelineOptions pipeline;
    pipeline.sync = sync_ ? &sync_->worker(i) : nullptr;
    pipeline.persistence = persist_.get();
    pipeline.worker = i;
    workers_.push_back(
        std::make_unique<Worker>(i, per_worker, publisher_.holder(), options_.max_vips, options_.max_backends, pipeline));
  }
}

namespace {
std::unique_ptr<IoPlan> plan_for(const EngineOptions& o) {
  return IoPlan::choose(IoRequest{o.interface, o.io, o.xdp_mode, o.workers, o.af_packet});
}
}  // namespace

Engine::Engine(const EngineOptions& options) : Engine(options, plan_for(options)) {}

Engine::Engine(const EngineOptions& options, std::unique_ptr<IoPlan> plan)
    : Engine(options, [p = plan.get()](uint32_t worker) { return p->open(worker); }) {
  io_plan_ = std::move(plan);
}

void Engine::wake_worker(uint32_t worker) {
  if (worker < workers_.size()) workers_[worker]->wake();
}

uint64_t Engine::clock_ns() { return monotonic_ns(); }

IoChoice Engine::io_choice() const { return io_plan_ ? io_plan_->choice() : IoChoice{}; }

Engine::~Engine() { stop(); }

PreparedConfig Engine::prepare_config(const ConfigSpec& spec) const {
  PreparedConfig out;
  out.snapshot = publisher_.build(spec);  // throws before anything is published
  out.vips.reserve(spec.vips.size());
  for (const VipSpec& v : spec.vips) out.vips.push_back(v.key);
  // Packets peers redirect to this mux: its own address, UDP, the redirect port.
  if (sync_ && spec.cluster) {
    out.redirect.push_back(
        VipKey{spec.cluster->members[spec.cluster->self_index].address, kProtoUdp, spec.cluster->redirect_port});
  }
  return out;
}

void Engine::publish_config(PreparedConfig prepared) {
  if (!prepared.snapshot) throw std::invalid_argument("engine: no prepared snapshot (already published?)");
  std::lock_guard lock(mutex_);
  publisher_.publish(std::move(prepared.snapshot));
  // After publishing: a VIP's packets reach the workers only once they know the VIP.
  if (io_plan_) io_plan_->set_vips(prepared.vips, prepared.redirect);
}

std::optional<int> Engine::cpu_for(uint32_t worker) const {
  if (options_.cpus.empty()) return std::nullopt;
  return options_.cpus[worker % options_.cpus.size()];
}

void Engine::start() {
  std::lock_guard lock(mutex_);
  if (running_) return;
  try {
    ios_.clear();
    for (uint32_t i = 0; i < workers_.size(); ++i) {
      std::unique_ptr<PacketIo> io = factory_(i);
      if (!io) throw std::runtime_error("engine: the PacketIo factory returned nothing for worker " + std::to_string(i));
      ios_.push_back(std::move(io));
    }
    for (uint32_t i = 0; i < workers_.size(); ++i) workers_[i]->start(*ios_[i], cpu_for(i));
  } catch (...) {
    for (auto& w : workers_) w->stop();
    close_ios_locked();
    throw;
  }
  running_ = true;
}

void Engine::stop() {
  std::lock_guard lock(mutex_);
  for (auto& w : workers_) w->stop();
  close_ios_locked();
  running_ = false;
  publisher_.reclaim();
}

void Engine::close_ios_locked() {
  for (size_t i = 0; i < ios_.size(); ++i) {
    if (ios_[i]) io_carry_[i] += ios_[i]->stats();
  }
  ios_.clear();
}

bool Engine::running() const {
  std::lock_guard lock(mutex_);
  return running_;
}

EngineCounters Engine::counters() const {
  std::lock_guard lock(mutex_);
  publisher_.reclaim();  // a convenient periodic control-side call to free retired snapshots
  EngineCounters out;
  SlotNames names = publisher_.slot_names();
  out.total = std::make_unique<WorkerCounters>(options_.max_vips, options_.max_backends);
  WorkerCounters& t = *out.total;
  const auto vip_slots = static_cast<uint32_t>(names.vip_keys.size());
  const auto backend_slots = static_cast<uint32_t>(names.backend_keys.size());
  for (size_t i = 0; i < workers_.size(); ++i) {
    const Worker& w = *workers_[i];
    const WorkerCounters& c = w.counters();
    t.add(c, vip_slots, backend_slots);

    WorkerStatus ws;
#define L4MUX_X(name, str) ws.name = c.name.get();
    L4MUX_WORKER_COUNTERS(L4MUX_X)
#undef L4MUX_X
    for (size_t r = 0; r < kDropReasonCount; ++r) ws.drops[r] = c.drops[r].get();
    ws.io = io_carry_[i];
    if (i < ios_.size() && ios_[i]) {
      ws.io += ios_[i]->stats();
      ws.io_description = ios_[i]->describe();
      ws.rings = ios_[i]->ring_levels();
    }
    ws.conntrack = w.conntrack_stats();
    ws.conntrack_capacity = w.conntrack_capacity();
    out.io += ws.io;
    out.rings += ws.rings;
    out.conntrack += ws.conntrack;
    out.conntrack_capacity += w.conntrack_capacity();
    out.workers.push_back(std::move(ws));
  }
  out.vip_keys = std::move(names.vip_keys);
  out.vip_names = std::move(names.vip_names);
  out.backend_keys = std::move(names.backend_keys);
  return out;
}

size_t Engine::poll_flow_events(uint8_t* out, size_t max_records) {
  std::lock_guard lock(mutex_);
  if (!sync_) return 0;
  const cluster::BackendAddress address = [this](uint32_t slot) { return publisher_.backend_address(slot); };
  return sync_->poll(*publisher_.current(), address, out, max_records, monotonic_ns());
}

cluster::InstallResult Engine::install_flows(const uint8_t* records, size_t len) {
  std::lock_guard lock(mutex_);
  if (!sync_) return cluster::InstallResult{0, static_cast<uint32_t>((len + cluster::kFlowRecordSize - 1) / cluster::kFlowRecordSize)};
  const cluster::BackendResolver resolve = [this](const IpAddr& a) { return publisher_.backend_slot(a); };
  return sync_->install(records, len, *publisher_.current(), resolve, monotonic_ns());
}

size_t Engine::dump_peer_flows(uint32_t* cursor, uint8_t* out, size_t max_records) const {
  std::lock_guard lock(mutex_);
  if (!sync_) return 0;
  return sync_->dump(*publisher_.current(), cursor, out, max_records, monotonic_ns());
}

std::vector<uint64_t> Engine::sync_mark() const {
  std::lock_guard lock(mutex_);
  return sync_ ? sync_->mark() : std::vector<uint64_t>{};
}

bool Engine::sync_drained(const std::vector<uint64_t>& mark) const {
  std::lock_guard lock(mutex_);
  return !sync_ || sync_->drained(mark);
}

cluster::Owners Engine::owners(const FlowKey& key) const {
  std::lock_guard lock(mutex_);
  const cluster::ClusterView* c = publisher_.current()->cluster();
  return c != nullptr ? c->owners(key) : cluster::Owners{};
}

Engine::SyncStatus Engine::sync_status() const {
  std::lock_guard lock(mutex_);
  SyncStatus s;
  if (!sync_) return s;
  s.hub = sync_->stats();
  for (uint32_t i = 0; i < sync_->worker_count(); ++i) {
    const cluster::WorkerSync& w = sync_->worker(i);
    SyncWorkerStatus ws;
#define L4MUX_X(name, str) ws.counters.emplace_back(str, w.counters().name.get());
    L4MUX_SYNC_COUNTERS(L4MUX_X)
#undef L4MUX_X
    ws.export_overflow = w.ring().overflow();
    s.workers.push_back(std::move(ws));
  }
  return s;
}

}  // namespace l4mux
