#include "af_xdp.h"

#include <fcntl.h>
#include <linux/if_xdp.h>
#include <net/if.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <xdp/xsk.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <vector>

#include "../bytes.h"
#include "../checksum.h"
#include "../counters.h"
#include "xdp_program.h"

namespace l4mux {
namespace {

std::string errno_text(int err) {
  if (err < 0) err = -err;
  return "errno " + std::to_string(err) + ": " + std::strerror(err);
}

bool power_of_two(uint32_t v) { return v != 0 && std::has_single_bit(v); }

// Linux leaves the folded pseudo-header sum in the L4 checksum field of a CHECKSUM_PARTIAL
// packet (the device was to add the payload's sum). AF_XDP has no flag for that state, and
// veth (native or generic XDP) hands such packets over as they are, so it is recognised by
// value: a TCP/UDP checksum field equal to the pseudo-header sum marks the packet
// kPacketChecksumPartial and the pipeline recomputes the checksum. A final checksum has that
// value by chance once in 65536 packets; recomputing it then costs a little time and changes
// nothing. Only the fixed headers are read (no payload), every length checked first.
bool checksum_looks_partial(const uint8_t* f, uint32_t len) {
  if (len < kEthHeaderLen) return false;
  uint32_t off = kEthHeaderLen;
  uint16_t type = load_be16(f + 12);
  if (type == kEthTypeVlan || type == kEthTypeQinQ) {
    if (len < kEthHeaderLen + kVlanTagLen) return false;
    type = load_be16(f + 16);
    off += kVlanTagLen;
  }
  const uint8_t* l3 = f + off;
  const uint32_t room = len - off;
  IpAddr src, dst;
  uint8_t proto = 0;
  uint32_t l4_off = 0;
  uint32_t l4_len = 0;
  if (type == kEthTypeIpv4) {
    if (room < kIpv4HeaderLen || (l3[0] >> 4) != 4) return false;
    const uint32_t ihl = (l3[0] & 0x0fu) * 4u;
    const uint32_t total = load_be16(l3 + 2);
    if (ihl < kIpv4HeaderLen || total < ihl || total > room) return false;
    if ((load_be16(l3 + 6) & kIpv4FragmentBits) != 0) return false;  // a fragment: no whole L4 segment
    proto = l3[9];
    src = IpAddr::v4(l3 + 12);
    dst = IpAddr::v4(l3 + 16);
    l4_off = ihl;
    l4_len = total - ihl;
  } else if (type == kEthTypeIpv6) {
    if (room < kIpv6HeaderLen || (l3[0] >> 4) != 6) return false;
    l4_len = load_be16(l3 + 4);
    if (kIpv6HeaderLen + l4_len > room) return false;
    proto = l3[6];
    src = IpAddr::v6(l3 + 8);
    dst = IpAddr::v6(l3 + 24);
    l4_off = kIpv6HeaderLen;
  } else {
    return false;
  }
  uint32_t check_off = 0;
  if (proto == kProtoTcp && l4_len >= 20) {
    check_off = 16;
  } else if (proto == kProtoUdp && l4_len >= kUdpHeaderLen) {
    check_off = 6;
  } else {
    return false;
  }
  const uint16_t field = load_be16(l3 + l4_off + check_off);
  const auto pseudo = static_cast<uint16_t>(~csum_fold(pseudo_header_sum(src, dst, proto, l4_len)));
  return field == pseudo;
}

}  // namespace

struct AfXdpIo::State {
  AfXdpOptions opt;
  uint8_t* area = nullptr;
  size_t area_bytes = 0;
  xsk_umem* umem = nullptr;
  xsk_socket* xsk = nullptr;
  xsk_ring_prod fill{};
  xsk_ring_cons comp{};
  xsk_ring_cons rx{};
  xsk_ring_prod tx{};
  int fd = -1;
  bool zero_copy = false;
  std::string zero_copy_refused;  // why the zero-copy bind failed (kAuto fell back to copy)
  uint64_t frame_mask = 0;  // ~(frame_size - 1)

