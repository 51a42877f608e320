// The agent end to end, with real kernels on both sides (root only; skipped otherwise):
//
//   client namespace                                   backend namespace
//   ----------------                                   -----------------
//   TCP / UDP client (198.51.100.7, 2001:db8:c::7)     TCP / UDP echo servers on the VIPs
//     | route VIP -> mux0 (TUN)                          192.0.2.10, 2001:db8::10 (on l4tun0)
//   "mux" thread: reads mux0, encapsulate() (the        ^ inner packets written to l4tun0
//     mux's own code), AF_PACKET send on veth0 ------>  Agent on veth0 (10.77.0.2, fd77::2)
//     <------------- replies straight from the VIP (direct server return) -------------
//
// Each tunnel kind and family combination carries a real TCP connection (handshake, data,
// close) and a UDP exchange. The backend kernel's ICMP counters prove that the tunnel
// packets themselves drew no "protocol / port unreachable" (and a control run without the
// suppression shows that they would). Namespaces are uniquely named and always deleted;
// nothing is created in the root namespace.
//
// Also here, unprivileged: the classic BPF filter of the packet socket, run by the kernel
// on an AF_UNIX socket pair.
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/agent.h"
#include "bytes.h"
#include "encap.h"
#include "frame_builder.h"
#include "netns.h"
#include "agent/tun.h"

namespace l4mux {
namespace {

using testing::Bytes;
using testing::ip;

// ---------------------------------------------------------------------------------------
// The packet socket's filter, unprivileged.

DecapConfig filter_config() {
  DecapConfig c;
  c.ipv4 = ip("10.1.0.1");
  c.ipv6 = ip("fd00:1::1");
  c.gue_ports[0] = 6080;
  c.gue_port_count = 1;
  c.mux_sources = {IpPrefix{ip("10.1.0.0"), 24}};
  c.vips = {ip("192.0.2.10")};
  return c;
}

Bytes encap_frame(Encap kind, const std::string& backend, bool inner6 = false, uint16_t port = 6080) {
  const IpAddr client = inner6 ? ip("2001:db8:c::7") : ip("198.51.100.7");
  const IpAddr vip = inner6 ? ip("2001:db8::10") : ip("192.0.2.10");
  const Bytes inner = testing::ip_packet({client, vip, kProtoTcp}, testing::l4_segment(client, vip, {}));
  Bytes buf(128 + inner.size());
  std::memcpy(buf.data() + 128, inner.data(), inner.size());
  InnerPacket in;
  in.ip = buf.data() + 128;
  in.length = static_cast<uint32_t>(inner.size());
  in.family = inner6 ? Family::kIpv6 : Family::kIpv4;
  const IpAddr to = ip(backend);
  const IpAddr from = to.is_v4() ? ip("10.0.0.1") : ip("fd00::1");
  const MacAddr mac{};
  EncapParams p;
  p.kind = kind;
  p.backend = &to;
  p.outer_src = &from;
  p.src_mac = &mac;
  p.dst_mac = &mac;
  p.gue_port = port;
  uint32_t len = 0;
  uint8_t* f = encapsulate(in, buf.data(), p, 0, &len);
  return Bytes(f, f + len);
}

bool passes(int rx, int tx, const Bytes& frame) {
  if (::send(tx, frame.data(), frame.size(), 0) != static_cast<ssize_t>(frame.size())) {
    throw std::runtime_error("send on the socket pair failed");
  }
  uint8_t buf[4096];
  const ssize_t n = ::recv(rx, buf, sizeof buf, MSG_DONTWAIT);
  if (n < 0) return false;
  if (static_cast<size_t>(n) != frame.size()) throw std::runtime_error("filter trimmed a frame");
  return true;
}

TEST(AgentFilter, LetsOnlyTunnelPacketsForUsThrough) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
  const std::vector<sock_filter> code = build_tunnel_filter(filter_config());
  sock_fprog prog{static_cast<unsigned short>(code.size()), const_cast<sock_filter*>(code.data())};
  ASSERT_EQ(::setsockopt(sv[0], SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog), 0) << std::strerror(errno);

  EXPECT_TRUE(passes(sv[0], sv[1], encap_frame(Encap::kIpip, "10.1.0.1")));
  EXPECT_TRUE(passes(sv[0], sv[1], encap_frame(Encap::kIpip, "10.1.0.1", true)));
  EXPECT_TRUE(passes(sv[0], sv[1], encap_frame(Encap::kGre, "10.1.0.1")));
  EXPECT_TRUE(passes(sv[0], sv[1], encap_frame(Encap::kGue, "10.1.0.1")));
  EXPECT_TRUE(passes(sv[0], sv[1], encap_frame(Encap::kIpip, "fd00:1::1")));
  EXPECT_TRUE(passes(sv[0], sv[1], encap_frame(Encap::kIpip, "fd00:1::1", true)));
  EXPECT_TRUE(passes(sv[0], sv[1], encap_frame(Encap::kGre, "fd00:1::1", true)));
  EXPECT_TRUE(passes(sv[0], sv[1], encap_frame(Encap::kGue, "fd00:1::1")));

