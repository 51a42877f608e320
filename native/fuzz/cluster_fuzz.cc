// libFuzzer target: the cluster's parsers. The first byte picks what the rest is:
//   even: flow records (installFlows): each accepted record must re-encode to the same 64
//         bytes, the peer table must hold no more than its capacity, and every entry
//         installed must be found again with its backend;
//   odd:  the payload of a UDP datagram to the redirect port from a member (a peer's
//         redirect), through a pipeline with sync: whatever it holds, the verdict is one of
//         the three, a transmitted frame lies inside the buffer, and a transmitted frame is
//         never another redirect (one hop at most).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "bytes.h"
#include "checksum.h"
#include "cluster/flow_record.h"
#include "cluster/flow_sync.h"
#include "pipeline.h"
#include "snapshot.h"

using namespace l4mux;

namespace {

#define CLUSTER_FUZZ_CHECK(cond)   \
  do {                             \
    if (!(cond)) __builtin_trap(); \
  } while (0)

IpAddr v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  const uint8_t bytes[4] = {a, b, c, d};
  return IpAddr::v4(bytes);
}

ConfigSpec make_spec() {
  ConfigSpec spec;
  spec.seed = 0x1234;
  spec.source_mac = {2, 0, 0, 0, 0, 1};
  spec.gateway_mac = {2, 0, 0, 0, 0, 0xfe};
  spec.outer_source_v4 = v4(10, 0, 0, 1);
  for (uint8_t proto : {kProtoTcp, kProtoUdp}) {
    VipSpec vip;
    vip.name = proto == kProtoTcp ? "tcp" : "udp";
    vip.key = VipKey{v4(192, 0, 2, 10), proto, 0};  // every port: more records reach the table
    vip.table_size = 251;
    vip.scheduler = proto == kProtoTcp ? Scheduler::kMaglev : Scheduler::kWrr;
    for (uint8_t b = 1; b <= 3; ++b) vip.backends.push_back(BackendSpec{v4(10, 1, 0, b), 1});
    spec.vips.push_back(vip);
  }
  cluster::ClusterSpec c;
  c.seed = 42;
  c.redirect_port = 6666;
  for (uint8_t m = 1; m <= 3; ++m) {
    cluster::MemberSpec ms;
    ms.id = "mux" + std::to_string(m);
    ms.address = v4(10, 0, 0, m);
    c.members.push_back(ms);
  }
  spec.cluster = c;
  return spec;
}

struct World {
  BackendRegistry backends{64};
  VipRegistry vips{16};
  std::unique_ptr<const Snapshot> snapshot;
  WorkerCounters counters{16, 64};
  cluster::SyncHub hub{cluster::SyncSettings{64, 64}, 1, ConntrackTimeouts{}};
  std::unique_ptr<Pipeline> pipeline;
  World() {
    snapshot = Snapshot::build(make_spec(), backends, vips);
    PipelineOptions o;
    o.sync = &hub.worker(0);
    pipeline = std::make_unique<Pipeline>(ConntrackConfig{256, {}}, counters, o);
  }
};

