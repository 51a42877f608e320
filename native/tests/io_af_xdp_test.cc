// The XDP program and AF_XDP I/O on a real veth pair, generic and native XDP.
//
// Needs root and a build with L4MUX_HAVE_AF_XDP (else skipped). Every test runs on a thread
// that moves into a brand-new, unnamed network namespace (the mux side), from which a second
// unnamed namespace (the peer side) is made; the veth pair joins them. Nothing is named, so
// nothing can be left behind: the kernel removes both namespaces, the veth pair and the XDP
// program with them once the thread and the sockets are gone, whether the test passes, fails
// or crashes. The root namespace is never touched (checked before any command runs).
//
//   [mux ns]  xmux0 10.99.0.1/24 02:00:00:00:00:01   <- XDP program + AF_XDP socket, queue 0
//                |  veth
//   [peer ns] xpeer0 10.99.0.2/24 02:00:00:00:00:fe  <- injects frames, captures, pings
//
// Traffic is small and bounded (a few dozen frames per test; every wait has a deadline).
#include <gtest/gtest.h>

#if defined(L4MUX_HAVE_AF_XDP) && L4MUX_HAVE_AF_XDP

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "bytes.h"
#include "checksum.h"
#include "frame_builder.h"
#include "netns.h"
#include "io/af_xdp.h"
#include "io/xdp_program.h"
#include "pipeline.h"
#include "snapshot.h"

namespace l4mux {
namespace {

using testing::Bytes;
using testing::ip;
using testing::L4Spec;
using testing::run_in_new_netns;
using testing::sh;
using testing::write_proc;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr char kMuxIf[] = "xmux0";
constexpr char kPeerIf[] = "xpeer0";
constexpr MacAddr kMuxMac = {0x02, 0, 0, 0, 0, 0x01};   // frame_builder's destination MAC
constexpr MacAddr kPeerMac = {0x02, 0, 0, 0, 0, 0xfe};  // frame_builder's source MAC
constexpr char kVip4[] = "192.0.2.10";
constexpr char kVip6[] = "2001:db8::10";
const std::set<std::string> kBackends = {"10.1.0.1", "10.1.0.2", "10.1.0.3"};

// ---- Namespaces ----

// The two namespaces, on the lab thread. Children forked by system() inherit the calling
// thread's namespace, so `ip` commands run where the thread currently is.
class Lab {
 public:
  // On a thread that has just unshare()d into a new namespace: makes the peer namespace and
  // the veth pair. error() says what failed.
  Lab() {
    mux_ns_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (::unshare(CLONE_NEWNET) != 0) {
      error_ = std::string("unshare for the peer namespace: ") + std::strerror(errno);
      return;
    }
    peer_ns_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (mux_ns_ < 0 || peer_ns_ < 0 || ::setns(mux_ns_, CLONE_NEWNET) != 0) {
      error_ = "could not open or re-enter the lab namespaces";
      return;
    }
    const std::string peer_path = "/proc/" + std::to_string(::getpid()) + "/fd/" + std::to_string(peer_ns_);
    write_proc("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1");
    write_proc("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
    bool ok = sh("ip link set lo up") &&
              sh(std::string("ip link add ") + kMuxIf + " type veth peer name " + kPeerIf + " netns " + peer_path) &&
              sh(std::string("ip link set ") + kMuxIf + " address 02:00:00:00:00:01") &&
              sh(std::string("ip addr add 10.99.0.1/24 dev ") + kMuxIf) && sh(std::string("ip link set ") + kMuxIf + " up");
    ok = ok && in_peer([] {
      write_proc("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1");
      write_proc("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
      return sh("ip link set lo up") && sh(std::string("ip link set ") + kPeerIf + " address 02:00:00:00:00:fe") &&
             sh(std::string("ip addr add 10.99.0.2/24 dev ") + kPeerIf) &&
             sh(std::string("ip link set ") + kPeerIf + " up");
    });
    if (!ok) error_ = "could not create or configure the veth pair (ip link / ip addr failed)";
    mux_ifindex_ = static_cast<int>(if_nametoindex(kMuxIf));
  }
  ~Lab() {
    if (peer_ns_ >= 0) ::close(peer_ns_);
    if (mux_ns_ >= 0) ::close(mux_ns_);
  }
  const std::string& error() const { return error_; }
  int mux_ifindex() const { return mux_ifindex_; }

  // Runs `f` with the thread in the peer namespace, then returns to the mux namespace.
  template <typename F>
  std::invoke_result_t<F> in_peer(F&& f) {
    struct Back {
      int ns;
      ~Back() { ::setns(ns, CLONE_NEWNET); }
    };
    if (::setns(peer_ns_, CLONE_NEWNET) != 0) std::abort();  // never run peer code elsewhere
    Back back{mux_ns_};
    return f();
  }

 private:
  int mux_ns_ = -1;
  int peer_ns_ = -1;
  int mux_ifindex_ = 0;
  std::string error_;
};

// Runs `body` on a thread inside a fresh namespace with the lab set up. Returns "" or why the
// lab could not be made (then `body` did not run).
std::string run_in_lab(const std::function<void(Lab&)>& body) {
  std::string lab_error;
  const std::string error = run_in_new_netns([&] {
    Lab lab;
    if (!lab.error().empty()) {
      lab_error = lab.error();
      return;
    }
    body(lab);
  });
  return error.empty() ? lab_error : error;
}

// ---- The peer side: inject and capture on xpeer0 ----

class PeerPort {
 public:
  explicit PeerPort(Lab& lab) {
    lab.in_peer([&] {
      fd_ = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
      ifindex_ = static_cast<int>(if_nametoindex(kPeerIf));
      return 0;
    });
    const int one = 1;
    ::setsockopt(fd_, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one));
    sockaddr_ll addr{};
    addr.sll_family = AF_PACKET;
    addr.sll_protocol = htons(ETH_P_ALL);
    addr.sll_ifindex = ifindex_;
    bound_ = ::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0;
    thread_ = std::thread([this] { loop(); });
  }
  ~PeerPort() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  bool ok() const { return fd_ >= 0 && bound_ && ifindex_ > 0; }

  bool send(const Bytes& frame) {
    sockaddr_ll to{};
    to.sll_family = AF_PACKET;
    to.sll_ifindex = ifindex_;
    to.sll_halen = ETH_ALEN;
    return ::sendto(fd_, frame.data(), frame.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof(to)) ==
           static_cast<ssize_t>(frame.size());
  }

  std::vector<Bytes> frames() const {
    std::lock_guard lock(mutex_);
    return frames_;
  }
  void clear() {
    std::lock_guard lock(mutex_);
    frames_.clear();
  }
  bool wait_until(const std::function<bool(const std::vector<Bytes>&)>& pred, Clock::duration timeout = 3s) const {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      {
        std::lock_guard lock(mutex_);
        if (pred(frames_)) return true;
      }
      if (Clock::now() >= deadline) return false;
      std::this_thread::sleep_for(5ms);
    }
  }

