// Cluster-sync benchmark: what connection-table sync costs the fast path, and how fast the
// control side moves records. One core; prints one JSON object on stdout.
//
//   new_flows: 1M SYNs of distinct flows through the pipeline, sync off (a lone mux: no
//     cluster view, no export) and sync on (cluster of 3, every new entry exported to the
//     worker's ring), alternating runs in the same process; the ring is drained between
//     batches outside the timed section (the control thread does that on another core).
//   established: 100k established flows (ACKs), sync off and on (the refresh check).
//   poll: records per second through SyncHub::poll (drain, owners filled in, own flows into
//     the own peer table); install: records per second through installFlows into a 1M-entry
//     peer table; bytes per record and per peer-table entry.
//
//   cluster_bench [--quick] [--runs N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "../../native/tests/frame_builder.h"
#include "cluster/flow_sync.h"
#include "pipeline.h"
#include "snapshot.h"

using namespace l4mux;
using namespace l4mux::testing;

namespace {

constexpr uint32_t kHeadroom = 128;
constexpr uint32_t kSlot = 256;

ConfigSpec make_config(bool cluster) {
  ConfigSpec spec;
  spec.seed = 0x5eed1234abcdull;
  spec.source_mac = {2, 0, 0, 0, 0, 1};
  spec.gateway_mac = {2, 0, 0, 0, 0, 0xfe};
  spec.outer_source_v4 = ip("10.0.0.1");
  VipSpec v;
  v.name = "tcp4";
  v.key = VipKey{ip("192.0.2.10"), kProtoTcp, 80};
  for (int i = 1; i <= 10; ++i) v.backends.push_back(BackendSpec{ip("10.1.0." + std::to_string(i)), 1});
  spec.vips.push_back(v);
  if (cluster) {
    cluster::ClusterSpec c;
    c.seed = 0xc105e5;
    c.redirect_port = 6666;
    for (int m = 1; m <= 3; ++m) {
      cluster::MemberSpec ms;
      ms.id = "mux" + std::to_string(m);
      ms.address = ip("10.0.0." + std::to_string(m));
      c.members.push_back(ms);
    }
    spec.cluster = c;
  }
  return spec;
}

std::vector<Bytes> flows(uint32_t n, uint8_t flags, uint8_t tag) {
  std::vector<Bytes> frames;
  frames.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    L4Spec l4;
    l4.src_port = static_cast<uint16_t>(1024 + (i & 0xff) * 200);
    l4.tcp_flags = flags;
    l4.payload.assign(6, 'x');
    frames.push_back(flow_frame("198." + std::to_string(tag) + "." + std::to_string((i >> 16) & 0xff) + "." +
                                    std::to_string((i >> 8) & 0xff),
                                "192.0.2.10", l4));
  }
  return frames;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Lane {
  BackendRegistry backends{65536};
  VipRegistry vips{4096};
  std::unique_ptr<const Snapshot> snapshot;
  WorkerCounters counters{4096, 65536};
  std::unique_ptr<cluster::SyncHub> hub;
  std::unique_ptr<Pipeline> pipeline;
  std::vector<uint8_t> drained = std::vector<uint8_t>(65536 * cluster::kFlowRecordSize);
  uint64_t exported = 0;

  explicit Lane(bool sync) {
    snapshot = Snapshot::build(make_config(sync), backends, vips);
    PipelineOptions o;
    if (sync) {
      hub = std::make_unique<cluster::SyncHub>(cluster::SyncSettings{1u << 20, 65536}, 1, ConntrackTimeouts{});
      o.sync = &hub->worker(0);
    }
    pipeline = std::make_unique<Pipeline>(ConntrackConfig{}, counters, o);
  }

  // Mpps of Pipeline::process over `frames` (each once), batches of 64.
  double pass(const std::vector<Bytes>& frames, uint64_t& clock_ns) {
    std::vector<uint8_t> storage(size_t{kSlot} * kMaxBatch);
    std::vector<Packet> batch(kMaxBatch);
    std::chrono::steady_clock::duration timed{};
    for (size_t start = 0; start + kMaxBatch <= frames.size(); start += kMaxBatch) {
      for (uint32_t i = 0; i < kMaxBatch; ++i) {
        const Bytes& f = frames[start + i];
        uint8_t* slot = storage.data() + size_t{i} * kSlot;
        std::memcpy(slot + kHeadroom, f.data(), f.size());
        batch[i] = Packet{};
        batch[i].data = slot + kHeadroom;
        batch[i].len = static_cast<uint32_t>(f.size());
        batch[i].headroom = kHeadroom;
      }
      const auto t0 = std::chrono::steady_clock::now();
      pipeline->process(batch, *snapshot, clock_ns);
      timed += std::chrono::steady_clock::now() - t0;
      clock_ns += 1000;
      if (hub) {
        exported += hub->worker(0).ring().produced() - hub->worker(0).ring().consumed();
        drain();
      }
    }
    const uint64_t n = frames.size() / kMaxBatch * kMaxBatch;
    return static_cast<double>(n) / std::chrono::duration<double>(timed).count() / 1e6;
  }

  void drain() {
    // Only the ring's consumer side: what the control thread's poll does first.
    hub->worker(0).ring().drain(drained.data(), 65536);
  }
};

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  int runs = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") quick = true;
    if (a == "--runs" && i + 1 < argc) runs = std::stoi(argv[++i]);
  }
  if (runs <= 0) runs = quick ? 3 : 7;
  const uint32_t new_flows = quick ? 300000 : 1000000;

  // ---- New flows: sync off and on, alternating ----
  std::vector<double> off_runs;
  std::vector<double> on_runs;
  uint64_t exported = 0;
  uint64_t overflow = 0;
  {
    Lane off(false);
    Lane on(true);
    uint64_t clock_off = 1'000'000'000;
    uint64_t clock_on = 1'000'000'000;
    for (int r = 0; r < runs; ++r) {
      const auto frames = flows(new_flows, kTcpSyn, static_cast<uint8_t>(r + 1));  // new clients every run
      if (r % 2 == 0) {
        off_runs.push_back(off.pass(frames, clock_off));
        on_runs.push_back(on.pass(frames, clock_on));
      } else {
        on_runs.push_back(on.pass(frames, clock_on));
        off_runs.push_back(off.pass(frames, clock_off));
      }
    }
    exported = on.exported;
    overflow = on.hub->worker(0).ring().overflow();
  }
  const double off_mpps = median(off_runs);
  const double on_mpps = median(on_runs);

  // ---- Established flows: the refresh check on every hit ----
  std::vector<double> est_off;
  std::vector<double> est_on;
  {
    Lane off(false);
    Lane on(true);
    uint64_t c_off = 1'000'000'000;
    uint64_t c_on = 1'000'000'000;
    const auto syn = flows(100000, kTcpSyn, 200);
    const auto ack = flows(100000, kTcpAck, 200);
    off.pass(syn, c_off);
    on.pass(syn, c_on);
    for (int r = 0; r < runs; ++r) {
      for (int k = 0; k < (quick ? 5 : 20); ++k) {
        est_off.push_back(off.pass(ack, c_off));
        est_on.push_back(on.pass(ack, c_on));
      }
    }
  }

  // ---- Control side: poll and install rates ----
  const uint32_t records = quick ? 200000 : 1000000;
  double poll_rate = 0;
  double install_rate = 0;
  {
    BackendRegistry backends(65536);
    VipRegistry vips(4096);
    auto snapshot = Snapshot::build(make_config(true), backends, vips);
    const cluster::BackendResolver resolve = [&](const IpAddr& a) { return backends.find(a); };
    cluster::SyncHub hub(cluster::SyncSettings{1u << 20, 1u << 20}, 1, ConntrackTimeouts{});
    std::vector<uint8_t> buf(size_t{records} * cluster::kFlowRecordSize);
    // Records as the worker writes them.
    for (uint32_t i = 0; i < records; ++i) {
      cluster::FlowRecord r;
      r.key.family = Family::kIpv4;
      r.key.proto = kProtoTcp;
      r.key.src = ip("198.51." + std::to_string((i >> 16) & 0xff) + "." + std::to_string((i >> 8) & 0xff)).bytes;
      r.key.dst = ip("192.0.2.10").bytes;
      r.key.src_port = static_cast<uint16_t>(1024 + (i & 0xff));
      r.key.dst_port = 80;
      r.backend = ip("10.1.0." + std::to_string(1 + i % 10));
      r.lifetime_s = 900;
      uint8_t* slot = hub.worker(0).ring().claim();
      cluster::encode_flow_record(r, slot);
      hub.worker(0).ring().publish();
      cluster::encode_flow_record(r, buf.data() + size_t{i} * cluster::kFlowRecordSize);
    }
    std::vector<uint8_t> out(65536 * cluster::kFlowRecordSize);
    auto t0 = std::chrono::steady_clock::now();
    size_t polled = 0;
    while (size_t n = hub.poll(*snapshot, resolve, out.data(), 65536, 1'000'000'000)) polled += n;
    poll_rate = static_cast<double>(polled) / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    cluster::SyncHub peer(cluster::SyncSettings{1u << 20, 2}, 1, ConntrackTimeouts{});
    t0 = std::chrono::steady_clock::now();
    const cluster::InstallResult res = peer.install(buf.data(), buf.size(), *snapshot, resolve, 1'000'000'000);
    install_rate = static_cast<double>(res.accepted) / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (res.accepted != records) {
      std::fprintf(stderr, "cluster_bench: %u of %u records accepted\n", res.accepted, records);
      return 1;
    }
  }

  auto list = [](const std::vector<double>& v) {
    std::string s;
    for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]).substr(0, 5);
    return s;
  };
  std::printf("{\n  \"benchmark\": \"cluster\",\n");
  std::printf("  \"new_flows\": {\"flows_per_run\": %u, \"runs\": %d, \"sync_off_mpps_median\": %.3f, "
              "\"sync_on_mpps_median\": %.3f, \"sync_on_slowdown_percent\": %.1f, \"records_exported\": %llu, "
              "\"export_overflow\": %llu, \"sync_off_mpps_runs\": [%s], \"sync_on_mpps_runs\": [%s]},\n",
              new_flows, runs, off_mpps, on_mpps, (1 - on_mpps / off_mpps) * 100,
              static_cast<unsigned long long>(exported), static_cast<unsigned long long>(overflow),
              list(off_runs).c_str(), list(on_runs).c_str());
  std::printf("  \"established\": {\"flows\": 100000, \"sync_off_mpps_median\": %.3f, \"sync_on_mpps_median\": %.3f, "
              "\"sync_on_slowdown_percent\": %.1f},\n",
              median(est_off), median(est_on), (1 - median(est_on) / median(est_off)) * 100);
  std::printf("  \"records_exported_per_second_by_one_worker\": %.0f,\n", on_mpps * 1e6);
  std::printf("  \"poll_records_per_second\": %.0f,\n  \"install_records_per_second\": %.0f,\n", poll_rate, install_rate);
  std::printf("  \"bytes_per_record\": %zu,\n  \"peer_table_bytes_per_entry\": %.1f\n}\n", cluster::kFlowRecordSize,
              static_cast<double>(cluster::PeerTable::bytes_for(1u << 20)) / (1u << 20));
  return 0;
}
