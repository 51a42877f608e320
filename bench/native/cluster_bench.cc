// Cluster-sync benchmark: what connection-table sync costs the fast path, and how fast the
// control side moves records. One core; prints one JSON object on stdout.
//
//   new_flows: 1M SYNs of distinct flows per run through two pipelines, sync off (a lone mux:
//     no cluster view, no export) and sync on (cluster of 3, every new entry exported to the
//     worker's ring), batch by batch in the same process (each batch of 64 through one lane
//     and then the other, the order alternating, so both meet the same moments of a shared
//     host; pairs in which the thread lost the core are left out, counted); the ring is
//     drained between batches outside the timed section (the control thread does that on
//     another core). Reported: each run's rates, their medians, and the median of the
//     per-batch time ratios.
//   established: 100k established flows (ACKs), sync off and on (the refresh check), the same way.
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

  // Nanoseconds of one Pipeline::process of frames[start, start + 64).
  double batch(const std::vector<Bytes>& frames, size_t start, uint64_t& clock_ns) {
    for (uint32_t i = 0; i < kMaxBatch; ++i) {
      const Bytes& f = frames[start + i];
      uint8_t* slot = storage.data() + size_t{i} * kSlot;
      std::memcpy(slot + kHeadroom, f.data(), f.size());
      packets[i] = Packet{};
      packets[i].data = slot + kHeadroom;
      packets[i].len = static_cast<uint32_t>(f.size());
      packets[i].headroom = kHeadroom;
    }
    const auto t0 = std::chrono::steady_clock::now();
    pipeline->process(packets, *snapshot, clock_ns);
    const auto t1 = std::chrono::steady_clock::now();
    clock_ns += 1000;
    if (hub) {
      exported += hub->worker(0).ring().produced() - hub->worker(0).ring().consumed();
      drain();
    }
    return std::chrono::duration<double, std::nano>(t1 - t0).count();
  }

  std::vector<uint8_t> storage = std::vector<uint8_t>(size_t{kSlot} * kMaxBatch);
  std::vector<Packet> packets = std::vector<Packet>(kMaxBatch);

  void drain() {
    // Only the ring's consumer side: what the control thread's poll does first.
    hub->worker(0).ring().drain(drained.data(), 65536);
  }
};

// One pass over `frames` through both lanes, batch by batch: batch k goes through one lane
// and then the other (the order alternating), so that both see the same moments of a shared
// host. A batch during which the thread lost the core takes milliseconds instead of
// microseconds: pairs in which either batch took over 4x its lane's median are left out of
// both rates (counted). Returns {off Mpps, on Mpps} and appends each pair's t_on / t_off.
struct PassResult {
  double off_mpps;
  double on_mpps;
  uint64_t pairs;
  uint64_t excluded;
};