 private:
  void loop() {
    std::vector<uint8_t> buf(65536);
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      for (;;) {
        const ssize_t n = ::recv(fd_, buf.data(), buf.size(), MSG_DONTWAIT);
        if (n <= 0) break;
        std::lock_guard lock(mutex_);
        if (frames_.size() < 10000) frames_.emplace_back(buf.begin(), buf.begin() + n);
      }
    }
  }

  int fd_ = -1;
  int ifindex_ = 0;
  bool bound_ = false;
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::vector<Bytes> frames_;
  std::thread thread_;
};

// The peer kernel pings the mux kernel (10.99.0.1): ARP and ICMP both have to get through the
// XDP program to the mux namespace's stack, and the reply back. True when a reply came.
bool kernel_ping(Lab& lab, Clock::duration timeout = 3s) {
  const int fd = lab.in_peer([] { return ::socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP); });
  if (fd < 0) return false;
  uint8_t req[16] = {8, 0, 0, 0, 0x4c, 0x34, 0, 1, 'l', '4', 'm', 'u', 'x', 'x', 'd', 'p'};
  store_be16(req + 2, csum_fold(csum_partial(req, sizeof(req))));
  sockaddr_in to{};
  to.sin_family = AF_INET;
  inet_pton(AF_INET, "10.99.0.1", &to.sin_addr);
  bool replied = false;
  const auto deadline = Clock::now() + timeout;
  auto next_send = Clock::now();
  while (!replied && Clock::now() < deadline) {
    if (Clock::now() >= next_send) {  // the first one may be lost to ARP resolution
      ::sendto(fd, req, sizeof(req), 0, reinterpret_cast<const sockaddr*>(&to), sizeof(to));
      next_send = Clock::now() + 500ms;
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    uint8_t buf[1500];
    const ssize_t n = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 28) continue;
    const size_t hl = (buf[0] & 0x0f) * 4u;
    const uint8_t* icmp = buf + hl;
    if (static_cast<size_t>(n) >= hl + 8 && icmp[0] == 0 && icmp[4] == 0x4c && icmp[5] == 0x34) replied = true;
  }
  ::close(fd);
  return replied;
}

// ---- Frames ----

