// AF_PACKET I/O and the multi-worker Engine on a real veth pair.
//
// Needs root. Every test runs on a thread that first moves into a brand-new, unnamed network
// namespace (unshare(CLONE_NEWNET) affects only the calling thread; `ip` commands are run by
// children forked from that thread, so they inherit it). The namespace and its veth pair exist
// only while that thread and the sockets opened in it do: the kernel removes them when the test
// ends, whether it passes, fails or crashes. The root namespace is never touched (checked
// before any command runs).
//
// Traffic is small and bounded: at most a few thousand frames per test, every wait has a
// deadline.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "frame_builder.h"
#include "netns.h"
#include "io/af_packet.h"
#include "engine/engine.h"

namespace l4mux {
namespace {

using testing::Bytes;
using testing::ip;
using testing::L4Spec;
using testing::kNoNetnsPrefix;
using testing::run_in_new_netns;
using testing::sh;
using testing::write_proc;
using Clock = std::chrono::steady_clock;

constexpr char kMuxIf[] = "l4a";   // the engine's end
constexpr char kPeerIf[] = "l4b";  // the test's end: injects, captures
constexpr auto kWait = std::chrono::seconds(10);  // upper bound of every wait

// ---- Namespace ----

struct Link {
  int ifindex = 0;
  MacAddr mac{};
};

Link link_info(const char* name) {
  Link l;
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ifreq ifr{};
  std::snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
  if (::ioctl(fd, SIOCGIFINDEX, &ifr) == 0) l.ifindex = ifr.ifr_ifindex;
  if (::ioctl(fd, SIOCGIFHWADDR, &ifr) == 0) std::memcpy(l.mac.data(), ifr.ifr_hwaddr.sa_data, 6);
  ::close(fd);
  return l;
}

// Creates the veth pair in the current (test) namespace, IPv6 off so that the kernel stays
// quiet on it. False when `ip` failed.
bool make_veth_pair(Link* mux, Link* peer) {
  write_proc("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1");
  write_proc("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
  if (!sh(std::string("ip link add ") + kMuxIf + " type veth peer name " + kPeerIf) ||
      !sh(std::string("ip link set ") + kMuxIf + " up") || !sh(std::string("ip link set ") + kPeerIf + " up")) {
    return false;
  }
  *mux = link_info(kMuxIf);
  *peer = link_info(kPeerIf);
  return mux->ifindex > 0 && peer->ifindex > 0;
}

class RootNetnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root: network namespaces, veth pairs, AF_PACKET";
    if (::system(nullptr) == 0 || !sh("ip -V")) GTEST_SKIP() << "needs the `ip` command (iproute2)";
  }
  // Runs the test body in a fresh namespace with the veth pair up.
  void in_lab(const std::function<void(const Link& mux, const Link& peer)>& body) {
    const std::string error = run_in_new_netns([&] {
      Link mux, peer;
      ASSERT_TRUE(make_veth_pair(&mux, &peer)) << "could not create the veth pair";
      body(mux, peer);
    });
    if (error.starts_with(kNoNetnsPrefix)) GTEST_SKIP() << "cannot create a network namespace (" << error << ")";
    ASSERT_EQ(error, "");
  }
};

// ---- Frames in, frames out ----

class Injector {
 public:
  explicit Injector(const Link& link) : fd_(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0)) {
    to_.sll_family = AF_PACKET;
    to_.sll_ifindex = link.ifindex;
    to_.sll_halen = ETH_ALEN;
  }
  ~Injector() { ::close(fd_); }
  bool ok() const { return fd_ >= 0; }
  bool send(const Bytes& frame) {
    for (int attempt = 0; attempt < 100; ++attempt) {
      if (::sendto(fd_, frame.data(), frame.size(), 0, reinterpret_cast<const sockaddr*>(&to_), sizeof(to_)) ==
          static_cast<ssize_t>(frame.size())) {
        return true;
      }
      if (errno != ENOBUFS && errno != EAGAIN) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return false;
  }

 private:
  int fd_;
  sockaddr_ll to_{};
};

// Everything the peer end receives (not what it sends), on its own thread.
class Capture {
 public:
  explicit Capture(const Link& link) : fd_(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL))) {
    const int one = 1;
    const int rcvbuf = 16 << 20;
    ::setsockopt(fd_, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one));
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf));
    sockaddr_ll addr{};
    addr.sll_family = AF_PACKET;
    addr.sll_protocol = htons(ETH_P_ALL);
    addr.sll_ifindex = link.ifindex;
    bound_ = ::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0;
    thread_ = std::thread([this] { loop(); });
  }
  ~Capture() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  bool ok() const { return fd_ >= 0 && bound_; }

  std::vector<Bytes> frames() const {
    std::lock_guard lock(mutex_);
    return frames_;
  }
  void clear() {
    std::lock_guard lock(mutex_);
    frames_.clear();
  }
  // Waits until `pred(frames)` holds (true) or the deadline passes (false).
  bool wait_until(const std::function<bool(const std::vector<Bytes>&)>& pred,
                  Clock::duration timeout = kWait) const {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      {
        std::lock_guard lock(mutex_);
        if (pred(frames_)) return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::lock_guard lock(mutex_);
    return pred(frames_);
  }

 private:
  void loop() {
    std::vector<uint8_t> buf(65536);
    while (!stop_) {
      pollfd pfd{fd_, POLLIN, 0};
      if (::poll(&pfd, 1, 20) <= 0) continue;
      for (;;) {
        sockaddr_ll from{};
        socklen_t len = sizeof(from);
        const ssize_t n = ::recvfrom(fd_, buf.data(), buf.size(), MSG_DONTWAIT,
                                     reinterpret_cast<sockaddr*>(&from), &len);
        if (n <= 0) break;
        if (from.sll_pkttype == PACKET_OUTGOING) continue;
        std::lock_guard lock(mutex_);
        if (frames_.size() < 100000) frames_.emplace_back(buf.begin(), buf.begin() + n);
      }
    }
  }

  int fd_;
  bool bound_ = false;
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::vector<Bytes> frames_;
  std::thread thread_;
};

