// AF_PACKET TPACKET_V3 receive ring + sendmmsg transmit. See af_packet.h.
//
// Why sendmmsg and not a TX ring. A frame the pipeline decided to send already sits, fully
// rewritten, in the receive ring. sendmmsg() hands the kernel an iovec pointing at it: no
// copy in user space, one system call per batch, and the kernel has copied the data into its
// own skb by the time the call returns, so the receive block can go back to the kernel right
// after. A TX ring would need one more memcpy per packet (receive ring -> TX slot) plus
// bookkeeping of slots that stay TP_STATUS_SENDING until the driver frees the skb (on veth,
// until the peer has consumed it), for the one advantage of letting the kernel reference
// ring pages instead of copying — which that extra memcpy throws away. Per-message errors
// are also precise with sendmmsg (it stops at the first message that fails).
//
// Why PACKET_FANOUT_FLAG_DEFRAG is off by default. The fanout hash (PACKET_FANOUT_HASH uses
// the kernel's symmetric flow dissector on the packet itself) does not include ports for
// IPv4/IPv6 fragments, first fragment included, so all fragments of a datagram already land
// on one worker; the pipeline forwards fragments statelessly on a 3-tuple hash anyway
// (Maglev §4.3). With the flag, the kernel instead *reassembles* IPv4 datagrams before the
// fanout and delivers the whole datagram as one frame, which is longer than the MTU whenever
// the datagram was fragmented for the MTU: such frames are counted rx_oversized and dropped.
// io_af_packet_test.cc checks both behaviours.
#include "af_packet.h"

#include <arpa/inet.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <system_error>

namespace l4mux {
namespace {

// Layout of a frame in a V3 block: tpacket3_hdr, sockaddr_ll, (gap >= tp_reserve), frame.
constexpr uint32_t kFrameHeaderLen = TPACKET_ALIGN(sizeof(tpacket3_hdr)) + sizeof(sockaddr_ll);
constexpr uint32_t kMinHeadroom = 128;
constexpr uint32_t kVlanLen = kVlanTagLen;

[[noreturn]] void fail(const std::string& what, int err) {
  throw std::system_error(err, std::generic_category(), what);
}

uint32_t align_up(uint32_t v, uint32_t a) { return (v + a - 1) / a * a; }

}  // namespace

AfPacketIo::Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

void AfPacketIo::Fd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

AfPacketIo::Mapping::~Mapping() {
  if (addr_ != nullptr) ::munmap(addr_, len_);
}

void AfPacketIo::Mapping::reset(uint8_t* addr, size_t len) {
  if (addr_ != nullptr) ::munmap(addr_, len_);
  addr_ = addr;
  len_ = len;
}

AfPacketIo::AfPacketIo(const std::string& ifname, uint32_t worker, const AfPacketOptions& options,
                       uint16_t fanout_group, FanoutJoin join)
    : ifname_(ifname),
      worker_(worker),
      msgs_(std::make_unique<mmsghdr[]>(kMaxBatch)),
      iovs_(std::make_unique<iovec[]>(kMaxBatch)) {
  setup(ifname, options, fanout_group, join);
  for (uint32_t i = 0; i < kMaxBatch; ++i) {
    std::memset(&msgs_[i], 0, sizeof(mmsghdr));
    // No address: the socket is bound to the interface (the kernel's cached device path),
    // and the Ethernet header gives the protocol.
    msgs_[i].msg_hdr.msg_iov = &iovs_[i];
    msgs_[i].msg_hdr.msg_iovlen = 1;
  }
}

AfPacketIo::~AfPacketIo() = default;

void AfPacketIo::setup(const std::string& ifname, const AfPacketOptions& o, uint16_t fanout_group,
                       FanoutJoin join) {
  const long page = ::sysconf(_SC_PAGESIZE);
  if (ifname.empty() || ifname.size() >= IFNAMSIZ) {
    throw std::invalid_argument("af_packet: bad interface name \"" + ifname + "\"");
  }
  if (o.headroom < kMinHeadroom || o.headroom > 4096) {
    throw std::invalid_argument("af_packet: headroom must be 128..4096 bytes");
  }
  if (o.block_size == 0 || page <= 0 || o.block_size % static_cast<uint32_t>(page) != 0 ||
      (o.block_size & (o.block_size - 1)) != 0) {
    throw std::invalid_argument("af_packet: block size must be a power of two multiple of the page size");
  }
  if (o.block_count < 2 || o.block_count > 65536 || uint64_t{o.block_size} * o.block_count > (1ull << 32)) {
    throw std::invalid_argument("af_packet: block count must be 2..65536 and the ring at most 4 GiB");
  }
  if (o.block_timeout_ms == 0 || o.block_timeout_ms > 1000) {
    throw std::invalid_argument("af_packet: block timeout must be 1..1000 ms");
  }
  // tp_frame_size only has to hold the headers and the reserve in V3 (frames are packed).
  const uint32_t frame_size = std::max<uint32_t>(2048, align_up(kFrameHeaderLen + o.headroom + 64, TPACKET_ALIGNMENT));
  if (frame_size > o.block_size / 2) {
    throw std::invalid_argument("af_packet: block size too small for the headroom");
  }

  const int fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);  // protocol 0: no traffic yet
  if (fd < 0) fail("af_packet: socket(AF_PACKET)", errno);
  fd_.reset(fd);