std::string ntop(int af, const uint8_t* p) {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(af, p, buf, sizeof(buf));
  return buf;
}

// The IP packet inside an Ethernet frame (trailing padding removed).
Bytes ip_of(const Bytes& frame) {
  const uint8_t* l3 = &frame[14];
  const size_t len = (l3[0] >> 4) == 4 ? load_be16(l3 + 2) : 40u + load_be16(l3 + 4);
  return Bytes(l3, l3 + len);
}

// An IPv4-outer tunnel frame as the mux sends it (IPv4-in-IPv4 or IPv6-in-IPv4).
struct Tunnelled {
  bool ok = false;
  std::string outer_src, outer_dst;
  Bytes inner;
};

Tunnelled parse_tunnel(const Bytes& f) {
  Tunnelled t;
  if (f.size() < 14 + 20 + 20 || load_be16(&f[12]) != kEthTypeIpv4) return t;
  if (!std::equal(kPeerMac.begin(), kPeerMac.end(), f.begin()) ||
      !std::equal(kMuxMac.begin(), kMuxMac.end(), f.begin() + 6)) {
    return t;
  }
  const uint8_t* outer = &f[14];
  if (outer[0] != 0x45 || (outer[9] != kProtoIpip && outer[9] != kProtoIpv6)) return t;
  const size_t total = load_be16(outer + 2);
  if (14 + total > f.size() || total < 40) return t;
  t.outer_src = ntop(AF_INET, outer + 12);
  t.outer_dst = ntop(AF_INET, outer + 16);
  t.inner.assign(outer + 20, outer + total);
  t.ok = true;
  return t;
}

size_t count_tunnelled(const std::vector<Bytes>& frames) {
  size_t n = 0;
  for (const Bytes& f : frames) n += parse_tunnel(f).ok ? 1 : 0;
  return n;
}

Bytes syn(const std::string& src, const std::string& dst, uint16_t sport, uint16_t dport = 80, int vlan = -1) {
  L4Spec l4;
  l4.src_port = sport;
  l4.dst_port = dport;
  return testing::flow_frame(src, dst, l4, vlan);
}

Bytes echo_request(const std::string& src, const std::string& dst) {
  Bytes icmp = {8, 0, 0, 0, 0x12, 0x34, 0, 7, 'p', 'i', 'n', 'g'};
  store_be16(&icmp[2], csum_fold(csum_partial(icmp.data(), icmp.size())));
  return testing::ethernet(testing::ip_packet(testing::IpSpec{ip(src), ip(dst), kProtoIcmp}, icmp));
}

// ---- The mux side: XDP program + AF_XDP socket + pipeline, pumped by the lab thread ----

ConfigSpec lab_config() {
  ConfigSpec spec;
  spec.seed = 0x5eed;
  spec.source_mac = kMuxMac;
  spec.gateway_mac = kPeerMac;
  spec.outer_source_v4 = ip("10.99.0.1");
  spec.egress_mtu = 1500;
  for (const char* addr : {kVip4, kVip6}) {
    VipSpec v;
    v.name = std::string("web-") + addr;
    v.key = VipKey{ip(addr), kProtoTcp, 80};
    v.encap = Encap::kIpip;
    v.table_size = 251;
    for (const auto& b : kBackends) v.backends.push_back(BackendSpec{ip(b), 1});
    spec.vips.push_back(v);
  }
  return spec;
}

std::vector<VipKey> vip_keys(const ConfigSpec& spec) {
  std::vector<VipKey> keys;
  for (const auto& v : spec.vips) keys.push_back(v.key);
  return keys;
}

constexpr uint32_t kTransmitFrames = 32;  // of the Mux's 256 UMEM frames

class Mux {
 public:
  Mux() : snapshot_(Snapshot::build(lab_config(), backends_, vips_)) {}

  bool open(const XdpProgram& prog, std::string* error) {
    AfXdpOptions o;
    o.interface = kMuxIf;
    o.queue = 0;
    o.xsks_map_fd = prog.xsks_map_fd();
    o.frame_count = 256;  // 1 MiB UMEM: plenty for a few dozen frames
    o.ring_size = 128;
    o.transmit_frames = kTransmitFrames;
    io_ = open_af_xdp(o, error);
    return io_ != nullptr;
  }
  void close() { io_.reset(); }
  AfXdpIo& io() { return *dynamic_cast<AfXdpIo*>(io_.get()); }
  const WorkerCounters& counters() const { return counters_; }