Bytes with_macs(Bytes frame, const MacAddr& dst, const MacAddr& src) {
  std::copy(dst.begin(), dst.end(), frame.begin());
  std::copy(src.begin(), src.end(), frame.begin() + 6);
  return frame;
}

// An IPv4-in-IPv4 frame as the mux sends it: Ethernet, outer IPv4 (protocol 4), inner IPv4.
struct Ipip {
  bool ok = false;
  MacAddr eth_dst{}, eth_src{};
  std::string outer_src, outer_dst;
  Bytes inner;  // the inner IP packet
  std::string flow;  // "src:sport>dst:dport" of the inner TCP/UDP packet
  uint8_t tcp_flags = 0;
};

std::string v4(const uint8_t* p) {
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, p, buf, sizeof(buf));
  return buf;
}

Ipip parse_ipip(const Bytes& f) {
  Ipip r;
  if (f.size() < 14 + 20 + 20 + 4 || load_be16(&f[12]) != kEthTypeIpv4) return r;
  const uint8_t* outer = &f[14];
  const size_t outer_len = (outer[0] & 0x0f) * 4u;
  if ((outer[0] >> 4) != 4 || outer[9] != kProtoIpip || f.size() < 14 + outer_len + 20) return r;
  const uint8_t* inner = outer + outer_len;
  const size_t inner_total = load_be16(inner + 2);
  const size_t inner_hl = (inner[0] & 0x0f) * 4u;
  if (14 + outer_len + inner_total > f.size() || inner_hl + 4 > inner_total) return r;
  std::copy(f.begin(), f.begin() + 6, r.eth_dst.begin());
  std::copy(f.begin() + 6, f.begin() + 12, r.eth_src.begin());
  r.outer_src = v4(outer + 12);
  r.outer_dst = v4(outer + 16);
  r.inner.assign(inner, inner + inner_total);
  const uint8_t* l4 = inner + inner_hl;
  r.flow = v4(inner + 12) + ":" + std::to_string(load_be16(l4)) + ">" + v4(inner + 16) + ":" +
           std::to_string(load_be16(l4 + 2));
  if (inner[9] == kProtoTcp && inner_total >= inner_hl + 14) r.tcp_flags = l4[13];
  r.ok = true;
  return r;
}

std::vector<Ipip> ipip_frames(const std::vector<Bytes>& frames) {
  std::vector<Ipip> out;
  for (const Bytes& f : frames) {
    Ipip p = parse_ipip(f);
    if (p.ok) out.push_back(std::move(p));
  }
  return out;
}

size_t ipip_count(const std::vector<Bytes>& frames) {
  size_t n = 0;
  for (const Bytes& f : frames) n += parse_ipip(f).ok ? 1 : 0;
  return n;
}

struct FlowSpec {
  std::string src;
  uint16_t sport;
  std::string dst;
  uint16_t dport;
  std::string key() const { return src + ":" + std::to_string(sport) + ">" + dst + ":" + std::to_string(dport); }
};

Bytes tcp_frame(const FlowSpec& f, uint8_t flags, const Link& to, const Link& from) {
  L4Spec l4;
  l4.src_port = f.sport;
  l4.dst_port = f.dport;
  l4.tcp_flags = flags;
  return with_macs(testing::flow_frame(f.src, f.dst, l4), to.mac, from.mac);
}

// ---- Configuration ----