  // Someone else's tunnels, other GUE ports, ordinary traffic, not IP at all.
  EXPECT_FALSE(passes(sv[0], sv[1], encap_frame(Encap::kIpip, "10.1.0.2")));
  EXPECT_FALSE(passes(sv[0], sv[1], encap_frame(Encap::kGre, "fd00:1::2")));
  EXPECT_FALSE(passes(sv[0], sv[1], encap_frame(Encap::kGue, "10.1.0.1", false, 6081)));
  EXPECT_FALSE(passes(sv[0], sv[1], encap_frame(Encap::kGue, "fd00:1::1", false, 53)));
  EXPECT_FALSE(passes(sv[0], sv[1], testing::flow_frame("10.0.0.9", "10.1.0.1", {})));
  EXPECT_FALSE(passes(sv[0], sv[1], testing::flow_frame("fd00::9", "fd00:1::1", {})));
  Bytes arp(60, 0);
  store_be16(&arp[12], 0x0806);
  EXPECT_FALSE(passes(sv[0], sv[1], arp));

  // GUE behind IPv4 options: the port is found through the header length.
  const Bytes opt = encap_frame(Encap::kGue, "10.1.0.1");
  Bytes with_opts(opt.size() + 4, 1);  // four NOP options after the 20-byte header
  std::memcpy(with_opts.data(), opt.data(), 34);
  std::memcpy(with_opts.data() + 38, opt.data() + 34, opt.size() - 34);
  with_opts[14] = 0x46;
  EXPECT_TRUE(passes(sv[0], sv[1], with_opts));
  // A non-first UDP fragment shows no port: refused.
  Bytes frag = encap_frame(Encap::kGue, "10.1.0.1");
  store_be16(&frag[20], 0x0010);
  EXPECT_FALSE(passes(sv[0], sv[1], frag));

  // Without an IPv6 address, IPv6 is refused; without GUE ports, UDP is.
  DecapConfig v4only = filter_config();
  v4only.ipv6 = IpAddr{};
  v4only.gue_port_count = 0;
  const std::vector<sock_filter> code2 = build_tunnel_filter(v4only);
  sock_fprog prog2{static_cast<unsigned short>(code2.size()), const_cast<sock_filter*>(code2.data())};
  ASSERT_EQ(::setsockopt(sv[0], SOL_SOCKET, SO_ATTACH_FILTER, &prog2, sizeof prog2), 0);
  EXPECT_TRUE(passes(sv[0], sv[1], encap_frame(Encap::kIpip, "10.1.0.1")));
  EXPECT_FALSE(passes(sv[0], sv[1], encap_frame(Encap::kIpip, "fd00:1::1")));
  EXPECT_FALSE(passes(sv[0], sv[1], encap_frame(Encap::kGue, "10.1.0.1")));
  ::close(sv[0]);
  ::close(sv[1]);
}

TEST(AgentConfigCheck, RefusesBadConfigurations) {
  AgentConfig c;
  c.interface = "eth0";
  c.tun = "l4tun0";
  c.decap = filter_config();
  EXPECT_NO_THROW(Agent{c});
  AgentConfig bad = c;
  bad.decap.ipv4 = IpAddr{};
  bad.decap.ipv6 = IpAddr{};
  EXPECT_THROW(Agent{bad}, std::invalid_argument);
  bad = c;
  bad.tun = "eth0";
  EXPECT_THROW(Agent{bad}, std::invalid_argument);
  bad = c;
  bad.interface = "an-interface-name-too-long";
  EXPECT_THROW(Agent{bad}, std::invalid_argument);
  bad = c;
  bad.decap.gue_ports[1] = 6080;
  bad.decap.gue_port_count = 2;
  EXPECT_THROW(Agent{bad}, std::invalid_argument);
  // No open relay: the mux sources and the VIPs must be named.
  bad = c;
  bad.decap.mux_sources.clear();
  EXPECT_THROW(Agent{bad}, std::invalid_argument);
  bad = c;
  bad.decap.vips.clear();
  EXPECT_THROW(Agent{bad}, std::invalid_argument);
  bad = c;
  bad.decap.mux_sources = {IpPrefix{ip("10.1.0.0"), 33}};
  EXPECT_THROW(Agent{bad}, std::invalid_argument);
}

// ---------------------------------------------------------------------------------------
// Namespaces

std::string run(const std::string& cmd, int* status = nullptr) {
  std::string out;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) throw std::runtime_error("popen " + cmd);
  char buf[512];
  while (std::fgets(buf, sizeof buf, p) != nullptr) out += buf;
  const int rc = ::pclose(p);
  if (status != nullptr) *status = rc;
  return out;
}