  // The worker loop for at most `max`, or until `until_rx` packets came in this call.
  // `inspect` sees every packet as received, before the pipeline.
  uint64_t pump(Clock::duration max, uint64_t until_rx = UINT64_MAX,
                const std::function<void(const Packet&)>& inspect = {}) {
    uint64_t got = 0;
    const auto deadline = Clock::now() + max;
    while (got < until_rx && Clock::now() < deadline) {
      const uint32_t n = io_->receive(std::span<Packet>(batch_), 10);
      if (n == 0) continue;
      if (inspect) {
        for (uint32_t i = 0; i < n; ++i) inspect(batch_[i]);
      }
      const uint64_t now = static_cast<uint64_t>(Clock::now().time_since_epoch().count());
      pipeline_.process(std::span<Packet>(batch_.data(), n), *snapshot_, now);
      io_->complete(std::span<Packet>(batch_), n);
      got += n;
    }
    // Let the last transmissions complete (copy mode sends inside complete()).
    io_->receive(std::span<Packet>(batch_.data(), 0), 0);
    return got;
  }

 private:
  BackendRegistry backends_{64};
  VipRegistry vips_{16};
  std::unique_ptr<const Snapshot> snapshot_;
  WorkerCounters counters_{16, 64};
  Pipeline pipeline_{ConntrackConfig{1024, {}}, counters_};
  std::array<Packet, kMaxBatch> batch_{};
  std::unique_ptr<PacketIo> io_;
};

uint32_t attached_prog_id(int ifindex) {
  uint32_t id = 0;
  bpf_xdp_query_id(ifindex, 0, &id);
  return id;
}

// ---- The scenario, for either XDP mode ----