VipSpec make_vip(const std::string& name, const std::string& addr, uint16_t port, const std::vector<std::string>& pool) {
  VipSpec v;
  v.name = name;
  v.key = VipKey{ip(addr), kProtoTcp, port};
  v.encap = Encap::kIpip;
  v.table_size = 251;
  for (const auto& b : pool) v.backends.push_back(BackendSpec{ip(b), 1});
  return v;
}

ConfigSpec lab_config(const Link& mux, const Link& peer) {
  ConfigSpec spec;
  spec.seed = 0x5eed;
  spec.source_mac = mux.mac;
  spec.gateway_mac = peer.mac;
  spec.outer_source_v4 = ip("10.0.0.1");
  return spec;
}

const std::vector<std::string> kPoolA = {"10.1.0.1", "10.1.0.2", "10.1.0.3", "10.1.0.4"};
const std::vector<std::string> kPoolB = {"10.2.0.1", "10.2.0.2", "10.2.0.3"};

EngineOptions lab_engine_options(uint32_t workers) {
  EngineOptions o;
  o.interface = kMuxIf;
  o.workers = workers;
  o.conntrack.capacity = 16384;
  o.max_vips = 64;
  o.max_backends = 1024;
  o.af_packet.block_size = 1u << 16;
  o.af_packet.block_count = 32;  // 2 MiB per worker: holds every test's traffic
  return o;
}

AfPacketOptions small_ring() {
  AfPacketOptions o;
  o.block_size = 1u << 16;
  o.block_count = 16;
  return o;
}

// Drains an AfPacketIo until `want` frames were seen or the deadline passed; calls
// `each` on every frame before giving the batch back.
uint32_t drain(AfPacketIo& io, uint32_t want, const std::function<void(const Packet&)>& each,
               Clock::duration timeout = std::chrono::seconds(3)) {
  std::array<Packet, kMaxBatch> batch{};
  uint32_t seen = 0;
  const auto deadline = Clock::now() + timeout;
  while (seen < want && Clock::now() < deadline) {
    const uint32_t n = io.receive(std::span<Packet>(batch.data(), batch.size()), 20);
    for (uint32_t i = 0; i < n; ++i) {
      each(batch[i]);
      batch[i].verdict = Verdict::kDrop;
    }
    io.complete(std::span<Packet>(batch.data(), batch.size()), n);
    seen += n;
  }
  return seen;
}

// ---- AfPacketIo ----

using AfPacketIoTest = RootNetnsTest;

TEST_F(AfPacketIoTest, HandsOutFramesInPlaceWithHeadroomTagsRestoredAndFiltersPacketTypes) {
  in_lab([](const Link& mux, const Link& peer) {
    AfPacketOptions o = small_ring();
    o.max_frame_len = 600;
    AfPacketIo io(kMuxIf, 0, o, 0, AfPacketIo::FanoutJoin::kCreateUnique);
    EXPECT_NE(io.describe().find("af_packet l4a fanout"), std::string::npos) << io.describe();
    Injector inj(peer);
    ASSERT_TRUE(inj.ok());

    const FlowSpec flow{"198.51.100.7", 40000, "192.0.2.10", 80};
    const Bytes plain = tcp_frame(flow, 0x02, mux, peer);
    L4Spec l4;
    l4.src_port = 40001;
    const Bytes tagged = with_macs(testing::flow_frame(flow.src, flow.dst, l4, /*vlan=*/42), mux.mac, peer.mac);
    Bytes broadcast = plain;
    std::fill(broadcast.begin(), broadcast.begin() + 6, 0xff);
    Bytes big = plain;  // above max_frame_len: counted, never handed out
    big.resize(800, 0);

    for (const Bytes* f : std::vector<const Bytes*>{&plain, &broadcast, &big, &tagged}) ASSERT_TRUE(inj.send(*f));

    std::vector<Bytes> got;
    std::vector<uint32_t> headroom;
    std::vector<uint32_t> flags;
    drain(io, 2, [&](const Packet& p) {
      got.emplace_back(p.data, p.data + p.len);
      headroom.push_back(p.headroom);
      flags.push_back(p.flags);
    });
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0], plain);
    EXPECT_EQ(got[1], tagged) << "the 802.1Q tag the kernel moved out of the frame is put back";
    EXPECT_GE(headroom[0], 128u);
    EXPECT_GE(headroom[1], 124u);
    EXPECT_EQ(flags[0], 0u);
    const IoStats s = io.stats();
    EXPECT_EQ(s.rx_packets, 2u);
    EXPECT_EQ(s.rx_ignored, 1u) << "broadcast left to the kernel";
    EXPECT_EQ(s.rx_oversized, 1u);
    EXPECT_EQ(s.rx_kernel_drops, 0u);
  });
}

