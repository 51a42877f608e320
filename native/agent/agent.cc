#include "agent.h"

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include "bytes.h"
#include "checksum.h"

namespace l4mux {
namespace {

[[noreturn]] void fail(int err, const std::string& what) {
  throw std::system_error(err, std::generic_category(), "agent: " + what);
}

// Largest snap length the filter asks for (the frame slot bounds what is kept anyway).
constexpr uint32_t kSnapAll = 0x40000;

// A forward-only classic BPF assembler with named labels.
class BpfBuilder {
 public:
  static constexpr int kNext = -1;
  enum Label : int { kAccept = 0, kDrop, kV4, kV6, kLabelCount };

  void stmt(uint16_t code, uint32_t k) { code_.push_back(BPF_STMT(code, k)); }
  void jump(uint16_t code, uint32_t k, int jt, int jf) {
    fixups_.push_back({code_.size(), jt, jf});
    code_.push_back(BPF_JUMP(code, k, 0, 0));
  }
  void ja(int label) { jump(BPF_JMP | BPF_JA, 0, label, kNext); }
  void bind(Label label) { pos_[label] = static_cast<int>(code_.size()); }

  std::vector<sock_filter> finish() {
    for (const Fixup& f : fixups_) {
      sock_filter& insn = code_[f.at];
      const auto offset = [&](int label) -> uint32_t {
        if (label == kNext) return 0;
        const int target = pos_[static_cast<size_t>(label)];
        const int delta = target - static_cast<int>(f.at) - 1;
        if (target < 0 || delta < 0) throw std::logic_error("bpf: unbound or backward label");
        return static_cast<uint32_t>(delta);
      };
      if (BPF_OP(insn.code) == BPF_JA) {
        insn.k = offset(f.jt);
      } else {
        const uint32_t jt = offset(f.jt);
        const uint32_t jf = offset(f.jf);
        if (jt > 255 || jf > 255) throw std::logic_error("bpf: jump too long");
        insn.jt = static_cast<uint8_t>(jt);
        insn.jf = static_cast<uint8_t>(jf);
      }
    }
    return code_;
  }

 private:
  struct Fixup {
    size_t at;
    int jt;
    int jf;
  };
  std::vector<sock_filter> code_;
  std::vector<Fixup> fixups_;
  std::array<int, kLabelCount> pos_{-1, -1, -1, -1};
};

void emit_gue_ports(BpfBuilder& b, const DecapConfig& config) {
  for (uint8_t i = 0; i < config.gue_port_count && i < kMaxGuePorts; ++i) {
    b.jump(BPF_JMP | BPF_JEQ | BPF_K, config.gue_ports[i], BpfBuilder::kAccept, BpfBuilder::kNext);
  }
  b.ja(BpfBuilder::kDrop);
}

uint32_t word(const IpAddr& a, size_t i) { return load_be32(a.bytes.data() + 4 * i); }

AgentTunnel tunnel_of(Family outer, Family inner) {
  if (outer == Family::kIpv4) return inner == Family::kIpv4 ? AgentTunnel::k4in4 : AgentTunnel::k6in4;
  return inner == Family::kIpv6 ? AgentTunnel::k6in6 : AgentTunnel::k4in6;
}

// Completes the L4 checksum of an inner packet whose sender left it to offload
// (CHECKSUM_PARTIAL seen as TP_STATUS_CSUMNOTREADY). Recomputing a checksum that was
// already complete gives the same value, so it does not matter which of the outer and
// inner checksums was the partial one. Fragments and IPv6 extension headers are left alone.
bool finalize_inner_checksum(uint8_t* ip, uint32_t len, Family family) {
  if (family == Family::kIpv4) {
    const uint32_t ihl = uint32_t{ip[0] & 0x0fu} * 4;
    if ((load_be16(ip + 6) & kIpv4FragmentBits) != 0 || ihl > len) return false;
    return finalize_l4_checksum(ip + ihl, len - ihl, IpAddr::v4(ip + 12), IpAddr::v4(ip + 16), ip[9]);
  }
  return finalize_l4_checksum(ip + kIpv6HeaderLen, len - kIpv6HeaderLen, IpAddr::v6(ip + 8),
                              IpAddr::v6(ip + 24), ip[6]);
}

void set_int_option(int fd, int level, int name, int value, const std::string& what) {
  if (::setsockopt(fd, level, name, &value, sizeof value) < 0) fail(errno, what);
}

void attach_filter(int fd, const std::vector<sock_filter>& code, const std::string& what) {
  sock_fprog prog{};
  prog.len = static_cast<unsigned short>(code.size());
  prog.filter = const_cast<sock_filter*>(code.data());
  if (::setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) < 0) fail(errno, what);
}

std::string format(const IpAddr& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(a.is_v4() ? AF_INET : AF_INET6, a.bytes.data(), buf, sizeof buf);
  return buf;
}

}  // namespace