void steers_vip_traffic_only(Lab& lab, XdpProgram& prog) {
  const ConfigSpec spec = lab_config();
  const std::vector<VipKey> keys = vip_keys(spec);
  std::string err;
  ASSERT_TRUE(prog.set_vips(keys, &err)) << err;

  Mux mux;
  ASSERT_TRUE(mux.open(prog, &err)) << err;
  std::printf("[   INFO   ] %s, XDP %s mode (program id %u, %u queue slots)\n", mux.io().describe().c_str(),
              xdp_mode_name(prog.mode()), prog.program_id(), prog.max_queues());
  if (!mux.io().zero_copy()) std::printf("[   INFO   ] zero copy: %s\n", mux.io().zero_copy_refused().c_str());
  const IoRingLevels at_open = mux.io().ring_levels();
  EXPECT_EQ(at_open.fill_used, 256u - kTransmitFrames) << "every UMEM frame but the transmit reserve starts on the fill ring";
  EXPECT_EQ(at_open.fill_size, 256u);
  EXPECT_EQ(at_open.rx_size, 128u);
  EXPECT_EQ(at_open.tx_size, 128u);
  EXPECT_EQ(at_open.completion_size, 128u);
  EXPECT_EQ(at_open.rx_used + at_open.tx_used + at_open.completion_used, 0u);
  PeerPort peer(lab);
  ASSERT_TRUE(peer.ok());

  // 1. TCP SYNs to both VIPs come back encapsulated toward a pool backend, inner packet intact.
  std::vector<Bytes> sent;
  for (uint16_t i = 0; i < 6; ++i) sent.push_back(syn("198.51.100.7", kVip4, static_cast<uint16_t>(41000 + i)));
  for (uint16_t i = 0; i < 2; ++i) sent.push_back(syn("2001:db8:c::7", kVip6, static_cast<uint16_t>(42000 + i)));
  for (const Bytes& f : sent) ASSERT_TRUE(peer.send(f));
  // Before the worker loop runs, the frames wait on the rx ring, taken from the fill ring.
  IoRingLevels waiting;
  for (const auto until = Clock::now() + 2s; Clock::now() < until;) {
    waiting = mux.io().ring_levels();
    if (waiting.rx_used == sent.size()) break;
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(waiting.rx_used, sent.size());
  EXPECT_EQ(waiting.fill_used, 256u - kTransmitFrames - sent.size());
  uint32_t min_headroom = UINT32_MAX;
  EXPECT_EQ(mux.pump(3s, sent.size(), [&](const Packet& p) { min_headroom = std::min(min_headroom, p.headroom); }),
            sent.size());
  EXPECT_GE(min_headroom, 256u) << "AF_XDP frames keep XDP_PACKET_HEADROOM in front";
  ASSERT_TRUE(peer.wait_until([&](const auto& fs) { return count_tunnelled(fs) >= sent.size(); }))
      << "encapsulated frames seen by the peer: " << count_tunnelled(peer.frames());
  // (a vector, not a set: GCC 12 warns falsely on std::set<std::vector<uint8_t>>)
  std::vector<Bytes> inner_expected;
  for (const Bytes& f : sent) inner_expected.push_back(ip_of(f));
  for (const Bytes& f : peer.frames()) {
    const Tunnelled t = parse_tunnel(f);
    if (!t.ok) continue;
    EXPECT_EQ(t.outer_src, "10.99.0.1");
    EXPECT_TRUE(kBackends.count(t.outer_dst)) << t.outer_dst;
    const auto it = std::find(inner_expected.begin(), inner_expected.end(), t.inner);
    EXPECT_NE(it, inner_expected.end()) << "inner packet byte for byte, each once";
    if (it != inner_expected.end()) inner_expected.erase(it);
  }
  EXPECT_TRUE(inner_expected.empty());
  XdpStats xs = prog.stats();
  EXPECT_EQ(xs.redirected_vip, sent.size());
  IoStats io = mux.io().stats();
  EXPECT_EQ(io.rx_packets, sent.size());
  const IoRingLevels rings = mux.io().ring_levels();
  EXPECT_EQ(rings.rx_used, 0u) << "every received frame was consumed";
  // Sent frames came back through the completion ring and were recycled to the fill ring.
  EXPECT_LE(rings.fill_used + rings.tx_used + rings.completion_used, 256u);
  EXPECT_EQ(io.tx_packets, sent.size());
  EXPECT_EQ(io.tx_errors, 0u);
  EXPECT_EQ(io.tx_ring_full, 0u);

  // 2. What is not TCP/UDP to a VIP port but goes to a VIP address is the mux's too: an ICMP
  //    echo request to the VIP gets the pipeline's echo reply, a SYN to a port no VIP serves
  //    reaches the pipeline (which drops it by name), and so do IPv6 fragments. A VLAN-tagged
  //    SYN is matched behind its tag.
  peer.clear();
  ASSERT_TRUE(peer.send(echo_request("198.51.100.7", kVip4)));
  ASSERT_TRUE(peer.send(syn("198.51.100.7", kVip4, 43000, 22)));
  testing::IpSpec frag{ip("2001:db8:c::7"), ip(kVip6), kProtoUdp};
  frag.more_fragments = true;
  ASSERT_TRUE(peer.send(testing::ethernet(testing::ip_packet(frag, Bytes(64, 'f')))));
  ASSERT_TRUE(peer.send(syn("198.51.100.7", kVip4, 43001, 80, /*vlan=*/7)));
  EXPECT_EQ(mux.pump(3s, 4), 4u);
  EXPECT_TRUE(peer.wait_until([](const auto& fs) {
    for (const Bytes& f : fs) {
      if (f.size() >= 34 + 8 && load_be16(&f[12]) == kEthTypeIpv4 && f[14 + 9] == kProtoIcmp && f[34] == 0 &&
          ntop(AF_INET, &f[14 + 12]) == kVip4) {
        return true;
      }
    }
    return false;
  })) << "echo reply from the VIP";
  const XdpStats xs2 = prog.stats();
  EXPECT_EQ(xs2.redirected_addr - xs.redirected_addr, 3u) << "ICMP, other port, IPv6 fragment";
  EXPECT_EQ(xs2.redirected_vip - xs.redirected_vip, 1u) << "VLAN-tagged SYN";
  EXPECT_EQ(mux.counters().drops[static_cast<size_t>(DropReason::kNoVipForPort)].get(), 1u);
  xs = xs2;

  // 3. Everything else stays with the kernel: the peer's kernel pings the mux's address (ARP,
  //    then ICMP) and gets answers; a UDP datagram to the mux's address is not redirected.
  const uint64_t rx_before = mux.io().stats().rx_packets;
  EXPECT_TRUE(kernel_ping(lab)) << "the mux namespace's kernel answers a ping through the XDP program";
  L4Spec udp;
  udp.proto = kProtoUdp;
  udp.dst_port = 9999;
  ASSERT_TRUE(peer.send(testing::flow_frame("10.99.0.2", "10.99.0.1", udp)));
  mux.pump(200ms);
  EXPECT_EQ(mux.io().stats().rx_packets, rx_before) << "nothing but VIP traffic reaches the socket";
  EXPECT_GE(prog.stats().passed - xs.passed, 3u) << "ARP, ICMP echo, UDP passed to the kernel";
  EXPECT_EQ(prog.stats().no_socket, 0u);

  // 4. The VIP set follows the configuration: without the VIPs their traffic goes to the kernel
  //    (which, not forwarding, drops it); with them back it is steered again.
  ASSERT_TRUE(prog.set_vips({}, &err)) << err;
  peer.clear();
  xs = prog.stats();
  for (uint16_t i = 0; i < 3; ++i) ASSERT_TRUE(peer.send(syn("198.51.100.7", kVip4, static_cast<uint16_t>(44000 + i))));
  ASSERT_TRUE(peer.send(echo_request("198.51.100.7", kVip4)));
  EXPECT_EQ(mux.pump(300ms), 0u) << "removed VIPs are no longer redirected";
  EXPECT_EQ(prog.stats().passed - xs.passed, 4u);
  EXPECT_EQ(prog.stats().redirected_vip + prog.stats().redirected_addr, xs.redirected_vip + xs.redirected_addr);
  EXPECT_EQ(count_tunnelled(peer.frames()), 0u);

  ASSERT_TRUE(prog.set_vips(std::vector<VipKey>{keys[0]}, &err)) << err;  // IPv4 VIP only
  ASSERT_TRUE(peer.send(syn("198.51.100.7", kVip4, 45000)));
  ASSERT_TRUE(peer.send(syn("2001:db8:c::7", kVip6, 45001)));
  EXPECT_EQ(mux.pump(1s, 1), 1u);
  mux.pump(200ms);
  EXPECT_TRUE(peer.wait_until([](const auto& fs) { return count_tunnelled(fs) == 1; }));
  EXPECT_EQ(prog.stats().redirected_vip - xs.redirected_vip, 1u) << "only the VIP still configured";

  // 5. A cluster mux's redirect port on its own address (a port-only key) reaches the socket;
  //    the address's other traffic stays the kernel's.
  ASSERT_TRUE(prog.set_vips(keys, &err, std::vector<VipKey>{VipKey{ip("10.99.0.1"), kProtoUdp, 6666}})) << err;
  xs = prog.stats();
  L4Spec redirect = udp;
  redirect.dst_port = 6666;
  ASSERT_TRUE(peer.send(testing::flow_frame("10.99.0.2", "10.99.0.1", redirect)));
  EXPECT_EQ(mux.pump(1s, 1), 1u) << "a peer's redirect reaches the socket";
  EXPECT_EQ(prog.stats().redirected_vip - xs.redirected_vip, 1u);
  const uint64_t rx_redirect = mux.io().stats().rx_packets;
  ASSERT_TRUE(peer.send(testing::flow_frame("10.99.0.2", "10.99.0.1", udp)));
  EXPECT_TRUE(kernel_ping(lab)) << "the mux's address still answers its kernel's ping";
  mux.pump(200ms);
  EXPECT_EQ(mux.io().stats().rx_packets, rx_redirect) << "other ports of the mux's address are not steered";

  // 6. transmit() sends frames the caller owns (held packets released by persistence) through
  //    the reserve: byte for byte, more of them over time than the reserve has frames (they come
  //    back from the completion ring), and a burst beyond the reserve is refused, not queued.
  peer.clear();
  std::vector<Bytes> own;
  const uint32_t half = kTransmitFrames / 2;
  for (uint16_t i = 0; i < 4 * half + kTransmitFrames + 8; ++i) own.push_back(syn("198.51.100.9", kVip4, static_cast<uint16_t>(46000 + i)));
  std::vector<Packet> held(own.size());
  for (size_t i = 0; i < own.size(); ++i) {
    held[i].data = own[i].data();
    held[i].len = static_cast<uint32_t>(own[i].size());
  }
  const IoStats before_tx = mux.io().stats();
  uint32_t accepted = 0;
  for (uint32_t round = 0; round < 4; ++round) {  // 4 x 16 = 64 frames through a reserve of 32
    accepted += mux.io().transmit(std::span<Packet>(held.data() + round * half, half));
    mux.pump(50ms);
  }
  EXPECT_EQ(accepted, 4 * half) << "reserve frames come back from the completion ring";
  EXPECT_TRUE(peer.wait_until([&](const auto& fs) { return fs.size() >= 4 * half; }));
  std::vector<Bytes> expected(own.begin(), own.begin() + 4 * half);
  for (const Bytes& f : peer.frames()) {
    const auto it = std::find(expected.begin(), expected.end(), f);
    if (it != expected.end()) expected.erase(it);
  }
  EXPECT_TRUE(expected.empty()) << expected.size() << " transmitted frames not seen byte for byte";
  mux.pump(100ms);
  const uint32_t burst = mux.io().transmit(std::span<Packet>(held.data() + 4 * half, kTransmitFrames + 8));
  EXPECT_EQ(burst, kTransmitFrames) << "no more at once than the reserve holds";
  const IoStats after_tx = mux.io().stats();
  EXPECT_EQ(after_tx.tx_packets - before_tx.tx_packets, 4 * half + kTransmitFrames);
  EXPECT_EQ(after_tx.tx_ring_full - before_tx.tx_ring_full, 8u);
  mux.pump(100ms);
  EXPECT_EQ(mux.io().ring_levels().fill_used, 256u - kTransmitFrames) << "the reserve never reaches the fill ring";

  const AfXdpStats xio = mux.io().xdp_stats();
  EXPECT_EQ(xio.rx_dropped, 0u);
  EXPECT_EQ(xio.tx_invalid_descs, 0u);
}

class AfXdpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root: network namespaces, veth pairs, XDP, AF_XDP";
    if (::system(nullptr) == 0 || !sh("ip -V")) GTEST_SKIP() << "needs the `ip` command (iproute2)";
  }
};