  ifreq ifr{};
  std::memcpy(ifr.ifr_name, ifname.c_str(), ifname.size() + 1);
  if (::ioctl(fd, SIOCGIFINDEX, &ifr) < 0) fail("af_packet: interface \"" + ifname + "\"", errno);
  ifindex_ = ifr.ifr_ifindex;
  if (::ioctl(fd, SIOCGIFMTU, &ifr) < 0) fail("af_packet: SIOCGIFMTU " + ifname, errno);
  max_frame_len_ = o.max_frame_len != 0 ? o.max_frame_len
                                        : static_cast<uint32_t>(ifr.ifr_mtu) + ETH_HLEN + 2 * kVlanLen;

  auto set = [&](int level, int name, int value, const char* what) {
    if (::setsockopt(fd, level, name, &value, sizeof(value)) < 0) fail(std::string("af_packet: ") + what, errno);
  };
  set(SOL_PACKET, PACKET_VERSION, TPACKET_V3, "PACKET_VERSION TPACKET_V3");
  set(SOL_PACKET, PACKET_RESERVE, static_cast<int>(o.headroom), "PACKET_RESERVE");

  tpacket_req3 req{};
  req.tp_block_size = o.block_size;
  req.tp_block_nr = o.block_count;
  req.tp_frame_size = frame_size;
  req.tp_frame_nr = (o.block_size / frame_size) * o.block_count;
  req.tp_retire_blk_tov = o.block_timeout_ms;
  if (::setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req)) < 0) {
    fail("af_packet: PACKET_RX_RING", errno);
  }
  block_size_ = o.block_size;
  block_count_ = o.block_count;
  const size_t ring_len = size_t{block_size_} * block_count_;
  void* ring = ::mmap(nullptr, ring_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
  if (ring == MAP_FAILED) fail("af_packet: mmap of the receive ring", errno);
  ring_.reset(static_cast<uint8_t*>(ring), ring_len);

  if (o.qdisc_bypass) set(SOL_PACKET, PACKET_QDISC_BYPASS, 1, "PACKET_QDISC_BYPASS");
  // Our own transmits never reach packet taps with the qdisc bypass; this also keeps other
  // local senders' outgoing frames out of the ring (kernel >= 4.20; the ring check stays).
  {
    const int one = 1;
    if (::setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one)) < 0 && errno != ENOPROTOOPT) {
      fail("af_packet: PACKET_IGNORE_OUTGOING", errno);
    }
  }
  if (o.sndbuf != 0) {
    const int v = static_cast<int>(std::min<uint32_t>(o.sndbuf, 1u << 30));
    if (::setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof(v)) < 0) {
      ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));  // best effort without CAP_NET_ADMIN
    }
  }

  // Until the socket is in the fanout group it would see every packet of the interface
  // (duplicates of what the other workers get): a drop-everything filter covers that window.
  sock_filter drop_all[] = {{BPF_RET | BPF_K, 0, 0, 0}};
  sock_fprog prog{1, drop_all};
  if (::setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) < 0) {
    fail("af_packet: SO_ATTACH_FILTER", errno);
  }

  sockaddr_ll addr{};
  addr.sll_family = AF_PACKET;
  addr.sll_protocol = htons(ETH_P_ALL);
  addr.sll_ifindex = ifindex_;
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) < 0) {
    fail("af_packet: bind to " + ifname, errno);
  }

  int type_flags = PACKET_FANOUT_HASH | (o.fanout_defrag ? PACKET_FANOUT_FLAG_DEFRAG : 0);
  uint16_t id = fanout_group;
  if (join == FanoutJoin::kCreateUnique) {
    type_flags |= PACKET_FANOUT_FLAG_UNIQUEID;
    id = 0;
  }
  const int fanout_arg = static_cast<int>(id) | (type_flags << 16);
  if (::setsockopt(fd, SOL_PACKET, PACKET_FANOUT, &fanout_arg, sizeof(fanout_arg)) < 0) {
    fail("af_packet: PACKET_FANOUT group " + std::to_string(id) + " on " + ifname, errno);
  }
  int fanout_now = 0;
  socklen_t len = sizeof(fanout_now);
  if (::getsockopt(fd, SOL_PACKET, PACKET_FANOUT, &fanout_now, &len) < 0) {
    fail("af_packet: getsockopt PACKET_FANOUT", errno);
  }
  fanout_group_ = static_cast<uint16_t>(fanout_now & 0xffff);

  set(SOL_SOCKET, SO_DETACH_FILTER, 0, "SO_DETACH_FILTER");
  // Nothing was counted before the group existed; start the kernel's counters from here.
  tpacket_stats_v3 st{};
  socklen_t st_len = sizeof(st);
  ::getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &st, &st_len);
}