void must(const std::string& cmd) {
  int status = 0;
  const std::string out = run(cmd, &status);
  if (status != 0) throw std::runtime_error("command failed: " + cmd + "\n" + out);
}

// Moves the calling thread into a named namespace for its lifetime.
class InNetns {
 public:
  explicit InNetns(const std::string& name) {
    self_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    const int fd = ::open(("/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC);
    if (self_ < 0 || fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) {
      if (fd >= 0) ::close(fd);
      throw std::runtime_error("setns " + name + ": " + std::strerror(errno));
    }
    ::close(fd);
  }
  ~InNetns() {
    if (::setns(self_, CLONE_NEWNET) != 0) std::abort();  // a thread left in a test namespace
    ::close(self_);
  }
  InNetns(const InNetns&) = delete;
  InNetns& operator=(const InNetns&) = delete;

 private:
  int self_ = -1;
};

constexpr uint16_t kTcpPort = 8080;
constexpr uint16_t kUdpPort = 9090;
constexpr uint32_t kGreKey = 0x1234;
const char* const kVip4 = "192.0.2.10";
const char* const kVip6 = "2001:db8::10";
const char* const kClient4 = "198.51.100.7";
const char* const kClient6 = "2001:db8:c::7";
const MacAddr kClientMac = {0x02, 0x77, 0, 0, 0, 0x01};
const MacAddr kBackendMac = {0x02, 0x77, 0, 0, 0, 0x02};

sockaddr_storage sockaddr_of(const std::string& addr, uint16_t port, socklen_t* len) {
  sockaddr_storage ss{};
  if (addr.find(':') == std::string::npos) {
    auto* s = reinterpret_cast<sockaddr_in*>(&ss);
    s->sin_family = AF_INET;
    s->sin_port = htons(port);
    ::inet_pton(AF_INET, addr.c_str(), &s->sin_addr);
    *len = sizeof(sockaddr_in);
  } else {
    auto* s = reinterpret_cast<sockaddr_in6*>(&ss);
    s->sin6_family = AF_INET6;
    s->sin6_port = htons(port);
    ::inet_pton(AF_INET6, addr.c_str(), &s->sin6_addr);
    *len = sizeof(sockaddr_in6);
  }
  return ss;
}

int bound_socket(const std::string& addr, uint16_t port, int type) {
  socklen_t len = 0;
  const sockaddr_storage ss = sockaddr_of(addr, port, &len);
  const int fd = ::socket(ss.ss_family, type | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (ss.ss_family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&ss), len) != 0) {
    const int err = errno;
    ::close(fd);
    throw std::runtime_error("bind " + addr + ": " + std::strerror(err));
  }
  return fd;
}

struct MuxParams {
  Encap kind = Encap::kIpip;
  Family outer = Family::kIpv4;
  bool has_key = false;
  uint32_t key = 0;
};

class AgentNetns : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces, AF_PACKET, TUN)";
    if (::access("/dev/net/tun", R_OK | W_OK) != 0) GTEST_SKIP() << "no /dev/net/tun";
    int status = 0;
    run("ip -V", &status);
    if (status != 0) GTEST_SKIP() << "iproute2 (ip) not installed";

    try {
      client_ns_.emplace("l4agent-client");
      backend_ns_.emplace("l4agent-backend");
      client_ = client_ns_->name();
      backend_ = backend_ns_->name();
      setup_namespaces();
    } catch (const std::exception& e) {
      FAIL() << e.what();
    }
  }

  void TearDown() override {
    stop_threads();
    agent_.reset();
    // Always, even after a failed assertion: deleting the namespaces also removes the veth pair.
    client_ns_.reset();
    backend_ns_.reset();
  }

  std::string in(const std::string& ns, const std::string& cmd) { return "ip netns exec " + ns + " " + cmd; }

  void setup_namespaces() {
    const std::string c = "ip -n " + client_ + " ";
    const std::string b = "ip -n " + backend_ + " ";
    // The veth pair is created inside the client namespace with its peer placed directly in
    // the backend one: neither end ever exists in the root namespace.
    must(c + "link add veth0 address 02:77:00:00:00:01 type veth peer name veth0 address 02:77:00:00:00:02 netns " + backend_);
    for (const std::string& ns : {c, b}) {
      must(ns + "link set lo up");
      must(ns + "link set veth0 up");
    }
    must(c + "addr add 10.77.0.1/24 dev veth0");
    must(c + "-6 addr add fd77::1/64 dev veth0 nodad");
    must(c + "addr add " + kClient4 + "/32 dev lo");
    must(c + "-6 addr add " + std::string(kClient6) + "/128 dev lo nodad");
    must(b + "addr add 10.77.0.2/24 dev veth0");
    must(b + "-6 addr add fd77::2/64 dev veth0 nodad");
    // The backend reaches clients through its normal routes, not through any tunnel.
    must(b + "route add 198.51.100.0/24 via 10.77.0.1");
    must(b + "-6 route add 2001:db8:c::/64 via fd77::1");
    // Worst case on purpose: strict reverse-path filtering everywhere in the backend.
    must(in(backend_, "sysctl -qw net.ipv4.conf.all.rp_filter=1"));
    must(in(backend_, "sysctl -qw net.ipv4.conf.default.rp_filter=1"));
    // The client side plays the mux too: the VIPs are routed to its TUN, while replies
    // from them come in on veth0, so it must not filter by reverse path.
    must(in(client_, "sysctl -qw net.ipv4.conf.all.rp_filter=0"));
    must(in(client_, "sysctl -qw net.ipv4.conf.default.rp_filter=0"));
    must(in(client_, "sysctl -qw net.ipv4.conf.veth0.rp_filter=0"));
  }

  // What `l4mux agent` (src/agent) does around the native agent, done by hand here.
  void start_agent(bool suppress_icmp) {
    AgentConfig cfg;
    cfg.interface = "veth0";
    cfg.tun = "l4tun0";
    cfg.decap.ipv4 = ip("10.77.0.2");
    cfg.decap.ipv6 = ip("fd77::2");
    cfg.decap.gue_ports[0] = kDefaultGuePort;
    cfg.decap.gue_port_count = 1;
    cfg.decap.has_gre_key = true;
    cfg.decap.gre_key = kGreKey;
    cfg.decap.mux_sources = {IpPrefix{ip("10.77.0.0"), 24}, IpPrefix{ip("fd77::"), 64}};
    cfg.decap.vips = {ip(kVip4), ip(kVip6)};
    cfg.suppress_icmp = suppress_icmp;
    agent_ = std::make_unique<Agent>(cfg);
    {
      InNetns ns(backend_);
      agent_->start();
    }
    const std::string b = "ip -n " + backend_ + " ";
    must(b + "link set dev l4tun0 addrgenmode none");
    must(b + "addr add " + std::string(kVip4) + "/32 dev l4tun0");
    must(b + "-6 addr add " + std::string(kVip6) + "/128 dev l4tun0 nodad");
    must(in(backend_, "sysctl -qw net.ipv4.conf.l4tun0.rp_filter=2"));
  }

  void start_servers() {
    InNetns ns(backend_);
    for (const char* vip : {kVip4, kVip6}) {
      const int l = bound_socket(vip, kTcpPort, SOCK_STREAM);
      if (::listen(l, 8) != 0) throw std::runtime_error("listen");
      server_fds_.push_back(l);
      server_fds_.push_back(bound_socket(vip, kUdpPort, SOCK_DGRAM));
    }
    servers_ = std::thread([this] { serve(); });
  }

  void serve() {
    std::vector<pollfd> fds;
    for (int fd : server_fds_) fds.push_back({fd, POLLIN, 0});
    while (!stop_.load()) {
      if (::poll(fds.data(), fds.size(), 50) <= 0) continue;
      for (const pollfd& p : fds) {
        if (!(p.revents & POLLIN)) continue;
        int type = 0;
        socklen_t tl = sizeof type;
        ::getsockopt(p.fd, SOL_SOCKET, SO_TYPE, &type, &tl);
        char buf[2048];
        if (type == SOCK_DGRAM) {
          sockaddr_storage from{};
          socklen_t fl = sizeof from;
          const ssize_t n = ::recvfrom(p.fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &fl);
          if (n > 0) ::sendto(p.fd, buf, static_cast<size_t>(n), 0, reinterpret_cast<sockaddr*>(&from), fl);
          continue;
        }
        const int conn = ::accept4(p.fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (conn < 0) continue;
        timeval tv{2, 0};
        ::setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        const ssize_t n = ::recv(conn, buf, sizeof buf, 0);
        if (n > 0) ::send(conn, buf, static_cast<size_t>(n), MSG_NOSIGNAL);
        ::close(conn);
      }
    }
  }

  // The mux's role: a TUN device that the client's VIP routes point to; every packet read
  // from it is encapsulated by the mux's encapsulate() and sent to the backend's MAC.
  void start_mux() {
    InNetns ns(client_);
    mux_tun_ = std::make_unique<Tun>("mux0", true);
    const std::string c = "ip -n " + client_ + " ";
    must(c + "link set dev mux0 addrgenmode none mtu 1400");
    must(c + "route add " + std::string(kVip4) + "/32 dev mux0");
    must(c + "-6 route add " + std::string(kVip6) + "/128 dev mux0");
    mux_fd_ = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (mux_fd_ < 0) throw std::runtime_error("mux AF_PACKET socket");
    mux_ifindex_ = static_cast<int>(::if_nametoindex("veth0"));
    mux_ = std::thread([this] { mux_loop(); });
  }

  void mux_loop() {
    constexpr uint32_t kHeadroom = 128;
    std::vector<uint8_t> buf(kHeadroom + 2048);
    const IpAddr mux4 = ip("10.77.0.1"), mux6 = ip("fd77::1");
    const IpAddr backend4 = ip("10.77.0.2"), backend6 = ip("fd77::2");
    pollfd p{mux_tun_->fd(), POLLIN, 0};
    while (!stop_.load()) {
      if (::poll(&p, 1, 50) <= 0) continue;
      const long n = mux_tun_->read_packet(buf.data() + kHeadroom, 2048);
      if (n <= 0) continue;
      MuxParams mp;
      {
        std::lock_guard<std::mutex> lock(mux_mutex_);
        mp = mux_params_;
      }
      InnerPacket in;
      in.ip = buf.data() + kHeadroom;
      in.length = static_cast<uint32_t>(n);
      in.family = (in.ip[0] >> 4) == 4 ? Family::kIpv4 : Family::kIpv6;
      if (in.family == Family::kIpv4) {
        in.traffic_class = in.ip[1];
        in.dont_fragment = (load_be16(in.ip + 6) & 0x4000) != 0;
      }
      EncapParams e;
      e.kind = mp.kind;
      e.outer_src = mp.outer == Family::kIpv4 ? &mux4 : &mux6;
      e.backend = mp.outer == Family::kIpv4 ? &backend4 : &backend6;
      e.has_gre_key = mp.has_key;
      e.gre_key = mp.key;
      e.src_mac = &kClientMac;
      e.dst_mac = &kBackendMac;
      uint32_t len = 0;
      uint8_t* frame = encapsulate(in, buf.data(), e, static_cast<uint64_t>(n) * 0x9e3779b97f4a7c15ULL, &len);
      if (frame == nullptr) continue;
      sockaddr_ll to{};
      to.sll_family = AF_PACKET;
      to.sll_ifindex = mux_ifindex_;
      to.sll_halen = 6;
      std::memcpy(to.sll_addr, kBackendMac.data(), 6);
      if (::sendto(mux_fd_, frame, len, 0, reinterpret_cast<const sockaddr*>(&to), sizeof to) == static_cast<ssize_t>(len)) {
        mux_sent_.fetch_add(1);
        if (mp.kind == Encap::kGre && !mp.has_key) mux_sent_keyless_gre_.fetch_add(1);
      }
    }
  }

  void set_mux(const MuxParams& p) {
    std::lock_guard<std::mutex> lock(mux_mutex_);
    mux_params_ = p;
  }

  void stop_threads() {
    stop_.store(true);
    if (servers_.joinable()) servers_.join();
    if (mux_.joinable()) mux_.join();
    for (int fd : server_fds_) ::close(fd);
    server_fds_.clear();
    if (mux_fd_ >= 0) ::close(mux_fd_);
    mux_fd_ = -1;
    mux_tun_.reset();
  }

  // One TCP connection from the client to the VIP: connect, send, read the echo. Returns
  // the echo ("" on failure, with the reason in *why).
  std::string tcp_exchange(const std::string& vip, const std::string& message, std::string* why) {
    InNetns ns(client_);
    const int fd = bound_socket(vip.find(':') == std::string::npos ? kClient4 : kClient6, 0, SOCK_STREAM | SOCK_NONBLOCK);
    socklen_t len = 0;
    const sockaddr_storage to = sockaddr_of(vip, kTcpPort, &len);
    std::string out;
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&to), len) != 0 && errno != EINPROGRESS) {
      *why = std::string("connect: ") + std::strerror(errno);
    } else {
      pollfd p{fd, POLLOUT, 0};
      int err = 0;
      socklen_t el = sizeof err;
      if (::poll(&p, 1, 3000) != 1 || ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err != 0) {
        *why = "no connection (SYN-ACK never came back)" + (err ? std::string(": ") + std::strerror(err) : "");
      } else if (::send(fd, message.data(), message.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(message.size())) {
        *why = "send failed";
      } else {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
        char buf[512];
        while (out.size() < message.size() && std::chrono::steady_clock::now() < deadline) {
          pollfd r{fd, POLLIN, 0};
          if (::poll(&r, 1, 100) != 1) continue;
          const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
          if (n <= 0) break;
          out.append(buf, static_cast<size_t>(n));
        }
        if (out.empty()) *why = "no echo";
      }
    }
    ::close(fd);
    return out;
  }

  std::string udp_exchange(const std::string& vip, const std::string& message, std::string* why) {
    InNetns ns(client_);
    const int fd = bound_socket(vip.find(':') == std::string::npos ? kClient4 : kClient6, 0, SOCK_DGRAM);
    socklen_t len = 0;
    const sockaddr_storage to = sockaddr_of(vip, kUdpPort, &len);
    std::string out;
    for (int attempt = 0; attempt < 3 && out.empty(); ++attempt) {
      ::sendto(fd, message.data(), message.size(), 0, reinterpret_cast<const sockaddr*>(&to), len);
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 1000) != 1) continue;
      char buf[512];
      sockaddr_storage from{};
      socklen_t fl = sizeof from;
      const ssize_t n = ::recvfrom(fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &fl);
      if (n > 0 && std::memcmp(&from, &to, len) == 0) out.assign(buf, static_cast<size_t>(n));
    }
    if (out.empty()) *why = "no UDP echo from the VIP";
    ::close(fd);
    return out;
  }

  // The backend kernel's ICMP error counters (per namespace, from /proc/net/snmp*).
  std::map<std::string, long> icmp_errors() {
    std::map<std::string, long> out;
    std::istringstream snmp(run(in(backend_, "cat /proc/net/snmp")));
    std::string header, values, line;
    while (std::getline(snmp, line)) {
      if (line.rfind("Icmp: ", 0) != 0) continue;
      if (header.empty()) {
        header = line;
        continue;
      }
      values = line;
      break;
    }
    std::istringstream h(header), v(values);
    std::string name, value;
    while (h >> name && v >> value) {
      if (name == "OutDestUnreachs") out["icmp4_out_dest_unreach"] = std::stol(value);
    }
    std::istringstream snmp6(run(in(backend_, "cat /proc/net/snmp6")));
    while (snmp6 >> name >> value) {
      if (name == "Icmp6OutDestUnreachs") out["icmp6_out_dest_unreach"] = std::stol(value);
      if (name == "Icmp6OutParmProblems") out["icmp6_out_param_problem"] = std::stol(value);
    }
    return out;
  }

  std::optional<testing::NamedNetns> client_ns_;
  std::optional<testing::NamedNetns> backend_ns_;
  std::string client_;
  std::string backend_;
  std::unique_ptr<Agent> agent_;
  std::unique_ptr<Tun> mux_tun_;
  int mux_fd_ = -1;
  int mux_ifindex_ = 0;
  std::mutex mux_mutex_;
  MuxParams mux_params_;
  std::atomic<uint64_t> mux_sent_{0};
  std::atomic<uint64_t> mux_sent_keyless_gre_{0};
  std::vector<int> server_fds_;
  std::thread servers_;
  std::thread mux_;
  std::atomic<bool> stop_{false};
};