PassResult paired_pass(Lane& off, Lane& on, const std::vector<Bytes>& frames, uint64_t& clock_off, uint64_t& clock_on,
                       std::vector<double>& ratios) {
  std::vector<double> t_off;
  std::vector<double> t_on;
  for (size_t start = 0, k = 0; start + kMaxBatch <= frames.size(); start += kMaxBatch, ++k) {
    if (k % 2 == 0) {
      t_off.push_back(off.batch(frames, start, clock_off));
      t_on.push_back(on.batch(frames, start, clock_on));
    } else {
      t_on.push_back(on.batch(frames, start, clock_on));
      t_off.push_back(off.batch(frames, start, clock_off));
    }
  }
  const double cut_off = 4 * median(t_off);
  const double cut_on = 4 * median(t_on);
  double sum_off = 0;
  double sum_on = 0;
  PassResult r{0, 0, t_off.size(), 0};
  for (size_t k = 0; k < t_off.size(); ++k) {
    if (t_off[k] > cut_off || t_on[k] > cut_on) {
      ++r.excluded;
      continue;
    }
    sum_off += t_off[k];
    sum_on += t_on[k];
    ratios.push_back(t_on[k] / t_off[k]);
  }
  const double packets = static_cast<double>((r.pairs - r.excluded) * kMaxBatch);
  r.off_mpps = packets / sum_off * 1e3;
  r.on_mpps = packets / sum_on * 1e3;
  return r;
}

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

  // ---- New flows: sync off and on, batch by batch ----
  std::vector<double> off_runs;
  std::vector<double> on_runs;
  std::vector<double> new_ratios;
  uint64_t new_pairs = 0;
  uint64_t new_excluded = 0;
  uint64_t exported = 0;
  uint64_t overflow = 0;
  {
    Lane off(false);
    Lane on(true);
    uint64_t clock_off = 1'000'000'000;
    uint64_t clock_on = 1'000'000'000;
    for (int r = 0; r < runs; ++r) {
      const auto frames = flows(new_flows, kTcpSyn, static_cast<uint8_t>(r + 1));  // new clients every run
      const PassResult p = paired_pass(off, on, frames, clock_off, clock_on, new_ratios);
      off_runs.push_back(p.off_mpps);
      on_runs.push_back(p.on_mpps);
      new_pairs += p.pairs;
      new_excluded += p.excluded;
    }
    exported = on.exported;
    overflow = on.hub->worker(0).ring().overflow();
  }
  const double off_mpps = median(off_runs);
  const double on_mpps = median(on_runs);

  // ---- Established flows: the refresh check on every hit ----
  std::vector<double> est_off;
  std::vector<double> est_on;
  std::vector<double> est_ratios;
  {
    Lane off(false);
    Lane on(true);
    uint64_t c_off = 1'000'000'000;
    uint64_t c_on = 1'000'000'000;
    const auto syn = flows(100000, kTcpSyn, 200);
    const auto ack = flows(100000, kTcpAck, 200);
    std::vector<double> ignored;
    paired_pass(off, on, syn, c_off, c_on, ignored);
    for (int r = 0; r < runs; ++r) {
      for (int k = 0; k < (quick ? 5 : 20); ++k) {
        const PassResult p = paired_pass(off, on, ack, c_off, c_on, est_ratios);
        est_off.push_back(p.off_mpps);
        est_on.push_back(p.on_mpps);
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
    const cluster::BackendAddress address = [&](uint32_t slot) -> std::optional<IpAddr> {
      if (slot >= backends.keys().size()) return std::nullopt;
      return backends.keys()[slot];
    };
    cluster::SyncHub hub(cluster::SyncSettings{1u << 20, 1u << 20}, 1, ConntrackTimeouts{});
    std::vector<uint8_t> buf(size_t{records} * cluster::kFlowRecordSize);
    // The ring holds entries as the worker exports them; `buf` the records a peer would send.
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
      FlowEntry e;
      e.key = r.key;
      e.backend = *backends.find(r.backend);
      e.expires_ns = 901'000'000'000ull;
      hub.worker(0).started(e, 1'000'000'000, 0);
      cluster::encode_flow_record(r, buf.data() + size_t{i} * cluster::kFlowRecordSize);
    }
    std::vector<uint8_t> out(65536 * cluster::kFlowRecordSize);
    auto t0 = std::chrono::steady_clock::now();
    size_t polled = 0;
    while (size_t n = hub.poll(*snapshot, address, out.data(), 65536, 1'000'000'000)) polled += n;
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
  // Slowdown from the medians of the runs' rates, and from the median of the per-batch time
  // ratios (the same batch through both lanes, moments apart).
  std::printf("  \"new_flows\": {\"flows_per_run\": %u, \"runs\": %d, \"sync_off_mpps_median\": %.3f, "
              "\"sync_on_mpps_median\": %.3f, \"sync_on_slowdown_percent\": %.1f, "
              "\"batch_pair_slowdown_percent_median\": %.1f, \"batch_pairs\": %llu, \"batch_pairs_excluded\": %llu, "
              "\"records_exported\": %llu, \"export_overflow\": %llu, \"sync_off_mpps_runs\": [%s], "
              "\"sync_on_mpps_runs\": [%s]},\n",
              new_flows, runs, off_mpps, on_mpps, (1 - on_mpps / off_mpps) * 100, (1 - 1 / median(new_ratios)) * 100,
              static_cast<unsigned long long>(new_pairs), static_cast<unsigned long long>(new_excluded),
              static_cast<unsigned long long>(exported), static_cast<unsigned long long>(overflow),
              list(off_runs).c_str(), list(on_runs).c_str());
  std::printf("  \"established\": {\"flows\": 100000, \"sync_off_mpps_median\": %.3f, \"sync_on_mpps_median\": %.3f, "
              "\"sync_on_slowdown_percent\": %.1f, \"batch_pair_slowdown_percent_median\": %.1f},\n",
              median(est_off), median(est_on), (1 - median(est_on) / median(est_off)) * 100,
              (1 - 1 / median(est_ratios)) * 100);
  std::printf("  \"records_exported_per_second_by_one_worker\": %.0f,\n", on_mpps * 1e6);
  std::printf("  \"poll_records_per_second\": %.0f,\n  \"install_records_per_second\": %.0f,\n", poll_rate, install_rate);
  std::printf("  \"bytes_per_record\": %zu,\n  \"peer_table_bytes_per_entry\": %.1f\n}\n", cluster::kFlowRecordSize,
              static_cast<double>(cluster::PeerTable::bytes_for(1u << 20)) / (1u << 20));
  return 0;
}