uint32_t AfPacketIo::receive(std::span<Packet> batch, int timeout_ms) {
  const uint32_t want = static_cast<uint32_t>(std::min<size_t>(batch.size(), kMaxBatch));
  auto fill = [&] {
    uint32_t n = 0;
    while (n < want) {
      if (!block_open_) {
        // Every block may be waiting for complete() (one tiny frame in each): stop there.
        if (release_count_ == block_count_) break;
        auto* bd = reinterpret_cast<tpacket_block_desc*>(block(next_block_));
        if ((__atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER) == 0) break;
        const uint32_t first = bd->hdr.bh1.offset_to_first_pkt;
        frames_left_ = first >= sizeof(tpacket_block_desc) && first < block_size_ ? bd->hdr.bh1.num_pkts : 0;
        frame_ = block(next_block_) + first;
        block_open_ = true;
        if (frames_left_ == 0) {
          close_block();
          continue;
        }
      }
      if (take_frame(batch[n])) ++n;
    }
    return n;
  };

  uint32_t n = fill();
  if (n == 0 && timeout_ms != 0) {
    release_blocks();  // only skipped frames were in them
    pollfd pfd[2] = {{fd_.get(), POLLIN, 0}, {wakeup_fd_, POLLIN, 0}};
    if (::poll(pfd, wakeup_fd_ >= 0 ? 2 : 1, timeout_ms) > 0) {
      if ((pfd[0].revents & POLLERR) != 0) clear_socket_error();
      if ((pfd[1].revents & POLLIN) != 0) {
        uint64_t value = 0;
        [[maybe_unused]] const ssize_t r = ::read(wakeup_fd_, &value, sizeof(value));
      }
      n = fill();
    }
  }
  if (n == 0) release_blocks();
  rx_packets_.add(n);
  return n;
}