std::vector<sock_filter> build_tunnel_filter(const DecapConfig& config) {
  using B = BpfBuilder;
  B b;
  // Only frames addressed to this host: not our own transmissions (PACKET_OUTGOING), not
  // other hosts' frames seen in promiscuous mode, as the kernel's IP input would.
  b.stmt(BPF_LD | BPF_B | BPF_ABS, static_cast<uint32_t>(SKF_AD_OFF + SKF_AD_PKTTYPE));
  b.jump(BPF_JMP | BPF_JEQ | BPF_K, PACKET_HOST, B::kNext, B::kDrop);
  b.stmt(BPF_LD | BPF_H | BPF_ABS, 12);
  b.jump(BPF_JMP | BPF_JEQ | BPF_K, kEthTypeIpv4, B::kV4, B::kNext);
  b.jump(BPF_JMP | BPF_JEQ | BPF_K, kEthTypeIpv6, B::kV6, B::kDrop);

  // IPv4: destination (offset 14 + 16), protocol (14 + 9).
  b.bind(B::kV4);
  if (config.ipv4.is_v4()) {
    b.stmt(BPF_LD | BPF_W | BPF_ABS, 30);
    b.jump(BPF_JMP | BPF_JEQ | BPF_K, word(config.ipv4, 0), B::kNext, B::kDrop);
    b.stmt(BPF_LD | BPF_B | BPF_ABS, 23);
    b.jump(BPF_JMP | BPF_JEQ | BPF_K, kProtoIpip, B::kAccept, B::kNext);
    b.jump(BPF_JMP | BPF_JEQ | BPF_K, kProtoIpv6, B::kAccept, B::kNext);
    b.jump(BPF_JMP | BPF_JEQ | BPF_K, kProtoGre, B::kAccept, B::kNext);
    if (config.gue_port_count > 0) {
      b.jump(BPF_JMP | BPF_JEQ | BPF_K, kProtoUdp, B::kNext, B::kDrop);
      // Non-first fragments have no UDP header to look at.
      b.stmt(BPF_LD | BPF_H | BPF_ABS, 20);
      b.jump(BPF_JMP | BPF_JSET | BPF_K, kIpv4FragmentOffsetMask, B::kDrop, B::kNext);
      b.stmt(BPF_LDX | BPF_B | BPF_MSH, 14);          // X = IPv4 header length
      b.stmt(BPF_LD | BPF_H | BPF_IND, 14 + 2);       // UDP destination port
      emit_gue_ports(b, config);
    } else {
      b.ja(B::kDrop);
    }
  } else {
    b.ja(B::kDrop);
  }

  // IPv6: destination (14 + 24, four words), next header (14 + 6).
  b.bind(B::kV6);
  if (config.ipv6.is_v6()) {
    for (size_t i = 0; i < 4; ++i) {
      b.stmt(BPF_LD | BPF_W | BPF_ABS, static_cast<uint32_t>(38 + 4 * i));
      b.jump(BPF_JMP | BPF_JEQ | BPF_K, word(config.ipv6, i), B::kNext, B::kDrop);
    }
    b.stmt(BPF_LD | BPF_B | BPF_ABS, 20);
    b.jump(BPF_JMP | BPF_JEQ | BPF_K, kProtoIpip, B::kAccept, B::kNext);
    b.jump(BPF_JMP | BPF_JEQ | BPF_K, kProtoIpv6, B::kAccept, B::kNext);
    b.jump(BPF_JMP | BPF_JEQ | BPF_K, kProtoGre, B::kAccept, B::kNext);
    // Fragments to us are let through only to be counted (outer_fragment).
    b.jump(BPF_JMP | BPF_JEQ | BPF_K, kIpv6Fragment, B::kAccept, B::kNext);
    if (config.gue_port_count > 0) {
      b.jump(BPF_JMP | BPF_JEQ | BPF_K, kProtoUdp, B::kNext, B::kDrop);
      b.stmt(BPF_LD | BPF_H | BPF_ABS, 14 + 40 + 2);
      emit_gue_ports(b, config);
    } else {
      b.ja(B::kDrop);
    }
  } else {
    b.ja(B::kDrop);
  }

  b.bind(B::kAccept);
  b.stmt(BPF_RET | BPF_K, kSnapAll);
  b.bind(B::kDrop);
  b.stmt(BPF_RET | BPF_K, 0);
  return b.finish();
}