TEST_F(AfXdpTest, GenericModeSteersVipTrafficOnly) {
  const std::string lab_error = run_in_lab([](Lab& lab) {
    std::string err;
    auto prog = XdpProgram::attach({kMuxIf, XdpMode::kGeneric, 0}, &err);
    ASSERT_NE(prog, nullptr) << err;
    EXPECT_EQ(attached_prog_id(lab.mux_ifindex()), prog->program_id());
    steers_vip_traffic_only(lab, *prog);
    prog.reset();
    EXPECT_EQ(attached_prog_id(lab.mux_ifindex()), 0u) << "detached on destruction";
  });
  ASSERT_EQ(lab_error, "");
}

TEST_F(AfXdpTest, NativeModeSteersVipTrafficOnly) {
  std::string refused;
  const std::string lab_error = run_in_lab([&](Lab& lab) {
    auto prog = XdpProgram::attach({kMuxIf, XdpMode::kNative, 0}, &refused);
    if (prog == nullptr) return;
    refused.clear();
    EXPECT_EQ(attached_prog_id(lab.mux_ifindex()), prog->program_id());
    steers_vip_traffic_only(lab, *prog);
    prog.reset();
    EXPECT_EQ(attached_prog_id(lab.mux_ifindex()), 0u) << "detached on destruction";
  });
  ASSERT_EQ(lab_error, "");
  if (!refused.empty()) {
    std::printf("[   INFO   ] native XDP refused: %s\n", refused.c_str());
    GTEST_SKIP() << "native XDP refused: " << refused;
  }
}