bool AfPacketIo::take_frame(Packet& out) {
  uint8_t* const cur = frame_;
  const uint8_t* const block_end = block(next_block_) + block_size_;
  if (cur + kFrameHeaderLen > block_end) {  // the kernel's layout is trusted, but verified
    rx_oversized_.add(1);
    close_block();
    return false;
  }
  const auto* hdr = reinterpret_cast<const tpacket3_hdr*>(cur);
  const auto* sll = reinterpret_cast<const sockaddr_ll*>(cur + TPACKET_ALIGN(sizeof(tpacket3_hdr)));
  const uint32_t next = hdr->tp_next_offset;
  const uint32_t mac = hdr->tp_mac;
  const uint32_t snaplen = hdr->tp_snaplen;
  const uint32_t status = hdr->tp_status;
  const uint32_t wire_len = hdr->tp_len;
  const uint8_t pkttype = sll->sll_pkttype;
  const uint16_t vlan_tci = hdr->hv1.tp_vlan_tci;
  const uint16_t vlan_tpid = hdr->hv1.tp_vlan_tpid;

  --frames_left_;
  if (frames_left_ == 0 || next == 0 || next >= static_cast<size_t>(block_end - cur)) {
    close_block();
  } else {
    frame_ = cur + next;
  }

  if (pkttype != PACKET_HOST && pkttype != PACKET_OTHERHOST) {
    rx_ignored_.add(1);
    return false;
  }
  const size_t room = static_cast<size_t>(block_end - cur);
  if (snaplen < wire_len || wire_len > max_frame_len_ || mac < kFrameHeaderLen || mac > room ||
      snaplen > room - mac) {
    rx_oversized_.add(1);
    return false;
  }
  out.data = cur + mac;
  out.len = snaplen;
  out.headroom = mac - kFrameHeaderLen;
  out.flags = (status & TP_STATUS_CSUMNOTREADY) != 0 ? kPacketChecksumPartial : 0;
  out.verdict = Verdict::kDrop;
  out.reason = DropReason::kEthTruncated;
  out.backend = kMaglevNoBackend;
  if ((status & TP_STATUS_VLAN_VALID) != 0 && out.len >= 2 * ETH_ALEN && out.headroom >= kVlanLen) {
    // The driver took the 802.1Q tag out of the frame (VLAN acceleration): put it back, so
    // the pipeline sees the frame as it was on the wire.
    const uint16_t tpid = (status & TP_STATUS_VLAN_TPID_VALID) != 0 ? vlan_tpid : ETH_P_8021Q;
    uint8_t* const tagged = out.data - kVlanLen;
    std::memmove(tagged, out.data, 2 * ETH_ALEN);
    tagged[12] = static_cast<uint8_t>(tpid >> 8);
    tagged[13] = static_cast<uint8_t>(tpid);
    tagged[14] = static_cast<uint8_t>(vlan_tci >> 8);
    tagged[15] = static_cast<uint8_t>(vlan_tci);
    out.data = tagged;
    out.len += kVlanLen;
    out.headroom -= kVlanLen;
  }
  return true;
}

void AfPacketIo::close_block() {
  block_open_ = false;
  frames_left_ = 0;
  ++release_count_;
  next_block_ = next_block_ + 1 == block_count_ ? 0 : next_block_ + 1;
}

void AfPacketIo::release_blocks() {
  for (uint32_t k = 0; k < release_count_; ++k) {
    auto* bd = reinterpret_cast<tpacket_block_desc*>(block((release_first_ + k) % block_count_));
    __atomic_store_n(&bd->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
  }
  release_first_ = (release_first_ + release_count_) % block_count_;
  release_count_ = 0;
}

void AfPacketIo::clear_socket_error() {
  int err = 0;
  socklen_t len = sizeof(err);
  ::getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &err, &len);
}

void AfPacketIo::complete(std::span<Packet> batch, uint32_t n) {
  n = static_cast<uint32_t>(std::min<size_t>({n, batch.size(), kMaxBatch}));
  uint32_t count = 0;
  for (uint32_t i = 0; i < n; ++i) {
    const Packet& p = batch[i];
    if (p.verdict != Verdict::kTx) continue;
    iovs_[count].iov_base = p.data;
    iovs_[count].iov_len = p.len;
    ++count;
  }
  if (count != 0) send_batch(count);
  release_blocks();
}