struct Case {
  const char* name;
  Encap kind;
  Family outer;
  Family inner;
  AgentTunnel tunnel;
};

TEST_F(AgentNetns, RealTcpAndUdpThroughEveryTunnelWithDirectReturn) {
  ASSERT_NO_THROW(start_agent(true));
  ASSERT_NO_THROW(start_servers());
  ASSERT_NO_THROW(start_mux());
  const std::map<std::string, long> icmp_before = icmp_errors();

  const Case cases[] = {
      {"ipip 4in4", Encap::kIpip, Family::kIpv4, Family::kIpv4, AgentTunnel::k4in4},
      {"ipip 6in6", Encap::kIpip, Family::kIpv6, Family::kIpv6, AgentTunnel::k6in6},
      {"ipip 4in6", Encap::kIpip, Family::kIpv6, Family::kIpv4, AgentTunnel::k4in6},
      {"ipip 6in4", Encap::kIpip, Family::kIpv4, Family::kIpv6, AgentTunnel::k6in4},
      {"gre key 4in4", Encap::kGre, Family::kIpv4, Family::kIpv4, AgentTunnel::k4in4},
      {"gre key 6in6", Encap::kGre, Family::kIpv6, Family::kIpv6, AgentTunnel::k6in6},
      {"gre key 4in6", Encap::kGre, Family::kIpv6, Family::kIpv4, AgentTunnel::k4in6},
      {"gue 4in4", Encap::kGue, Family::kIpv4, Family::kIpv4, AgentTunnel::k4in4},
      {"gue 6in6", Encap::kGue, Family::kIpv6, Family::kIpv6, AgentTunnel::k6in6},
      {"gue 6in4", Encap::kGue, Family::kIpv4, Family::kIpv6, AgentTunnel::k6in4},
  };
  const AgentCounters& c = agent_->counters();
  for (const Case& k : cases) {
    SCOPED_TRACE(k.name);
    set_mux({k.kind, k.outer, k.kind == Encap::kGre, kGreKey});
    const uint64_t encap_before = c.by_encap[static_cast<size_t>(k.kind)].get();
    const uint64_t tunnel_before = c.by_tunnel[static_cast<size_t>(k.tunnel)].get();
    const std::string vip = k.inner == Family::kIpv4 ? kVip4 : kVip6;
    std::string why;
    const std::string message = std::string("hello over ") + k.name;
    EXPECT_EQ(tcp_exchange(vip, message, &why), message) << why;
    why.clear();
    EXPECT_EQ(udp_exchange(vip, "udp " + message, &why), "udp " + message) << why;
    // SYN, ACK, data, FIN... and the datagram: all decapsulated by this kind of tunnel.
    EXPECT_GE(c.by_encap[static_cast<size_t>(k.kind)].get() - encap_before, 4u);
    EXPECT_GE(c.by_tunnel[static_cast<size_t>(k.tunnel)].get() - tunnel_before, 4u);
  }

  // A keyless GRE packet is not this tunnel's: refused and counted, nothing answers.
  set_mux({Encap::kGre, Family::kIpv4, false, 0});
  std::string why;
  {
    InNetns ns(client_);
    const int fd = bound_socket(kClient4, 0, SOCK_DGRAM);
    socklen_t len = 0;
    const sockaddr_storage to = sockaddr_of(kVip4, kUdpPort, &len);
    ::sendto(fd, "x", 1, 0, reinterpret_cast<const sockaddr*>(&to), len);
    ::close(fd);
  }
  for (int i = 0; i < 50 && c.status[static_cast<size_t>(DecapStatus::kGreWrongKey)].get() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // The datagram above, and whatever the client's stack still sent for the last TCP
  // connection (a late ACK or retransmission on a loaded machine): every keyless packet the
  // mux sent is refused, however many there were. Keyed again, the mux sends no more of them.
  set_mux({Encap::kGre, Family::kIpv4, true, kGreKey});
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const uint64_t keyless = mux_sent_keyless_gre_.load();
  EXPECT_GE(keyless, 1u);
  EXPECT_EQ(c.status[static_cast<size_t>(DecapStatus::kGreWrongKey)].get(), keyless);

  // Every frame the filter let through was a tunnel packet for us; all but the keyless
  // ones were decapsulated and injected; nothing was routed into the TUN device.
  EXPECT_GT(c.decapsulated.get(), 40u);
  EXPECT_EQ(c.rx_frames.get(), c.decapsulated.get() + keyless);
  EXPECT_EQ(c.tun_packets.get(), c.decapsulated.get());
  EXPECT_EQ(c.tun_errors.get(), 0u);
  EXPECT_EQ(c.tun_discarded.get(), 0u);
  EXPECT_EQ(c.rx_truncated.get(), 0u);
  for (size_t s = 0; s < kDecapStatusCount; ++s) {
    const auto st = static_cast<DecapStatus>(s);
    if (st == DecapStatus::kOk || st == DecapStatus::kGreWrongKey) continue;
    EXPECT_EQ(c.status[s].get(), 0u) << decap_status_name(st);
  }
  // No ICMP error for any of the tunnel packets the kernel saw too.
  EXPECT_EQ(icmp_errors(), icmp_before);
  EXPECT_TRUE(agent_->running());
  EXPECT_EQ(agent_->loop_error(), "");
}

// The control: without the suppression sockets the backend kernel does answer tunnel
// packets with ICMP errors, so the check above can fail.
TEST_F(AgentNetns, WithoutSuppressionTheKernelAnswersTunnelsWithIcmpErrors) {
  ASSERT_NO_THROW(start_agent(false));
  ASSERT_NO_THROW(start_servers());
  ASSERT_NO_THROW(start_mux());
  std::map<std::string, long> before = icmp_errors();
  std::string why;
  set_mux({Encap::kIpip, Family::kIpv4, false, 0});
  EXPECT_EQ(udp_exchange(kVip4, "a", &why), "a") << why;
  set_mux({Encap::kGue, Family::kIpv6, false, 0});
  EXPECT_EQ(udp_exchange(kVip6, "b", &why), "b") << why;
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::map<std::string, long> after = icmp_errors();
  EXPECT_GT(after["icmp4_out_dest_unreach"], before["icmp4_out_dest_unreach"]);   // protocol 4 unreachable
  EXPECT_GT(after["icmp6_out_dest_unreach"], before["icmp6_out_dest_unreach"]);   // GUE port unreachable
}

// GUE sent by an ordinary kernel UDP socket (a software mux could do that): over veth the
// outer UDP checksum arrives unfinished (CHECKSUM_PARTIAL, TP_STATUS_CSUMNOTREADY). The
// agent must not refuse it as a bad checksum, and injects the inner packet with a complete
// checksum.
TEST_F(AgentNetns, GueFromAKernelUdpSocketWithAnOffloadedChecksum) {
  ASSERT_NO_THROW(start_agent(true));
  ASSERT_NO_THROW(start_servers());
  InNetns ns(client_);
  const int reply = bound_socket(kClient4, 5555, SOCK_DGRAM);
  const int tunnel = bound_socket("10.77.0.1", 0, SOCK_DGRAM);
  const IpAddr client = ip(kClient4);
  const IpAddr vip = ip(kVip4);
  testing::L4Spec l4;
  l4.proto = kProtoUdp;
  l4.src_port = 5555;
  l4.dst_port = kUdpPort;
  l4.payload = Bytes{'p', 'a', 'r', 't'};
  const Bytes inner = testing::ip_packet({client, vip, kProtoUdp}, testing::l4_segment(client, vip, l4));
  socklen_t len = 0;
  const sockaddr_storage to = sockaddr_of("10.77.0.2", kDefaultGuePort, &len);
  std::string echo;
  for (int attempt = 0; attempt < 3 && echo.empty(); ++attempt) {
    ASSERT_EQ(::sendto(tunnel, inner.data(), inner.size(), 0, reinterpret_cast<const sockaddr*>(&to), len),
              static_cast<ssize_t>(inner.size()));
    pollfd p{reply, POLLIN, 0};
    if (::poll(&p, 1, 1000) != 1) continue;
    char buf[64];
    const ssize_t n = ::recv(reply, buf, sizeof buf, 0);
    if (n > 0) echo.assign(buf, static_cast<size_t>(n));
  }
  ::close(reply);
  ::close(tunnel);
  EXPECT_EQ(echo, "part");
  const AgentCounters& c = agent_->counters();
  EXPECT_EQ(c.status[static_cast<size_t>(DecapStatus::kUdpBadChecksum)].get(), 0u);
  EXPECT_GE(c.by_encap[static_cast<size_t>(Encap::kGue)].get(), 1u);
  EXPECT_GE(c.checksums_finalized.get(), 1u);
}

TEST_F(AgentNetns, StartFailsCleanlyAndStopRemovesTheTunDevice) {
  AgentConfig cfg;
  cfg.interface = "nosuch0";
  cfg.tun = "l4tun0";
  cfg.decap.ipv4 = ip("10.77.0.2");
  cfg.decap.mux_sources = {IpPrefix{ip("10.77.0.0"), 24}};
  cfg.decap.vips = {ip(kVip4)};
  {
    Agent a(cfg);
    InNetns ns(backend_);
    EXPECT_THROW(a.start(), std::system_error);
    EXPECT_FALSE(a.running());
  }
  // The failed start left no TUN device behind.
  EXPECT_EQ(run("ip -n " + backend_ + " -o link show l4tun0 2>/dev/null").find("l4tun0:"), std::string::npos);

  ASSERT_NO_THROW(start_agent(true));
  EXPECT_NE(run("ip -n " + backend_ + " -o addr show dev l4tun0").find(kVip4), std::string::npos);
  // A second agent for the same addresses and GUE port cannot start: the port is taken.
  AgentConfig dup = agent_->config();
  dup.tun = "l4tun1";
  {
    Agent second(dup);
    InNetns ns(backend_);
    EXPECT_THROW(second.start(), std::system_error);
  }
  agent_->stop();
  agent_->stop();  // idempotent
  EXPECT_FALSE(agent_->running());
  // The device went away with its descriptor, and the VIPs configured on it with it.
  EXPECT_EQ(run("ip -n " + backend_ + " -o link show").find("l4tun0"), std::string::npos);
  EXPECT_EQ(run("ip -n " + backend_ + " -o addr show").find(kVip4), std::string::npos);
  // Restartable after a stop.
  {
    InNetns ns(backend_);
    EXPECT_NO_THROW(agent_->start());
  }
  EXPECT_TRUE(agent_->running());
}

TEST_F(AgentNetns, LoopEndsWithAnErrorWhenTheInterfaceDisappears) {
  ASSERT_NO_THROW(start_agent(true));
  must("ip -n " + backend_ + " link del veth0");
  for (int i = 0; i < 500 && agent_->running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(agent_->running());
  EXPECT_NE(agent_->loop_error().find("veth0"), std::string::npos) << agent_->loop_error();
}

}  // namespace
}  // namespace l4mux