Agent::Agent(AgentConfig config) : config_(std::move(config)) {
  if (config_.interface.empty() || config_.interface.size() >= IFNAMSIZ) {
    throw std::invalid_argument("agent: interface name must have 1 to 15 characters");
  }
  if (config_.tun.empty() || config_.tun.size() >= IFNAMSIZ) {
    throw std::invalid_argument("agent: tun name must have 1 to 15 characters");
  }
  if (config_.tun == config_.interface) throw std::invalid_argument("agent: tun and interface must differ");
  const DecapConfig& d = config_.decap;
  if (!d.ipv4.is_v4() && !d.ipv6.is_v6()) {
    throw std::invalid_argument("agent: at least one backend address (IPv4 or IPv6) is required");
  }
  if (d.ipv4.family != Family::kNone && !d.ipv4.is_v4()) throw std::invalid_argument("agent: ipv4 is not IPv4");
  if (d.ipv6.family != Family::kNone && !d.ipv6.is_v6()) throw std::invalid_argument("agent: ipv6 is not IPv6");
  if (d.mux_sources.empty()) {
    throw std::invalid_argument("agent: at least one mux source prefix is required (0.0.0.0/0 or ::/0 accepts any)");
  }
  for (const IpPrefix& p : d.mux_sources) {
    if (!p.addr.is_v4() && !p.addr.is_v6()) throw std::invalid_argument("agent: mux source without an address family");
    if (p.length > (p.addr.is_v4() ? 32 : 128)) throw std::invalid_argument("agent: mux source prefix length out of range");
  }
  if (d.vips.empty()) throw std::invalid_argument("agent: at least one VIP is required");
  for (const IpAddr& v : d.vips) {
    if (!v.is_v4() && !v.is_v6()) throw std::invalid_argument("agent: VIP without an address family");
  }
  config_.decap.sort_vips();
  if (d.gue_port_count > kMaxGuePorts) throw std::invalid_argument("agent: at most 8 GUE ports");
  for (uint8_t i = 0; i < d.gue_port_count; ++i) {
    if (d.gue_ports[i] == 0) throw std::invalid_argument("agent: GUE port 0");
    for (uint8_t j = 0; j < i; ++j) {
      if (d.gue_ports[i] == d.gue_ports[j]) throw std::invalid_argument("agent: duplicate GUE port");
    }
  }
  if (config_.batch == 0 || config_.batch > 1024) throw std::invalid_argument("agent: batch must be 1..1024");
  if (config_.frame_size < 2048 || config_.frame_size > (1u << 20)) {
    throw std::invalid_argument("agent: frame_size must be 2048..1048576");
  }
  if (config_.poll_timeout_ms <= 0) config_.poll_timeout_ms = 200;
}

Agent::~Agent() { stop(); }