// Native XDP on veth refuses a peer MTU above what one page can hold; the reason reaches the
// caller as the kernel worded it.
TEST_F(AfXdpTest, NativeAttachFailureCarriesTheKernelReason) {
  const std::string lab_error = run_in_lab([](Lab& lab) {
    const bool mtu_set = lab.in_peer([] { return sh(std::string("ip link set ") + kPeerIf + " mtu 9000"); }) &&
                         sh(std::string("ip link set ") + kMuxIf + " mtu 9000");
    ASSERT_TRUE(mtu_set);
    std::string err;
    auto prog = XdpProgram::attach({kMuxIf, XdpMode::kNative, 0}, &err);
    if (prog != nullptr) {
      std::printf("[   INFO   ] native XDP accepted MTU 9000 on veth on this kernel\n");
      return;
    }
    std::printf("[   INFO   ] %s\n", err.c_str());
    EXPECT_NE(err.find("native XDP attach failed on xmux0: "), std::string::npos) << err;
    EXPECT_NE(err.find("errno "), std::string::npos) << err;
    // Generic mode has no such limit.
    auto generic = XdpProgram::attach({kMuxIf, XdpMode::kGeneric, 0}, &err);
    EXPECT_NE(generic, nullptr) << err;
  });
  ASSERT_EQ(lab_error, "");
}