TEST_F(AfPacketIoTest, RingLevelsCountTheBlocksHandedOverUntilTheyAreGivenBack) {
  in_lab([](const Link& mux, const Link& peer) {
    AfPacketIo io(kMuxIf, 0, small_ring(), 0, AfPacketIo::FanoutJoin::kCreateUnique);
    Injector inj(peer);
    ASSERT_TRUE(inj.ok());
    IoRingLevels r = io.ring_levels();
    EXPECT_EQ(r.rx_size, 16u);
    EXPECT_EQ(r.rx_used, 0u) << "nothing received yet";
    EXPECT_EQ(r.tx_size + r.fill_size + r.completion_size, 0u) << "AF_PACKET has only the receive ring";

    constexpr uint32_t kFrames = 10;
    for (uint32_t i = 0; i < kFrames; ++i) {
      ASSERT_TRUE(inj.send(tcp_frame({"198.51.100.7", static_cast<uint16_t>(40000 + i), "192.0.2.10", 80}, 0x02, mux, peer)));
    }
    // The kernel hands a partly filled block over after the block timeout (2 ms).
    const auto deadline = Clock::now() + std::chrono::seconds(2);
    while (io.ring_levels().rx_used == 0 && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    r = io.ring_levels();
    EXPECT_GE(r.rx_used, 1u) << "the frames wait in a block the kernel handed over";
    EXPECT_LE(r.rx_used, 2u);

    EXPECT_EQ(drain(io, kFrames, [](const Packet&) {}), kFrames);
    EXPECT_EQ(io.ring_levels().rx_used, 0u) << "complete() gave every block back";
  });
}

TEST_F(AfPacketIoTest, TransmitsTxVerdictsInOneBatchAndNeverSeesItsOwnFrames) {
  in_lab([](const Link& mux, const Link& peer) {
    AfPacketIo io(kMuxIf, 0, small_ring(), 0, AfPacketIo::FanoutJoin::kCreateUnique);
    Injector inj(peer);
    Capture cap(peer);
    ASSERT_TRUE(inj.ok() && cap.ok());
    constexpr uint32_t kFrames = 40;
    for (uint32_t i = 0; i < kFrames; ++i) {
      ASSERT_TRUE(inj.send(tcp_frame({"198.51.100.9", static_cast<uint16_t>(1000 + i), "192.0.2.10", 80}, 0x02, mux, peer)));
    }
    // Echo every even frame back out with swapped MACs, drop the odd ones.
    std::array<Packet, kMaxBatch> batch{};
    uint32_t seen = 0;
    const auto deadline = Clock::now() + std::chrono::seconds(3);
    while (seen < kFrames && Clock::now() < deadline) {
      const uint32_t n = io.receive(std::span<Packet>(batch.data(), batch.size()), 20);
      for (uint32_t i = 0; i < n; ++i) {
        Packet& p = batch[i];
        const uint16_t sport = load_be16(p.data + 14 + 20);
        p.verdict = sport % 2 == 0 ? Verdict::kTx : Verdict::kDrop;
        std::copy(peer.mac.begin(), peer.mac.end(), p.data);
        std::copy(mux.mac.begin(), mux.mac.end(), p.data + 6);
      }
      io.complete(std::span<Packet>(batch.data(), batch.size()), n);
      seen += n;
    }
    ASSERT_EQ(seen, kFrames);
    ASSERT_TRUE(cap.wait_until([](const std::vector<Bytes>& f) { return f.size() >= kFrames / 2; }));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_EQ(cap.frames().size(), kFrames / 2);
    // Our transmits must not come back into our own ring.
    EXPECT_EQ(drain(io, 1, [](const Packet&) {}, std::chrono::milliseconds(100)), 0u);
    const IoStats s = io.stats();
    EXPECT_EQ(s.tx_packets, kFrames / 2);
    EXPECT_EQ(s.tx_errors, 0u);
    EXPECT_EQ(s.tx_ring_full, 0u);
    EXPECT_EQ(s.rx_packets, kFrames);
  });
}

// Sends `datagrams` UDP datagrams to 192.0.2.10, each as two IPv4 fragments of 1200 bytes,
// from 50 different sources; the IP id is the datagram number.
void send_fragmented(Injector& inj, const Link& mux, const Link& peer, int datagrams) {
  for (int d = 0; d < datagrams; ++d) {
    const IpAddr src = ip("198.51.100." + std::to_string(1 + d % 50));
    const IpAddr dst = ip("192.0.2.10");
    Bytes payload(2400, 'p');
    store_be16(&payload[0], static_cast<uint16_t>(20000 + d));
    store_be16(&payload[2], 53);
    store_be16(&payload[4], 2400);
    for (int part = 0; part < 2; ++part) {
      testing::IpSpec spec{src, dst, kProtoUdp, false, part == 0, static_cast<uint16_t>(part * 1200)};
      Bytes pkt = testing::ip_packet(spec, Bytes(payload.begin() + part * 1200, payload.begin() + (part + 1) * 1200));
      store_be16(&pkt[4], static_cast<uint16_t>(d));
      store_be16(&pkt[10], 0);
      store_be16(&pkt[10], ipv4_header_checksum(pkt.data(), 20));
      ASSERT_TRUE(inj.send(with_macs(testing::ethernet(pkt), mux.mac, peer.mac)));
    }
  }
}

TEST_F(AfPacketIoTest, FanoutKeepsTheFragmentsOfADatagramOnOneWorkerWithoutDefrag) {
  in_lab([](const Link& mux, const Link& peer) {
    AfPacketIo w0(kMuxIf, 0, small_ring(), 0, AfPacketIo::FanoutJoin::kCreateUnique);
    AfPacketIo w1(kMuxIf, 1, small_ring(), w0.fanout_group(), AfPacketIo::FanoutJoin::kJoin);
    EXPECT_EQ(w0.fanout_group(), w1.fanout_group());
    Injector inj(peer);
    constexpr int kDatagrams = 100;
    send_fragmented(inj, mux, peer, kDatagrams);
    std::map<uint16_t, std::set<int>> workers_of;  // IP id -> workers that saw a fragment
    uint32_t frames = 0;
    AfPacketIo* ios[] = {&w0, &w1};
    for (int w = 0; w < 2; ++w) {
      frames += drain(*ios[w], 2 * kDatagrams, [&](const Packet& p) {
        EXPECT_LE(p.len, 1514u);
        workers_of[load_be16(p.data + 14 + 4)].insert(w);
      }, std::chrono::milliseconds(300));
    }
    EXPECT_EQ(frames, 2u * kDatagrams);
    EXPECT_EQ(workers_of.size(), static_cast<size_t>(kDatagrams));
    for (const auto& [id, ws] : workers_of) EXPECT_EQ(ws.size(), 1u) << "datagram " << id << " split";
    EXPECT_GT(w0.stats().rx_packets, 0u) << "the hash spreads sources over both members";
    EXPECT_GT(w1.stats().rx_packets, 0u);
  });
}

TEST_F(AfPacketIoTest, DefragFlagDeliversReassembledDatagramsWhichAreCountedOversized) {
  in_lab([](const Link& mux, const Link& peer) {
    AfPacketOptions o = small_ring();
    o.fanout_defrag = true;  // max_frame_len: MTU 1500 + 22
    AfPacketIo w0(kMuxIf, 0, o, 0, AfPacketIo::FanoutJoin::kCreateUnique);
    AfPacketIo w1(kMuxIf, 1, o, w0.fanout_group(), AfPacketIo::FanoutJoin::kJoin);
    Injector inj(peer);
    constexpr int kDatagrams = 20;
    send_fragmented(inj, mux, peer, kDatagrams);
    drain(w0, 1, [](const Packet&) {}, std::chrono::milliseconds(200));
    drain(w1, 1, [](const Packet&) {}, std::chrono::milliseconds(200));
    const IoStats s0 = w0.stats(), s1 = w1.stats();
    EXPECT_EQ(s0.rx_packets + s1.rx_packets, 0u);
    EXPECT_EQ(s0.rx_oversized + s1.rx_oversized, static_cast<uint64_t>(kDatagrams));
  });
}

TEST_F(AfPacketIoTest, RefusesBadOptionsAndMissingInterfaces) {
  in_lab([](const Link&, const Link&) {
    AfPacketOptions o = small_ring();
    o.headroom = 64;
    EXPECT_THROW(AfPacketIo(kMuxIf, 0, o, 0, AfPacketIo::FanoutJoin::kCreateUnique), std::invalid_argument);
    o = small_ring();
    o.block_size = 5000;
    EXPECT_THROW(AfPacketIo(kMuxIf, 0, o, 0, AfPacketIo::FanoutJoin::kCreateUnique), std::invalid_argument);
    EXPECT_THROW(AfPacketIo("nosuchif0", 0, small_ring(), 0, AfPacketIo::FanoutJoin::kCreateUnique), std::system_error);
    auto factory = make_af_packet_factory(kMuxIf, small_ring());
    EXPECT_THROW(factory(1), std::logic_error) << "worker 0 creates the automatic group";
  });
}

// ---- Engine ----

using AfPacketEngineTest = RootNetnsTest;

TEST_F(AfPacketEngineTest, TwoWorkersForwardEveryFlowOnceAndKeepEachFlowOnOneWorker) {
  in_lab([](const Link& mux, const Link& peer) {
    Engine engine(lab_engine_options(2));
    ConfigSpec spec = lab_config(mux, peer);
    spec.vips.push_back(make_vip("web", "192.0.2.10", 80, kPoolA));
    engine.set_config(spec);
    Capture cap(peer);
    Injector inj(peer);
    ASSERT_TRUE(cap.ok() && inj.ok());
    engine.start();
    ASSERT_TRUE(engine.running());

    constexpr uint32_t kFlows = 601;  // odd, and the rounds below in different orders: no
                                      // per-packet spreading could keep flows together by luck
    std::vector<FlowSpec> flows;
    for (uint32_t i = 0; i < kFlows; ++i) {
      flows.push_back({"198.51.100." + std::to_string(1 + i % 8), static_cast<uint16_t>(10000 + i), "192.0.2.10", 80});
    }
    for (const FlowSpec& f : flows) ASSERT_TRUE(inj.send(tcp_frame(f, 0x02, mux, peer)));  // SYN
    ASSERT_TRUE(cap.wait_until([&](const auto& f) { return ipip_count(f) >= kFlows; }))
        << "got " << ipip_count(cap.frames()) << " of " << kFlows;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // anything extra shows now

    const std::set<std::string> pool(kPoolA.begin(), kPoolA.end());
    std::map<std::string, std::string> backend_of;  // flow -> backend
    std::map<std::string, int> per_flow;
    for (const Ipip& p : ipip_frames(cap.frames())) {
      ++per_flow[p.flow];
      backend_of[p.flow] = p.outer_dst;
      EXPECT_EQ(pool.count(p.outer_dst), 1u) << p.outer_dst;
      EXPECT_EQ(p.outer_src, "10.0.0.1");
      EXPECT_EQ(p.eth_dst, peer.mac);
      EXPECT_EQ(p.eth_src, mux.mac);
      EXPECT_EQ(p.tcp_flags, 0x02);
    }
    EXPECT_EQ(per_flow.size(), static_cast<size_t>(kFlows));
    for (const FlowSpec& f : flows) EXPECT_EQ(per_flow[f.key()], 1) << f.key();
    std::set<std::string> used;
    for (const auto& [flow, b] : backend_of) used.insert(b);
    EXPECT_EQ(used.size(), pool.size()) << "601 flows reach every backend of the pool";

    // Two more packets per flow. A packet handled by another worker than the SYN's would find
    // no entry there and be counted as a new flow: new flows and inserts stay at kFlows.
    cap.clear();
    for (const FlowSpec& f : flows) ASSERT_TRUE(inj.send(tcp_frame(f, 0x10, mux, peer)));  // ACK
    for (auto f = flows.rbegin(); f != flows.rend(); ++f) ASSERT_TRUE(inj.send(tcp_frame(*f, 0x10, mux, peer)));
    ASSERT_TRUE(cap.wait_until([&](const auto& f) { return ipip_count(f) >= 2 * kFlows; }));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    size_t followers = 0;
    for (const Ipip& p : ipip_frames(cap.frames())) {
      ++followers;
      EXPECT_EQ(p.outer_dst, backend_of[p.flow]) << p.flow;
    }
    EXPECT_EQ(followers, 2u * kFlows);

    const EngineCounters c = engine.counters();
    const uint64_t total = 3u * kFlows;
    EXPECT_EQ(c.total->rx.get(), total);
    EXPECT_EQ(c.total->tx.get(), total);
    EXPECT_EQ(c.total->dropped.get(), 0u);
    EXPECT_EQ(c.io.rx_packets, total);
    EXPECT_EQ(c.io.tx_packets, total);
    EXPECT_EQ(c.io.rx_kernel_drops, 0u);
    EXPECT_EQ(c.io.rx_oversized, 0u);
    EXPECT_EQ(c.io.tx_errors + c.io.tx_ring_full, 0u);
    ASSERT_EQ(c.workers.size(), 2u);
    uint64_t rx_sum = 0;
    for (const WorkerStatus& w : c.workers) {
      EXPECT_GT(w.rx, 0u) << "fanout spreads flows over both workers";
      EXPECT_EQ(w.rx, w.io.rx_packets);
      EXPECT_EQ(w.rx % 3, 0u) << "each worker sees whole flows (3 packets each)";
      EXPECT_NE(w.io_description.find("af_packet l4a"), std::string::npos);
      rx_sum += w.rx;
    }
    EXPECT_EQ(rx_sum, total);
    EXPECT_EQ(c.conntrack.inserts, kFlows);
    EXPECT_EQ(c.conntrack.live_entries, kFlows);
    EXPECT_GE(c.conntrack_capacity, 16384u);
    ASSERT_EQ(c.vip_keys.size(), 1u);
    EXPECT_EQ(c.vip_names.at(0), "web");
    EXPECT_EQ(c.total->vip(0)->new_flows.get(), kFlows);
    EXPECT_EQ(c.total->vip(0)->packets.get(), total);
    uint64_t backend_packets = 0;
    for (uint32_t s = 0; s < c.backend_keys.size(); ++s) backend_packets += c.total->backend(s)->packets.get();
    EXPECT_EQ(backend_packets, total);
    for (const WorkerStatus& w : c.workers) {
      EXPECT_EQ(w.rings.rx_size, 32u) << "the receive ring's blocks";
      EXPECT_LE(w.rings.rx_used, w.rings.rx_size);
      EXPECT_EQ(w.rings.tx_size, 0u) << "AF_PACKET sends with sendmmsg: no tx ring";
    }
    EXPECT_EQ(c.rings.rx_size, 64u) << "summed over the two workers";

    // Drops per worker: packets to a port the VIP does not serve, from many flows (both
    // workers see some); each worker's drops by reason add up to the engine's.
    constexpr uint32_t kStray = 64;
    for (uint32_t i = 0; i < kStray; ++i) {
      ASSERT_TRUE(inj.send(tcp_frame({"198.51.100.9", static_cast<uint16_t>(20000 + i), "192.0.2.10", 81}, 0x02, mux, peer)));
    }
    const size_t reason = static_cast<size_t>(DropReason::kNoVipForPort);
    EngineCounters d;
    const auto deadline = Clock::now() + std::chrono::seconds(3);
    do {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      d = engine.counters();
    } while (d.total->drops[reason].get() < kStray && Clock::now() < deadline);
    EXPECT_EQ(d.total->drops[reason].get(), kStray);
    uint64_t per_worker = 0;
    size_t workers_dropping = 0;
    for (const WorkerStatus& w : d.workers) {
      per_worker += w.drops[reason];
      EXPECT_EQ(w.dropped, w.drops[reason]) << "the only drops are the stray packets";
      if (w.drops[reason] > 0) ++workers_dropping;
    }
    EXPECT_EQ(per_worker, kStray);
    EXPECT_EQ(workers_dropping, 2u) << "fanout spreads the 64 flows over both workers";

    engine.stop();
    EXPECT_FALSE(engine.running());
    const EngineCounters after = engine.counters();
    EXPECT_EQ(after.io.rx_packets, total + kStray) << "statistics survive stop()";
    EXPECT_EQ(after.io.tx_packets, total);
  });
}

TEST_F(AfPacketEngineTest, ConfigSwapsUnderTrafficKeepServingAndTheNewVipIsServed) {
  in_lab([](const Link& mux, const Link& peer) {
    Engine engine(lab_engine_options(2));
    ConfigSpec a = lab_config(mux, peer);
    a.vips.push_back(make_vip("web", "192.0.2.10", 80, kPoolA));
    ConfigSpec a_small = a;  // the same VIP with a smaller pool
    a_small.vips[0].backends.pop_back();
    ConfigSpec ab = a;
    ab.vips.push_back(make_vip("tls", "192.0.2.20", 443, kPoolB));
    engine.set_config(a);

    ConfigSpec bad = ab;
    bad.vips[1].table_size = 250;  // not prime: refused, nothing applied
    EXPECT_THROW(engine.set_config(bad), std::invalid_argument);

    Capture cap(peer);
    Injector inj(peer);
    ASSERT_TRUE(cap.ok() && inj.ok());
    engine.start();

    constexpr uint32_t kFlows = 1500;
    std::atomic<bool> sending{true};
    std::atomic<bool> send_failed{false};
    std::thread sender([&] {
      for (uint32_t i = 0; i < kFlows; ++i) {
        const FlowSpec f{"203.0.113." + std::to_string(1 + i % 16), static_cast<uint16_t>(20000 + i), "192.0.2.10", 80};
        if (!inj.send(tcp_frame(f, 0x02, mux, peer))) send_failed = true;
        if (i % 50 == 49) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      sending = false;
    });
    uint32_t swaps = 0;
    while (sending && swaps < 200) {
      engine.set_config(swaps % 3 == 0 ? a : swaps % 3 == 1 ? a_small : ab);
      ++swaps;
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    sender.join();
    ASSERT_FALSE(send_failed);
    EXPECT_GE(swaps, 3u);
    engine.set_config(ab);

    ASSERT_TRUE(cap.wait_until([&](const auto& f) { return ipip_count(f) >= kFlows; }))
        << "got " << ipip_count(cap.frames()) << " of " << kFlows;
    std::set<std::string> pool_a(kPoolA.begin(), kPoolA.end());
    std::map<std::string, int> per_flow;
    for (const Ipip& p : ipip_frames(cap.frames())) {
      ++per_flow[p.flow];
      EXPECT_EQ(pool_a.count(p.outer_dst), 1u) << p.outer_dst;
    }
    EXPECT_EQ(per_flow.size(), static_cast<size_t>(kFlows));
    for (const auto& [flow, n] : per_flow) EXPECT_EQ(n, 1) << flow;

    // The VIP added by the last configuration is served.
    cap.clear();
    constexpr uint32_t kNewFlows = 200;
    for (uint32_t i = 0; i < kNewFlows; ++i) {
      ASSERT_TRUE(inj.send(tcp_frame({"198.51.100.50", static_cast<uint16_t>(30000 + i), "192.0.2.20", 443}, 0x02, mux, peer)));
    }
    ASSERT_TRUE(cap.wait_until([&](const auto& f) { return ipip_count(f) >= kNewFlows; }));
    std::set<std::string> pool_b(kPoolB.begin(), kPoolB.end());
    for (const Ipip& p : ipip_frames(cap.frames())) {
      EXPECT_EQ(pool_b.count(p.outer_dst), 1u) << p.outer_dst;
      EXPECT_NE(p.flow.find(">192.0.2.20:443"), std::string::npos) << p.flow;
    }

    const EngineCounters c = engine.counters();
    EXPECT_EQ(c.total->rx.get(), uint64_t{kFlows} + kNewFlows);
    EXPECT_EQ(c.total->tx.get(), uint64_t{kFlows} + kNewFlows);
    EXPECT_EQ(c.total->dropped.get(), 0u);
    EXPECT_EQ(c.io.tx_packets, uint64_t{kFlows} + kNewFlows);
    EXPECT_EQ(c.io.rx_kernel_drops, 0u);
    ASSERT_EQ(c.vip_keys.size(), 2u);
    EXPECT_EQ(c.total->vip(0)->new_flows.get() + c.total->vip(1)->new_flows.get(), uint64_t{kFlows} + kNewFlows);
    engine.stop();
  });
}

TEST_F(AfPacketEngineTest, FinalizesPartialChecksumsOfSegmentsTheKernelSent) {
  in_lab([](const Link& mux, const Link& peer) {
    Engine engine(lab_engine_options(1));
    ConfigSpec spec = lab_config(mux, peer);
    spec.vips.push_back(make_vip("web", "192.0.2.30", 80, kPoolA));
    engine.set_config(spec);
    Capture cap(peer);
    ASSERT_TRUE(cap.ok());
    engine.start();

    // A real TCP client on the peer end: its SYN leaves with CHECKSUM_PARTIAL (veth offload),
    // which the ring reports as TP_STATUS_CSUMNOTREADY.
    char mac[32];
    std::snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", mux.mac[0], mux.mac[1], mux.mac[2], mux.mac[3],
                  mux.mac[4], mux.mac[5]);
    ASSERT_TRUE(sh(std::string("ip addr add 198.51.100.1/24 dev ") + kPeerIf));
    ASSERT_TRUE(sh(std::string("ip route add 192.0.2.30/32 dev ") + kPeerIf));
    ASSERT_TRUE(sh(std::string("ip neigh replace 192.0.2.30 lladdr ") + mac + " dev " + kPeerIf + " nud permanent"));
    const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ASSERT_GE(s, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(80);
    inet_pton(AF_INET, "192.0.2.30", &to.sin_addr);
    ::connect(s, reinterpret_cast<const sockaddr*>(&to), sizeof(to));  // EINPROGRESS
    const bool got = cap.wait_until([](const auto& f) { return ipip_count(f) >= 1; }, std::chrono::seconds(5));
    ::close(s);
    ASSERT_TRUE(got);

    const Ipip p = ipip_frames(cap.frames()).front();
    ASSERT_GE(p.inner.size(), 40u);
    Bytes segment(p.inner.begin() + 20, p.inner.end());
    const uint16_t sent_checksum = load_be16(&segment[16]);
    store_be16(&segment[16], 0);
    finalize_l4_checksum(segment.data(), static_cast<uint32_t>(segment.size()), IpAddr::v4(&p.inner[12]),
                         IpAddr::v4(&p.inner[16]), kProtoTcp);
    EXPECT_EQ(sent_checksum, load_be16(&segment[16])) << "the inner TCP checksum is final";
    EXPECT_GE(engine.counters().total->checksums_finalized.get(), 1u);
    engine.stop();
  });
}

TEST_F(AfPacketEngineTest, StartFailsCleanlyOnAMissingInterfaceAndRefusesBadOptions) {
  in_lab([](const Link&, const Link&) {
    EngineOptions o = lab_engine_options(2);
    o.interface = "nosuchif0";
    Engine engine(o);
    EXPECT_THROW(engine.start(), std::system_error);
    EXPECT_FALSE(engine.running());
    EngineOptions none = lab_engine_options(0);
    EXPECT_THROW(Engine{none}, std::invalid_argument);
    EngineOptions cpu = lab_engine_options(1);
    cpu.cpus = {-1};
    EXPECT_THROW(Engine{cpu}, std::invalid_argument);
  });
}

}  // namespace
}  // namespace l4mux