std::string Agent::loop_error() const {
  std::lock_guard<std::mutex> lock(error_mutex_);
  return loop_error_;
}

std::string Agent::tun_name() const { return tun_ ? tun_->name() : config_.tun; }

void Agent::open_packet_socket() {
  ifindex_ = static_cast<int>(::if_nametoindex(config_.interface.c_str()));
  if (ifindex_ == 0) fail(errno, "interface " + config_.interface + " not found in this network namespace");

  // Protocol 0 until bind: nothing is queued before the filter is in place.
  packet_fd_ = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (packet_fd_ < 0) fail(errno, "AF_PACKET socket (needs CAP_NET_RAW)");
  attach_filter(packet_fd_, build_tunnel_filter(config_.decap), "SO_ATTACH_FILTER on the packet socket");
  // The filter already refuses our own transmissions; this skips even cloning them.
  const int one = 1;
  (void)::setsockopt(packet_fd_, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
  set_int_option(packet_fd_, SOL_PACKET, PACKET_AUXDATA, 1, "PACKET_AUXDATA");
  const int rcvbuf = 4 << 20;
  if (::setsockopt(packet_fd_, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0) {
    (void)::setsockopt(packet_fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  }
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = ifindex_;
  if (::bind(packet_fd_, reinterpret_cast<const sockaddr*>(&sll), sizeof sll) < 0) {
    fail(errno, "bind the packet socket to " + config_.interface);
  }
}

void Agent::open_sinks() {
  static const std::vector<sock_filter> kDropAll = {BPF_STMT(BPF_RET | BPF_K, 0)};
  const DecapConfig& d = config_.decap;
  auto sink = [&](int family, int type, int proto, const IpAddr& addr, uint16_t port, const std::string& what) {
    const int fd = ::socket(family, type | SOCK_CLOEXEC | SOCK_NONBLOCK, proto);
    if (fd < 0) fail(errno, what + ": socket");
    sink_fds_.push_back(fd);
    attach_filter(fd, kDropAll, what + ": SO_ATTACH_FILTER");
    // Bound before the address is configured (or while IPv6 DAD still runs) is fine.
    if (family == AF_INET) {
      set_int_option(fd, SOL_IP, IP_FREEBIND, 1, what + ": IP_FREEBIND");
    } else {
      set_int_option(fd, SOL_IPV6, IPV6_FREEBIND, 1, what + ": IPV6_FREEBIND");
      if (type == SOCK_DGRAM) set_int_option(fd, SOL_IPV6, IPV6_V6ONLY, 1, what + ": IPV6_V6ONLY");
    }
    int rc;
    if (family == AF_INET) {
      sockaddr_in sa{};
      sa.sin_family = AF_INET;
      sa.sin_port = htons(port);
      std::memcpy(&sa.sin_addr, addr.bytes.data(), 4);
      rc = ::bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa);
    } else {
      sockaddr_in6 sa{};
      sa.sin6_family = AF_INET6;
      sa.sin6_port = htons(port);
      std::memcpy(&sa.sin6_addr, addr.bytes.data(), 16);
      rc = ::bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa);
    }
    if (rc < 0) {
      const int err = errno;
      fail(err, what + ": bind" + (err == EADDRINUSE ? " (another decapsulator or service has it)" : ""));
    }
  };
  for (const IpAddr* addr : {&d.ipv4, &d.ipv6}) {
    if (addr->family == Family::kNone) continue;
    const int family = addr->is_v4() ? AF_INET : AF_INET6;
    const std::string where = format(*addr);
    for (int proto : {int{kProtoIpip}, int{kProtoIpv6}, int{kProtoGre}}) {
      sink(family, SOCK_RAW, proto, *addr, 0, "ICMP suppression raw socket proto " + std::to_string(proto) + " on " + where);
    }
    for (uint8_t i = 0; i < d.gue_port_count; ++i) {
      sink(family, SOCK_DGRAM, 0, *addr, d.gue_ports[i],
           "ICMP suppression UDP socket " + where + " port " + std::to_string(d.gue_ports[i]));
    }
  }
}

void Agent::close_all() {
  if (packet_fd_ >= 0) ::close(packet_fd_);
  packet_fd_ = -1;
  if (wake_fd_ >= 0) ::close(wake_fd_);
  wake_fd_ = -1;
  for (int fd : sink_fds_) ::close(fd);
  sink_fds_.clear();
  tun_.reset();
}

void Agent::start() {
  std::lock_guard<std::mutex> lock(control_);
  if (running_.load(std::memory_order_acquire) || thread_.joinable()) {
    throw std::logic_error("agent: already started");
  }
  try {
    // Buffers first: the loop never allocates.
    frames_.assign(size_t{config_.batch} * config_.frame_size, 0);
    control_buf_.assign(size_t{config_.batch} * CMSG_SPACE(sizeof(tpacket_auxdata)), 0);
    drain_buf_.assign(2048, 0);
    tun_ = std::make_unique<Tun>(config_.tun, true);
    if (config_.suppress_icmp) open_sinks();
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) fail(errno, "eventfd");
    open_packet_socket();
  } catch (...) {
    close_all();
    throw;
  }
  {
    std::lock_guard<std::mutex> elock(error_mutex_);
    loop_error_.clear();
  }
  stop_requested_.store(false, std::memory_order_relaxed);
  running_.store(true, std::memory_order_release);
  thread_ = std::thread([this] { run(); });
}