// A second attach replaces a leftover l4mux program (a crashed run), and the old owner's
// destructor then leaves the new program alone. Anybody else's program is not replaced.
TEST_F(AfXdpTest, ReplacesOnlyItsOwnLeftoverProgram) {
  const std::string lab_error = run_in_lab([](Lab& lab) {
    std::string err;
    auto first = XdpProgram::attach({kMuxIf, XdpMode::kGeneric, 0}, &err);
    ASSERT_NE(first, nullptr) << err;
    auto second = XdpProgram::attach({kMuxIf, XdpMode::kGeneric, 0}, &err);
    ASSERT_NE(second, nullptr) << err;
    EXPECT_NE(first->program_id(), second->program_id());
    EXPECT_EQ(attached_prog_id(lab.mux_ifindex()), second->program_id());
    first.reset();
    EXPECT_EQ(attached_prog_id(lab.mux_ifindex()), second->program_id()) << "the stale owner detached the new program";
    second.reset();
    EXPECT_EQ(attached_prog_id(lab.mux_ifindex()), 0u);

    // A foreign program: libbpf loads a minimal XDP_PASS program named differently.
    const bpf_insn pass_prog[] = {
        {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, XDP_PASS},
        {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
    };
    const int foreign = bpf_prog_load(BPF_PROG_TYPE_XDP, "not_l4mux", "GPL", pass_prog, 2, nullptr);
    ASSERT_GE(foreign, 0);
    ASSERT_EQ(bpf_xdp_attach(lab.mux_ifindex(), foreign, XDP_FLAGS_SKB_MODE, nullptr), 0);
    auto third = XdpProgram::attach({kMuxIf, XdpMode::kGeneric, 0}, &err);
    EXPECT_EQ(third, nullptr);
    EXPECT_NE(err.find("not_l4mux"), std::string::npos) << err;
    bpf_xdp_detach(lab.mux_ifindex(), XDP_FLAGS_SKB_MODE, nullptr);
    ::close(foreign);
  });
  ASSERT_EQ(lab_error, "");
}

// A SYN from the peer's own TCP stack: veth offloads its checksum, so the skb is
// CHECKSUM_PARTIAL and its TCP checksum field holds only the pseudo-header sum when XDP hands
// it to AF_XDP (no flag says so). AfXdpIo recognises that state, the pipeline finalizes the
// checksum, and the backend gets a packet whose inner TCP checksum verifies.
bool tcp_checksum_ok(const uint8_t* l3) {
  const uint32_t ihl = (l3[0] & 0x0fu) * 4u;
  const uint32_t l4_len = load_be16(l3 + 2) - ihl;
  const uint32_t sum = pseudo_header_sum(IpAddr::v4(l3 + 12), IpAddr::v4(l3 + 16), kProtoTcp, l4_len);
  return csum_fold(csum_partial(l3 + ihl, l4_len, sum)) == 0;
}

TEST_F(AfXdpTest, KernelTcpWithPartialChecksumLeavesWithAFinalOne) {
  const std::string lab_error = run_in_lab([](Lab& lab) {
    for (XdpMode mode : {XdpMode::kGeneric, XdpMode::kNative}) {
      std::string err;
      auto prog = XdpProgram::attach({kMuxIf, mode, 0}, &err);
      if (prog == nullptr) {
        std::printf("[   INFO   ] %s XDP not available: %s\n", xdp_mode_name(mode), err.c_str());
        continue;
      }
      ASSERT_TRUE(prog->set_vips(vip_keys(lab_config()), &err)) << err;
      Mux mux;
      ASSERT_TRUE(mux.open(*prog, &err)) << err;
      PeerPort peer(lab);
      ASSERT_TRUE(peer.ok());
      const int fd = lab.in_peer([] {
        sh("ip route replace 192.0.2.0/24 via 10.99.0.1");
        return ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      });
      ASSERT_GE(fd, 0);
      sockaddr_in to{};
      to.sin_family = AF_INET;
      to.sin_port = htons(80);
      inet_pton(AF_INET, kVip4, &to.sin_addr);
      ::connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof(to));
      int arrived_final = -1;
      bool flagged = false;
      mux.pump(3s, 1, [&](const Packet& p) {
        if (p.len < 14 + 40 || load_be16(p.data + 12) != kEthTypeIpv4 || p.data[14 + 9] != kProtoTcp) return;
        arrived_final = tcp_checksum_ok(p.data + 14) ? 1 : 0;
        flagged = (p.flags & kPacketChecksumPartial) != 0;
      });
      ::close(fd);
      ASSERT_GE(arrived_final, 0) << "the kernel's SYN reached the AF_XDP socket";
      std::printf("[   INFO   ] %s XDP: kernel TCP SYN over veth arrives with a %s checksum%s\n", xdp_mode_name(mode),
                  arrived_final ? "final" : "partial (pseudo-header only)",
                  flagged ? ", flagged kPacketChecksumPartial" : "");
      EXPECT_EQ(flagged, arrived_final == 0) << "flagged exactly when the checksum is not final";
      ASSERT_TRUE(peer.wait_until([](const auto& fs) { return count_tunnelled(fs) >= 1; }));
      for (const Bytes& f : peer.frames()) {
        const Tunnelled t = parse_tunnel(f);
        if (t.ok) {
          EXPECT_TRUE(tcp_checksum_ok(t.inner.data())) << "inner TCP checksum verifies at the backend";
        }
      }
    }
  });
  ASSERT_EQ(lab_error, "");
}

}  // namespace
}  // namespace l4mux

#else  // !L4MUX_HAVE_AF_XDP

TEST(AfXdpTest, NeedsAfXdpBuild) { GTEST_SKIP() << "built without AF_XDP support (clang, libbpf, libxdp)"; }

#endif