void fuzz_records(World& w, const uint8_t* data, size_t size) {
  for (size_t off = 0; off < size; off += cluster::kFlowRecordSize) {
    cluster::FlowRecord r;
    if (cluster::decode_flow_record(data + off, size - off, &r) != cluster::RecordError::kOk) continue;
    uint8_t again[cluster::kFlowRecordSize];
    cluster::encode_flow_record(r, again);
    CLUSTER_FUZZ_CHECK(std::memcmp(again, data + off, sizeof(again)) == 0);
  }
  const cluster::BackendResolver resolve = [&](const IpAddr& a) { return w.backends.find(a); };
  const uint64_t now = 1'000'000'000;
  const cluster::InstallResult result = w.hub.install(data, size, *w.snapshot, resolve, now);
  CLUSTER_FUZZ_CHECK(result.accepted + result.refused == (size + cluster::kFlowRecordSize - 1) / cluster::kFlowRecordSize);
  CLUSTER_FUZZ_CHECK(w.hub.peers().stats().live <= w.hub.peers().capacity());
  // The last install of a key wins; check the final record of each accepted key is found.
  for (size_t off = 0; off + cluster::kFlowRecordSize <= size; off += cluster::kFlowRecordSize) {
    cluster::FlowRecord r;
    if (cluster::decode_flow_record(data + off, size - off, &r) != cluster::RecordError::kOk) continue;
    if (r.kind == cluster::RecordKind::kEnd || r.lifetime_s == 0) continue;
    cluster::PeerHit hit;
    if (w.hub.peers().lookup(r.key, now, &hit)) {
      CLUSTER_FUZZ_CHECK(hit.backend < w.backends.keys().size());
    }
  }
  std::vector<uint8_t> out(64 * cluster::kFlowRecordSize);
  const cluster::BackendAddress address = [&](uint32_t slot) -> std::optional<IpAddr> {
    if (slot >= w.backends.keys().size()) return std::nullopt;
    return w.backends.keys()[slot];
  };
  w.hub.poll(*w.snapshot, address, out.data(), 64, now);
}

void fuzz_redirect(World& w, const uint8_t* data, size_t size) {
  constexpr uint32_t kHeadroom = 256;
  if (size > 1500) size = 1500;
  const uint32_t frame_len = static_cast<uint32_t>(kEthHeaderLen + kIpv4HeaderLen + kUdpHeaderLen + size);
  std::vector<uint8_t> buffer(kHeadroom + frame_len);
  uint8_t* f = buffer.data() + kHeadroom;
  const uint8_t macs[12] = {2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0xfe};
  std::memcpy(f, macs, 12);
  store_be16(f + 12, kEthTypeIpv4);
  uint8_t* ip = f + kEthHeaderLen;
  ip[0] = kIpv4VersionIhl;
  store_be16(ip + 2, static_cast<uint16_t>(kIpv4HeaderLen + kUdpHeaderLen + size));
  ip[8] = 64;
  ip[9] = kProtoUdp;
  const uint8_t src[4] = {10, 0, 0, 2};
  const uint8_t dst[4] = {10, 0, 0, 1};
  std::memcpy(ip + 12, src, 4);
  std::memcpy(ip + 16, dst, 4);
  store_be16(ip + 10, ipv4_header_checksum(ip, kIpv4HeaderLen));
  uint8_t* udp = ip + kIpv4HeaderLen;
  store_be16(udp, 50000);
  store_be16(udp + 2, 6666);
  store_be16(udp + 4, static_cast<uint16_t>(kUdpHeaderLen + size));
  std::memcpy(udp + kUdpHeaderLen, data, size);

  Packet pkt;
  pkt.data = f;
  pkt.len = frame_len;
  pkt.headroom = kHeadroom;
  w.pipeline->process(std::span<Packet>(&pkt, 1), *w.snapshot, 2'000'000'000);
  CLUSTER_FUZZ_CHECK(pkt.verdict == Verdict::kTx || pkt.verdict == Verdict::kPass || pkt.verdict == Verdict::kDrop);
  if (pkt.verdict == Verdict::kTx) {
    CLUSTER_FUZZ_CHECK(pkt.data >= buffer.data() && pkt.data + pkt.len <= buffer.data() + buffer.size());
    CLUSTER_FUZZ_CHECK(pkt.data - pkt.headroom == buffer.data());
    // Never sent on to another mux: a transmitted frame is no UDP datagram to the redirect port.
    if (pkt.len >= kEthHeaderLen + kIpv4HeaderLen + kUdpHeaderLen && load_be16(pkt.data + 12) == kEthTypeIpv4 &&
        pkt.data[kEthHeaderLen + 9] == kProtoUdp) {
      CLUSTER_FUZZ_CHECK(load_be16(pkt.data + kEthHeaderLen + kIpv4HeaderLen + 2) != 6666);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static World* world = new World();  // one world: the tables fill and evict across inputs
  if ((data[0] & 1) == 0) {
    fuzz_records(*world, data + 1, size - 1);
  } else {
    fuzz_redirect(*world, data + 1, size - 1);
  }
  return 0;
}