  std::vector<uint64_t> rx_frame;  // per batch slot: the frame (base address) it came in
  std::vector<uint8_t> tx_ok;      // per batch slot: kTx and the frame lies inside its buffer
  std::vector<uint64_t> recycled;  // frames going back to the fill ring at the next flush
  std::vector<uint64_t> spare;     // free frames of the transmit() reserve
  uint64_t reserve_start = 0;      // address of the reserve's first frame
  uint32_t received = 0;           // frames handed out by the last receive(), not yet completed
  uint32_t tx_outstanding = 0;     // submitted to the TX ring, not yet seen on the completion ring
  bool tx_needs_kick = false;      // the last kick left descriptors on the TX ring

  Counter rx_packets;
  Counter tx_packets;
  Counter tx_errors;
  Counter tx_ring_full;
  Counter passed_dropped;
  Counter tx_kick_errors;

  ~State() {
    if (xsk != nullptr) xsk_socket__delete(xsk);
    if (umem != nullptr) xsk_umem__delete(umem);
    if (area != nullptr) ::munmap(area, area_bytes);
  }
};

AfXdpIo::AfXdpIo(std::unique_ptr<State> state) : s_(std::move(state)) {}
AfXdpIo::~AfXdpIo() = default;

std::unique_ptr<PacketIo> open_af_xdp(const AfXdpOptions& options, std::string* why_not) {
  std::string scratch;
  if (why_not == nullptr) why_not = &scratch;
  const std::string& ifname = options.interface;
  const std::string where = ifname + " queue " + std::to_string(options.queue);

  if (ifname.empty() || if_nametoindex(ifname.c_str()) == 0) {
    *why_not = "no interface '" + ifname + "' in this network namespace";
    return nullptr;
  }
  if (options.xsks_map_fd < 0) {
    *why_not = "AF_XDP needs the XSKMAP of an attached l4mux XDP program";
    return nullptr;
  }
  if (!power_of_two(options.frame_count) || !power_of_two(options.ring_size) ||
      (options.frame_size != 2048 && options.frame_size != 4096)) {
    *why_not = "AF_XDP options: frame_count and ring_size must be powers of two, frame_size 2048 or 4096";
    return nullptr;
  }
  if (options.frame_headroom + XDP_PACKET_HEADROOM + 256 > options.frame_size || options.max_batch == 0 ||
      options.max_batch > options.ring_size || options.transmit_frames > options.frame_count / 2) {
    *why_not = "AF_XDP options: frame_headroom leaves no room for packets, max_batch exceeds ring_size, or "
               "transmit_frames exceeds half the frames";
    return nullptr;
  }

  auto s = std::make_unique<AfXdpIo::State>();
  s->opt = options;
  s->frame_mask = ~uint64_t{options.frame_size - 1};
  s->area_bytes = size_t{options.frame_count} * options.frame_size;
  void* area = ::mmap(nullptr, s->area_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
                      -1, 0);
  if (area == MAP_FAILED) {
    *why_not = "AF_XDP UMEM allocation (" + std::to_string(s->area_bytes >> 20) + " MiB) failed: " + errno_text(errno);
    return nullptr;
  }
  s->area = static_cast<uint8_t*>(area);

  xdp_detail::LogCapture log;  // libxdp warnings end up in the reason, not on stderr
  xsk_umem_config ucfg{};
  ucfg.fill_size = options.frame_count;  // one slot per frame: recycling never finds it full
  ucfg.comp_size = options.ring_size;
  ucfg.frame_size = options.frame_size;
  ucfg.frame_headroom = options.frame_headroom;
  ucfg.flags = 0;

  auto try_bind = [&](bool zero_copy, std::string* reason) -> bool {
    int rc = xsk_umem__create(&s->umem, s->area, s->area_bytes, &s->fill, &s->comp, &ucfg);
    if (rc < 0) {
      s->umem = nullptr;
      *reason = "AF_XDP UMEM registration (" + std::to_string(options.frame_count) + " frames of " +
                std::to_string(options.frame_size) + " B) failed: " + errno_text(rc);
      return false;
    }
    xsk_socket_config scfg{};
    scfg.rx_size = options.ring_size;
    scfg.tx_size = options.ring_size;
    scfg.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD;  // our own program is attached
    scfg.xdp_flags = 0;
    scfg.bind_flags = static_cast<uint16_t>(XDP_USE_NEED_WAKEUP | (zero_copy ? XDP_ZEROCOPY : XDP_COPY));
    rc = xsk_socket__create(&s->xsk, ifname.c_str(), options.queue, s->umem, &s->rx, &s->tx, &scfg);
    // A socket that held the queue until just now releases it from a kernel work item (the
    // buffer pool is freed deferred): EBUSY right after closing one is transient.
    for (int retry = 0; rc == -EBUSY && retry < 50; ++retry) {
      ::usleep(20'000);
      rc = xsk_socket__create(&s->xsk, ifname.c_str(), options.queue, s->umem, &s->rx, &s->tx, &scfg);
    }
    if (rc < 0) {
      s->xsk = nullptr;
      xsk_umem__delete(s->umem);
      s->umem = nullptr;
      std::string hint;
      if (rc == -EINVAL) hint = " (does the queue exist? see ethtool -l " + ifname + ")";
      if (rc == -EOPNOTSUPP && zero_copy) hint = " (the driver has no zero-copy support)";
      if (rc == -EBUSY) hint = " (another AF_XDP socket or zero-copy user holds the queue)";
      *reason = std::string("AF_XDP ") + (zero_copy ? "zero-copy" : "copy-mode") + " bind to " + where +
                " failed: " + errno_text(rc) + hint;
      return false;
    }
    return true;
  };

  std::string zc_reason;
  bool bound = false;
  if (options.zero_copy != AfXdpZeroCopy::kOff) {
    bound = try_bind(true, &zc_reason);
    if (!bound && options.zero_copy == AfXdpZeroCopy::kRequire) {
      *why_not = zc_reason;
      return nullptr;
    }
  }
  s->zero_copy_refused = zc_reason;
  if (!bound) {
    std::string copy_reason;
    if (!try_bind(false, &copy_reason)) {
      *why_not = copy_reason + (zc_reason.empty() ? "" : "; before that: " + zc_reason);
      return nullptr;
    }
  }
  s->fd = xsk_socket__fd(s->xsk);
  ::fcntl(s->fd, F_SETFD, FD_CLOEXEC);  // libxdp opens it without; children must not inherit it

  xdp_options xopts{};
  socklen_t xlen = sizeof(xopts);
  s->zero_copy = ::getsockopt(s->fd, SOL_XDP, XDP_OPTIONS, &xopts, &xlen) == 0 && (xopts.flags & XDP_OPTIONS_ZEROCOPY);

  if (const int rc = xsk_socket__update_xskmap(s->xsk, options.xsks_map_fd); rc < 0) {
    *why_not = "registering the AF_XDP socket of " + where + " in the XSKMAP failed: " + errno_text(rc) +
               (rc == -E2BIG ? " (queue id beyond the map; XdpAttachOptions::max_queues)" : "");
    return nullptr;
  }

  // Every frame but the transmit reserve starts on the fill ring.
  const uint32_t receive_frames = options.frame_count - options.transmit_frames;
  uint32_t idx = 0;
  if (xsk_ring_prod__reserve(&s->fill, receive_frames, &idx) != receive_frames) {
    *why_not = "AF_XDP fill ring refused the initial frames";
    return nullptr;
  }
  for (uint32_t i = 0; i < receive_frames; ++i) {
    *xsk_ring_prod__fill_addr(&s->fill, idx + i) = uint64_t{i} * options.frame_size;
  }
  xsk_ring_prod__submit(&s->fill, receive_frames);
  s->reserve_start = uint64_t{receive_frames} * options.frame_size;
  s->spare.reserve(options.transmit_frames);
  for (uint32_t i = options.frame_count; i > receive_frames; --i) s->spare.push_back(uint64_t{i - 1} * options.frame_size);

  s->rx_frame.assign(options.max_batch, 0);
  s->tx_ok.assign(options.max_batch, 0);
  s->recycled.reserve(options.frame_count);
  return std::unique_ptr<PacketIo>(new AfXdpIo(std::move(s)));
}

void AfXdpIo::recycle(uint64_t frame) { s_->recycled.push_back(frame & s_->frame_mask); }

void AfXdpIo::flush_recycled() {
  State& s = *s_;
  const auto n = static_cast<uint32_t>(s.recycled.size());
  if (n == 0) return;
  uint32_t idx = 0;
  // Cannot fail (one fill slot per frame); if it ever did, the frames wait for the next flush.
  if (xsk_ring_prod__reserve(&s.fill, n, &idx) != n) return;
  for (uint32_t i = 0; i < n; ++i) *xsk_ring_prod__fill_addr(&s.fill, idx + i) = s.recycled[i];
  xsk_ring_prod__submit(&s.fill, n);
  s.recycled.clear();
}

void AfXdpIo::reap_completions() {
  State& s = *s_;
  if (s.tx_outstanding == 0) return;
  uint32_t idx = 0;
  const uint32_t done = xsk_ring_cons__peek(&s.comp, s.opt.ring_size, &idx);
  if (done == 0) return;
  for (uint32_t i = 0; i < done; ++i) {
    const uint64_t frame = *xsk_ring_cons__comp_addr(&s.comp, idx + i) & s.frame_mask;
    if (frame >= s.reserve_start) {
      s.spare.push_back(frame);  // capacity transmit_frames: never allocates
    } else {
      recycle(frame);
    }
  }
  xsk_ring_cons__release(&s.comp, done);
  s.tx_outstanding -= std::min(done, s.tx_outstanding);
}

// Copy mode sends synchronously inside sendto(), at most 32 frames per call (EAGAIN: more
// left); zero-copy drivers only need a wakeup when they ask for one.
void AfXdpIo::kick_tx() {
  State& s = *s_;
  s.tx_needs_kick = false;
  if (s.zero_copy && !xsk_ring_prod__needs_wakeup(&s.tx)) return;
  const uint32_t attempts = s.tx_outstanding / 32 + 2;
  for (uint32_t a = 0; a < attempts; ++a) {
    if (::sendto(s.fd, nullptr, 0, MSG_DONTWAIT, nullptr, 0) >= 0) return;
    switch (errno) {
      case EAGAIN:  // batch budget used up, or the device queue is busy: go on
        continue;
      case EBUSY:  // one frame was dropped by the device (completed, not sent)
        s.tx_errors.add();
        continue;
      case ENOBUFS:  // no memory for an skb, or the completion ring is full
      case ENETDOWN:
      case ENXIO:
      default:
        s.tx_kick_errors.add();
        s.tx_needs_kick = true;
        return;
    }
  }
  s.tx_needs_kick = true;
}

uint32_t AfXdpIo::receive(std::span<Packet> batch, int timeout_ms) {
  State& s = *s_;
  // A batch that was never completed is released here rather than leaked.
  for (uint32_t i = 0; i < s.received; ++i) recycle(s.rx_frame[i]);
  s.received = 0;
  reap_completions();
  flush_recycled();
  if (s.tx_needs_kick) kick_tx();

  const auto max = static_cast<uint32_t>(std::min<size_t>(batch.size(), s.rx_frame.size()));
  if (max == 0) return 0;
  uint32_t idx = 0;
  uint32_t n = xsk_ring_cons__peek(&s.rx, max, &idx);
  if (n == 0) {
    if (timeout_ms != 0) {
      // poll() also wakes the driver when it waits for fill buffers (need_wakeup).
      pollfd p{s.fd, POLLIN, 0};
      ::poll(&p, 1, timeout_ms);
    } else if (xsk_ring_prod__needs_wakeup(&s.fill)) {
      ::recvfrom(s.fd, nullptr, 0, MSG_DONTWAIT, nullptr, nullptr);
    }
    n = xsk_ring_cons__peek(&s.rx, max, &idx);
    if (n == 0) return 0;
  }
  for (uint32_t i = 0; i < n; ++i) {
    const xdp_desc* d = xsk_ring_cons__rx_desc(&s.rx, idx + i);
    const uint64_t frame = d->addr & s.frame_mask;
    Packet& p = batch[i];
    p = Packet{};
    p.data = s.area + d->addr;
    p.len = d->len;
    p.headroom = static_cast<uint32_t>(d->addr - frame);
    if (s.opt.detect_partial_checksums && checksum_looks_partial(p.data, p.len)) p.flags |= kPacketChecksumPartial;
    s.rx_frame[i] = frame;
  }
  xsk_ring_cons__release(&s.rx, n);
  s.rx_packets.add(n);
  s.received = n;
  return n;
}

void AfXdpIo::complete(std::span<Packet> batch, uint32_t n) {
  State& s = *s_;
  // Only frames the last receive() handed out, each once: a frame given back twice would
  // corrupt the fill ring.
  n = std::min<uint32_t>({n, s.received, static_cast<uint32_t>(batch.size())});
  s.received = 0;
  reap_completions();

  // The frame to send must still lie inside the frame it was received in (encapsulation
  // moves `data` back into the headroom, never past the frame's start).
  uint32_t want_tx = 0;
  for (uint32_t i = 0; i < n; ++i) {
    const Packet& p = batch[i];
    bool ok = false;
    if (p.verdict == Verdict::kTx) {
      const auto base = reinterpret_cast<uintptr_t>(s.area + s.rx_frame[i]);
      const auto data = reinterpret_cast<uintptr_t>(p.data);
      ok = data >= base && p.len > 0 && p.len <= s.opt.frame_size && data - base + p.len <= s.opt.frame_size;
      if (!ok) s.tx_errors.add();
    }
    s.tx_ok[i] = ok ? 1 : 0;
    want_tx += ok ? 1 : 0;
  }
  uint32_t idx = 0;
  uint32_t slots = 0;
  if (want_tx > 0) {
    slots = std::min(want_tx, xsk_prod_nb_free(&s.tx, want_tx));
    if (slots > 0 && xsk_ring_prod__reserve(&s.tx, slots, &idx) != slots) slots = 0;
  }

  uint32_t used = 0;
  for (uint32_t i = 0; i < n; ++i) {
    const Packet& p = batch[i];
    const uint64_t frame = s.rx_frame[i];
    if (!s.tx_ok[i]) {
      if (p.verdict == Verdict::kPass) s.passed_dropped.add();
      recycle(frame);
      continue;
    }
    if (used == slots) {
      s.tx_ring_full.add();
      recycle(frame);
      continue;
    }
    xdp_desc* d = xsk_ring_prod__tx_desc(&s.tx, idx + used);
    d->addr = frame + static_cast<uint64_t>(p.data - (s.area + frame));
    d->len = p.len;
    d->options = 0;
    ++used;
  }
  if (used > 0) xsk_ring_prod__submit(&s.tx, used);
  s.tx_outstanding += used;
  s.tx_packets.add(used);
  flush_recycled();
  if (used > 0 || s.tx_needs_kick) kick_tx();
}

uint32_t AfXdpIo::transmit(std::span<Packet> frames) {
  State& s = *s_;
  reap_completions();
  // Copied behind the kernel's headroom, as a received packet would lie.
  const uint32_t offset = XDP_PACKET_HEADROOM + s.opt.frame_headroom;
  uint32_t want = 0;
  for (const Packet& p : frames) want += p.len > 0 && p.len <= s.opt.frame_size - offset ? 1 : 0;
  const uint32_t have = std::min<uint32_t>(want, static_cast<uint32_t>(s.spare.size()));
  uint32_t idx = 0;
  uint32_t slots = have > 0 ? std::min(have, xsk_prod_nb_free(&s.tx, have)) : 0;
  if (slots > 0 && xsk_ring_prod__reserve(&s.tx, slots, &idx) != slots) slots = 0;
  uint32_t used = 0;
  for (const Packet& p : frames) {
    if (p.len == 0 || p.len > s.opt.frame_size - offset) {
      s.tx_errors.add();
      continue;
    }
    if (used == slots) {
      s.tx_ring_full.add();  // no reserve frame or TX slot left: the caller counts it unsent
      continue;
    }
    const uint64_t frame = s.spare.back();
    s.spare.pop_back();
    std::memcpy(s.area + frame + offset, p.data, p.len);
    xdp_desc* d = xsk_ring_prod__tx_desc(&s.tx, idx + used);
    d->addr = frame + offset;
    d->len = p.len;
    d->options = 0;
    ++used;
  }
  if (used > 0) {
    xsk_ring_prod__submit(&s.tx, used);
    s.tx_outstanding += used;
    s.tx_packets.add(used);
    kick_tx();
  }
  return used;
}

IoStats AfXdpIo::stats() const {
  const State& s = *s_;
  IoStats st;
  st.rx_packets = s.rx_packets.get();
  st.tx_packets = s.tx_packets.get();
  st.tx_ring_full = s.tx_ring_full.get();
  st.tx_errors = s.tx_errors.get();
  xdp_statistics k{};
  socklen_t len = sizeof(k);
  if (::getsockopt(s.fd, SOL_XDP, XDP_STATISTICS, &k, &len) == 0) {
    st.rx_kernel_drops = k.rx_dropped + k.rx_ring_full;
    st.tx_errors += k.tx_invalid_descs;
  }
  return st;
}

namespace {

// Entries between the consumer and the producer index of a ring. The indices live in memory
// shared with the kernel; the worker's cached copies are never read.
template <class Ring>
uint64_t ring_used(const Ring& r) {
  if (r.producer == nullptr || r.consumer == nullptr) return 0;
  const uint32_t prod = __atomic_load_n(r.producer, __ATOMIC_RELAXED);
  const uint32_t cons = __atomic_load_n(r.consumer, __ATOMIC_RELAXED);
  return std::min<uint32_t>(prod - cons, r.size);
}

}  // namespace

IoRingLevels AfXdpIo::ring_levels() const {
  const State& s = *s_;
  IoRingLevels r;
  r.rx_used = ring_used(s.rx);
  r.rx_size = s.rx.size;
  r.fill_used = ring_used(s.fill);
  r.fill_size = s.fill.size;
  r.tx_used = ring_used(s.tx);
  r.tx_size = s.tx.size;
  r.completion_used = ring_used(s.comp);
  r.completion_size = s.comp.size;
  return r;
}

AfXdpStats AfXdpIo::xdp_stats() const {
  const State& s = *s_;
  AfXdpStats st;
  st.passed_dropped = s.passed_dropped.get();
  st.tx_kick_errors = s.tx_kick_errors.get();
  xdp_statistics k{};
  socklen_t len = sizeof(k);
  if (::getsockopt(s.fd, SOL_XDP, XDP_STATISTICS, &k, &len) == 0) {
    st.rx_dropped = k.rx_dropped;
    st.rx_ring_full = k.rx_ring_full;
    st.rx_fill_ring_empty = k.rx_fill_ring_empty_descs;
    st.rx_invalid_descs = k.rx_invalid_descs;
    st.tx_invalid_descs = k.tx_invalid_descs;
  }
  return st;
}

std::string AfXdpIo::describe() const {
  return "af_xdp " + s_->opt.interface + " queue " + std::to_string(s_->opt.queue) +
         (s_->zero_copy ? " zero-copy" : " copy") + " worker " + std::to_string(s_->opt.worker);
}

bool AfXdpIo::zero_copy() const { return s_->zero_copy; }
const std::string& AfXdpIo::zero_copy_refused() const { return s_->zero_copy_refused; }
int AfXdpIo::fd() const { return s_->fd; }

}  // namespace l4mux