uint32_t AfPacketIo::send_batch(uint32_t count) {
  uint32_t i = 0;
  uint32_t taken = 0;
  uint32_t interrupts = 0;
  while (i < count) {
    const int sent = ::sendmmsg(fd_.get(), &msgs_[i], count - i, MSG_DONTWAIT);
    if (sent > 0) {
      tx_packets_.add(static_cast<uint32_t>(sent));
      i += static_cast<uint32_t>(sent);
      taken += static_cast<uint32_t>(sent);
      continue;
    }
    const int err = sent < 0 ? errno : EIO;
    if (err == EINTR && ++interrupts <= kMaxBatch) continue;
    if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) {
      // Socket buffer or device queue full: the rest of the batch would fail the same way.
      tx_ring_full_.add(count - i);
      return taken;
    }
    tx_errors_.add(1);  // this message (e.g. EMSGSIZE); carry on with the next one
    ++i;
  }
  return taken;
}

// sendmmsg copies the frames into socket buffers before it returns: any buffer will do.
uint32_t AfPacketIo::transmit(std::span<Packet> frames) {
  const uint32_t n = static_cast<uint32_t>(std::min<size_t>(frames.size(), kMaxBatch));
  for (uint32_t i = 0; i < n; ++i) {
    iovs_[i].iov_base = frames[i].data;
    iovs_[i].iov_len = frames[i].len;
  }
  return n != 0 ? send_batch(n) : 0;
}

IoStats AfPacketIo::stats() const {
  tpacket_stats_v3 st{};
  socklen_t len = sizeof(st);
  if (::getsockopt(fd_.get(), SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0) {
    rx_kernel_drops_.fetch_add(st.tp_drops, std::memory_order_relaxed);  // read-and-reset
  }
  IoStats s;
  s.rx_packets = rx_packets_.get();
  s.rx_kernel_drops = rx_kernel_drops_.load(std::memory_order_relaxed);
  s.rx_oversized = rx_oversized_.get();
  s.rx_ignored = rx_ignored_.get();
  s.tx_packets = tx_packets_.get();
  s.tx_errors = tx_errors_.get();
  s.tx_ring_full = tx_ring_full_.get();
  return s;
}

IoRingLevels AfPacketIo::ring_levels() const {
  IoRingLevels r;
  r.rx_size = block_count_;
  for (uint32_t b = 0; b < block_count_; ++b) {
    const auto* bd = reinterpret_cast<const tpacket_block_desc*>(block(b));
    if ((__atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_RELAXED) & TP_STATUS_USER) != 0) ++r.rx_used;
  }
  return r;
}

std::string AfPacketIo::describe() const {
  return "af_packet " + ifname_ + " fanout " + std::to_string(fanout_group_) + " worker " +
         std::to_string(worker_);
}

std::function<std::unique_ptr<PacketIo>(uint32_t worker)> make_af_packet_factory(
    const std::string& ifname, const AfPacketOptions& options) {
  struct Shared {
    std::mutex mutex;
    std::optional<uint16_t> group;  // the group worker 0 created (automatic ids)
  };
  auto shared = std::make_shared<Shared>();
  return [ifname, options, shared](uint32_t worker) -> std::unique_ptr<PacketIo> {
    if (options.fanout_group != 0) {
      return std::make_unique<AfPacketIo>(ifname, worker, options, options.fanout_group,
                                          AfPacketIo::FanoutJoin::kJoin);
    }
    std::lock_guard lock(shared->mutex);
    if (worker == 0) {
      auto io = std::make_unique<AfPacketIo>(ifname, worker, options, 0, AfPacketIo::FanoutJoin::kCreateUnique);
      shared->group = io->fanout_group();
      return io;
    }
    if (!shared->group) {
      throw std::logic_error("af_packet factory: worker 0 must be opened first (automatic fanout group)");
    }
    return std::make_unique<AfPacketIo>(ifname, worker, options, *shared->group, AfPacketIo::FanoutJoin::kJoin);
  };
}

}  // namespace l4mux