void Agent::stop() {
  std::lock_guard<std::mutex> lock(control_);
  if (thread_.joinable()) {
    stop_requested_.store(true, std::memory_order_release);
    const uint64_t one = 1;
    if (wake_fd_ >= 0) (void)!::write(wake_fd_, &one, sizeof one);
    thread_.join();
  }
  running_.store(false, std::memory_order_release);
  close_all();
}

void Agent::poll_kernel_drops() {
  tpacket_stats st{};
  socklen_t len = sizeof st;
  // Reading the statistics resets them: add them up.
  if (::getsockopt(packet_fd_, SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0 && st.tp_drops > 0) {
    counters_.kernel_drops.add(st.tp_drops);
  }
}

void Agent::process(uint8_t* frame, uint32_t len, bool checksum_not_ready) {
  const DecapResult r =
      decapsulate(frame, len, config_.decap, checksum_not_ready ? kDecapChecksumNotReady : kDecapNone);
  counters_.status[static_cast<size_t>(r.status)].add();
  if (r.status != DecapStatus::kOk) return;
  counters_.decapsulated.add();
  counters_.by_encap[static_cast<size_t>(r.kind)].add();
  counters_.by_tunnel[static_cast<size_t>(tunnel_of(r.outer, r.inner))].add();
  uint8_t* inner = frame + r.inner_offset;
  if (checksum_not_ready && finalize_inner_checksum(inner, r.inner_length, r.inner)) {
    counters_.checksums_finalized.add();
  }
  if (tun_->write_packet(inner, r.inner_length) == 0) {
    counters_.tun_packets.add();
    counters_.tun_bytes.add(r.inner_length);
  } else {
    counters_.tun_errors.add();
  }
}

void Agent::run() {
  const uint32_t batch = config_.batch;
  const size_t cmsg_space = CMSG_SPACE(sizeof(tpacket_auxdata));
  std::vector<mmsghdr> msgs(batch);
  std::vector<iovec> iovs(batch);
  std::vector<sockaddr_ll> addrs(batch);
  for (uint32_t i = 0; i < batch; ++i) {
    iovs[i].iov_base = frames_.data() + size_t{i} * config_.frame_size;
    iovs[i].iov_len = config_.frame_size;
  }
  pollfd fds[3] = {{packet_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}, {tun_->fd(), POLLIN, 0}};
  auto last_stats = std::chrono::steady_clock::now();
  std::string error;

  while (!stop_requested_.load(std::memory_order_acquire)) {
    const int n = ::poll(fds, 3, config_.poll_timeout_ms);
    if (n < 0 && errno != EINTR) {
      error = std::string("poll: ") + std::strerror(errno);
      break;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now - last_stats > std::chrono::milliseconds(500)) {
      poll_kernel_drops();
      last_stats = now;
      // A deleted interface does not always leave an error on the socket (the event can be
      // consumed by an earlier read): look it up by name as well, twice a second.
      if (static_cast<int>(::if_nametoindex(config_.interface.c_str())) != ifindex_) {
        error = "interface " + config_.interface + " is gone (" + std::strerror(ENODEV) + ")";
        break;
      }
    }
    if (n <= 0) continue;
    if (fds[1].revents != 0) break;
    if (fds[2].revents & POLLIN) {
      // Anything the kernel routes to the TUN device (it should route nothing there): drop.
      for (int i = 0; i < 64 && tun_->read_packet(drain_buf_.data(), static_cast<uint32_t>(drain_buf_.size())) >= 0; ++i) {
        counters_.tun_discarded.add();
      }
    }
    if (fds[0].revents & (POLLERR | POLLHUP | POLLNVAL)) {
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(packet_fd_, SOL_SOCKET, SO_ERROR, &err, &len);
      // ENETDOWN both when the interface goes down (the socket resumes when it comes back
      // up) and when it is deleted (it never will: a new one would have another index).
      if ((fds[0].revents & POLLNVAL) || err == ENODEV || err == ENXIO ||
          static_cast<int>(::if_nametoindex(config_.interface.c_str())) != ifindex_) {
        error = "interface " + config_.interface + " is gone (" + std::strerror(err ? err : ENODEV) + ")";
        break;
      }
      counters_.rx_errors.add();
    }
    if (!(fds[0].revents & POLLIN)) continue;

    // Drain what is queued, a bounded number of batches at a time so that stop stays prompt.
    for (int round = 0; round < 16; ++round) {
      for (uint32_t i = 0; i < batch; ++i) {
        msghdr& h = msgs[i].msg_hdr;
        h.msg_name = &addrs[i];
        h.msg_namelen = sizeof(sockaddr_ll);
        h.msg_iov = &iovs[i];
        h.msg_iovlen = 1;
        h.msg_control = control_buf_.data() + i * cmsg_space;
        h.msg_controllen = cmsg_space;
        h.msg_flags = 0;
        msgs[i].msg_len = 0;
      }
      const int got = ::recvmmsg(packet_fd_, msgs.data(), batch, MSG_DONTWAIT | MSG_TRUNC, nullptr);
      if (got < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) counters_.rx_errors.add();
        break;
      }
      for (int i = 0; i < got; ++i) {
        const msghdr& h = msgs[static_cast<size_t>(i)].msg_hdr;
        const uint32_t len = msgs[static_cast<size_t>(i)].msg_len;
        counters_.rx_frames.add();
        counters_.rx_bytes.add(len);
        if ((h.msg_flags & MSG_TRUNC) != 0 || len > config_.frame_size) {
          counters_.rx_truncated.add();
          continue;
        }
        if (addrs[static_cast<size_t>(i)].sll_pkttype == PACKET_OUTGOING) continue;
        bool not_ready = false;
        for (const cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(const_cast<msghdr*>(&h), const_cast<cmsghdr*>(c))) {
          if (c->cmsg_level == SOL_PACKET && c->cmsg_type == PACKET_AUXDATA &&
              c->cmsg_len >= CMSG_LEN(sizeof(tpacket_auxdata))) {
            tpacket_auxdata aux;
            std::memcpy(&aux, CMSG_DATA(c), sizeof aux);
            not_ready = (aux.tp_status & TP_STATUS_CSUMNOTREADY) != 0;
          }
        }
        process(static_cast<uint8_t*>(iovs[static_cast<size_t>(i)].iov_base), len, not_ready);
      }
      if (static_cast<uint32_t>(got) < batch) break;
    }
  }
  poll_kernel_drops();
  if (!error.empty()) {
    std::lock_guard<std::mutex> lock(error_mutex_);
    loop_error_ = error;
  }
  running_.store(false, std::memory_order_release);
}

}  // namespace l4mux
