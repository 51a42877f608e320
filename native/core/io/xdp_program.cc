#include "xdp_program.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/ethtool.h>
#include <linux/if_link.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <xdp/libxdp.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <vector>

// The compiled native/bpf/l4mux_xdp.bpf.c, generated into the build directory by
// native/cmake/xdp.cmake.
namespace l4mux::embedded {
extern const unsigned char kXdpObject[];
extern const std::size_t kXdpObjectSize;
}  // namespace l4mux::embedded

namespace l4mux {
namespace {

constexpr const char* kProgramName = "l4mux_xdp";  // also the kernel's name for it (< 16 chars)
constexpr uint32_t kDefaultMaxQueues = 256;
constexpr uint32_t kQueueLimit = 4096;

// Mirrors of the map keys in l4mux_xdp.bpf.c.
struct BpfVipKey {
  uint8_t addr[16];
  uint16_t port;  // network byte order
  uint8_t family;
  uint8_t proto;
};
static_assert(sizeof(BpfVipKey) == 20);

struct BpfVipAddrKey {
  uint8_t addr[16];
  uint8_t family;
  uint8_t pad[3];
};
static_assert(sizeof(BpfVipAddrKey) == 20);

// The map keys of a VIP (or a steered address and port); the address must have a family.
BpfVipKey bpf_vip_key(const VipKey& v) {
  BpfVipKey k{};
  std::memcpy(k.addr, v.addr.bytes.data(), v.addr.size());
  k.port = htons(v.port);
  k.family = v.addr.is_v4() ? 4 : 6;
  k.proto = v.proto;
  return k;
}

BpfVipAddrKey bpf_vip_addr_key(const VipKey& v) {
  BpfVipAddrKey a{};
  std::memcpy(a.addr, v.addr.bytes.data(), v.addr.size());
  a.family = v.addr.is_v4() ? 4 : 6;
  return a;
}

enum XdpStat : uint32_t {
  kStatRedirectVip = 0,
  kStatRedirectAddr = 1,
  kStatPass = 2,
  kStatNoSocket = 3,
  kStatMalformed = 4,
  kStatCount = 5,
};

std::string errno_text(int err) {
  if (err < 0) err = -err;
  return "errno " + std::to_string(err) + ": " + std::strerror(err);
}

uint32_t mode_flag(XdpMode mode) {
  return mode == XdpMode::kNative ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
}

// The XSKMAP size: every rx queue the device may ever have.
uint32_t queue_capacity(const std::string& ifname) {
  const int sock = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return kDefaultMaxQueues;
  ethtool_channels ch{};
  ch.cmd = ETHTOOL_GCHANNELS;
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, ifname.data(), std::min(ifname.size(), size_t{IFNAMSIZ - 1}));
  ifr.ifr_data = reinterpret_cast<char*>(&ch);
  const int rc = ::ioctl(sock, SIOCETHTOOL, &ifr);
  ::close(sock);
  if (rc < 0) return kDefaultMaxQueues;
  const uint32_t n = std::max({ch.max_rx, ch.max_combined, ch.rx_count + ch.combined_count, 1u});
  return std::min(n, kQueueLimit);
}

std::string describe_attached(const char* what, uint32_t id) {
  std::string name = "?";
  const int fd = bpf_prog_get_fd_by_id(id);
  if (fd >= 0) {
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) name = info.name;
    ::close(fd);
  }
  return std::string(what) + " program '" + name + "' (id " + std::to_string(id) + ")";
}

bool is_ours(uint32_t id, int* fd_out) {
  const int fd = bpf_prog_get_fd_by_id(id);
  if (fd < 0) return false;
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0 && std::strcmp(info.name, kProgramName) == 0 &&
      info.type == BPF_PROG_TYPE_XDP) {
    *fd_out = fd;
    return true;
  }
  ::close(fd);
  return false;
}

// A leftover l4mux program (a run that ended without detaching) is removed; anybody else's
// program makes attach fail: replacing it would silently break whatever installed it.
bool clear_leftover(int ifindex, const std::string& ifname, std::string* error) {
  bpf_xdp_query_opts q{};
  q.sz = sizeof(q);
  if (const int rc = bpf_xdp_query(ifindex, 0, &q); rc < 0) {
    *error = "XDP query failed on " + ifname + ": " + errno_text(rc);
    return false;
  }
  struct Slot {
    uint32_t id;
    uint32_t flag;
    const char* what;
  };
  const Slot slots[] = {{q.drv_prog_id, XDP_FLAGS_DRV_MODE, "native XDP"},
                        {q.skb_prog_id, XDP_FLAGS_SKB_MODE, "generic XDP"},
                        {q.hw_prog_id, XDP_FLAGS_HW_MODE, "offloaded XDP"}};
  for (const Slot& s : slots) {
    if (s.id == 0) continue;
    int fd = -1;
    if (!is_ours(s.id, &fd)) {
      *error = ifname + " already has " + describe_attached(s.what, s.id) +
               " attached; l4mux does not replace another program (detach it first)";
      return false;
    }
    bpf_xdp_attach_opts opts{};
    opts.sz = sizeof(opts);
    opts.old_prog_fd = fd;
    const int rc = bpf_xdp_detach(ifindex, s.flag, &opts);
    ::close(fd);
    if (rc < 0 && rc != -EEXIST && rc != -ENOENT) {
      *error = "could not detach the leftover l4mux " + std::string(s.what) + " program from " + ifname +
               ": " + errno_text(rc);
      return false;
    }
  }
  return true;
}

}  // namespace

// ---- libbpf / libxdp log capture ----

namespace xdp_detail {
namespace {

thread_local std::string* t_capture = nullptr;

int print_to(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (t_capture != nullptr) {
    char buf[2048];
    const int n = std::vsnprintf(buf, sizeof(buf), fmt, args);
    if (n > 0) t_capture->append(buf, std::min<size_t>(static_cast<size_t>(n), sizeof(buf) - 1));
    return 0;
  }
  if (level == LIBBPF_DEBUG) return 0;
  return std::vfprintf(stderr, fmt, args);
}

int libbpf_print(enum libbpf_print_level level, const char* fmt, va_list args) {
  return print_to(level, fmt, args);
}

int libxdp_print(enum libxdp_print_level level, const char* fmt, va_list args) {
  return print_to(static_cast<enum libbpf_print_level>(level), fmt, args);
}

std::once_flag g_print_once;

}  // namespace

LogCapture::LogCapture() {
  std::call_once(g_print_once, [] {
    libbpf_set_print(libbpf_print);
    libxdp_set_print(libxdp_print);
  });
  previous_ = t_capture;
  t_capture = &text_;
}

LogCapture::~LogCapture() { t_capture = previous_; }

std::string LogCapture::kernel_message() const {
  static constexpr std::string_view kTag = "Kernel error message: ";
  const size_t at = text_.rfind(kTag);
  if (at == std::string::npos) return {};
  const size_t begin = at + kTag.size();
  const size_t end = text_.find('\n', begin);
  return text_.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
}

std::string LogCapture::tail(size_t max_chars) const {
  std::string t = text_;
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
  if (t.size() > max_chars) t = "..." + t.substr(t.size() - max_chars);
  return t;
}

}  // namespace xdp_detail

// ---- XdpProgram ----

struct XdpProgram::Impl {
  bpf_object* obj = nullptr;
  int prog_fd = -1;
  int vips_fd = -1;
  int addrs_fd = -1;
  int xsks_fd = -1;
  int stats_fd = -1;
  bool attached = false;

  ~Impl() {
    if (obj != nullptr) bpf_object__close(obj);
  }
};

std::unique_ptr<XdpProgram> XdpProgram::attach(const XdpAttachOptions& options, std::string* error) {
  std::string scratch;
  if (error == nullptr) error = &scratch;
  const std::string& ifname = options.interface;
  const char* mode_text = xdp_mode_name(options.mode);

  const unsigned ifindex = if_nametoindex(ifname.c_str());
  if (ifname.empty() || ifindex == 0) {
    *error = "no interface '" + ifname + "' in this network namespace";
    return nullptr;
  }

  std::unique_ptr<XdpProgram> self(new XdpProgram());
  self->impl_ = std::make_unique<Impl>();
  Impl& impl = *self->impl_;
  self->interface_ = ifname;
  self->ifindex_ = static_cast<int>(ifindex);
  self->mode_ = options.mode;
  self->max_queues_ = options.max_queues != 0 ? std::min(options.max_queues, kQueueLimit) : queue_capacity(ifname);

  xdp_detail::LogCapture log;
  bpf_object_open_opts open_opts{};
  open_opts.sz = sizeof(open_opts);
  open_opts.object_name = kProgramName;
  impl.obj = bpf_object__open_mem(embedded::kXdpObject, embedded::kXdpObjectSize, &open_opts);
  if (impl.obj == nullptr) {
    *error = "cannot open the embedded XDP object: " + errno_text(errno) + " " + log.tail(600);
    return nullptr;
  }
  bpf_map* vips = bpf_object__find_map_by_name(impl.obj, "vips");
  bpf_map* addrs = bpf_object__find_map_by_name(impl.obj, "vip_addrs");
  bpf_map* xsks = bpf_object__find_map_by_name(impl.obj, "xsks");
  bpf_map* stats = bpf_object__find_map_by_name(impl.obj, "xdp_stats");
  bpf_program* prog = bpf_object__find_program_by_name(impl.obj, kProgramName);
  if (!vips || !addrs || !xsks || !stats || !prog) {
    *error = "the embedded XDP object lacks a map or the program (build mismatch)";
    return nullptr;
  }
  if (bpf_map__key_size(vips) != sizeof(BpfVipKey) || bpf_map__key_size(addrs) != sizeof(BpfVipAddrKey) ||
      bpf_map__value_size(stats) != sizeof(uint64_t)) {
    *error = "the embedded XDP object's map layout differs from xdp_program.cc (build mismatch)";
    return nullptr;
  }
  if (const int rc = bpf_map__set_max_entries(xsks, self->max_queues_); rc < 0) {
    *error = "cannot size the XSKMAP: " + errno_text(rc);
    return nullptr;
  }
  if (const int rc = bpf_object__load(impl.obj); rc < 0) {
    *error = "loading the XDP program failed: " + errno_text(rc) + "; " + log.tail(1500);
    return nullptr;
  }
  impl.prog_fd = bpf_program__fd(prog);
  impl.vips_fd = bpf_map__fd(vips);
  impl.addrs_fd = bpf_map__fd(addrs);
  impl.xsks_fd = bpf_map__fd(xsks);
  impl.stats_fd = bpf_map__fd(stats);

  if (!clear_leftover(self->ifindex_, ifname, error)) return nullptr;

  const int rc = bpf_xdp_attach(self->ifindex_, impl.prog_fd, mode_flag(options.mode) | XDP_FLAGS_UPDATE_IF_NOEXIST,
                                nullptr);
  if (rc < 0) {
    const std::string kernel = log.kernel_message();
    *error = std::string(mode_text) + " XDP attach failed on " + ifname + ": " +
             (kernel.empty() ? "" : kernel + " ") + "(" + errno_text(rc) + ")";
    return nullptr;
  }
  impl.attached = true;

  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(impl.prog_fd, &info, &len) == 0) self->prog_id_ = info.id;
  return self;
}

XdpProgram::~XdpProgram() {
  if (!impl_ || !impl_->attached) return;
  // Only our program is removed: with old_prog_fd, the kernel refuses (EEXIST) when another
  // one has replaced it meanwhile. A vanished interface (namespace gone) is not an error.
  xdp_detail::LogCapture quiet;
  bpf_xdp_attach_opts opts{};
  opts.sz = sizeof(opts);
  opts.old_prog_fd = impl_->prog_fd;
  bpf_xdp_detach(ifindex_, mode_flag(mode_), &opts);
}

int XdpProgram::xsks_map_fd() const { return impl_->xsks_fd; }

bool XdpProgram::set_vips(std::span<const VipKey> vip_keys, std::string* error, std::span<const VipKey> port_only) {
  std::string scratch;
  if (error == nullptr) error = &scratch;
  std::lock_guard lock(mutex_);

  auto less20 = [](const auto& a, const auto& b) { return std::memcmp(&a, &b, sizeof(a)) < 0; };
  auto eq20 = [](const auto& a, const auto& b) { return std::memcmp(&a, &b, sizeof(a)) == 0; };

  std::vector<BpfVipKey> want;
  std::vector<BpfVipAddrKey> want_addrs;
  want.reserve(vip_keys.size());
  want_addrs.reserve(vip_keys.size());
  for (const VipKey& v : vip_keys) {
    if (!v.addr.is_v4() && !v.addr.is_v6()) {
      *error = "VIP without an address family";
      return false;
    }
    want.push_back(bpf_vip_key(v));
    want_addrs.push_back(bpf_vip_addr_key(v));
  }
  for (const VipKey& v : port_only) {
    if (!v.addr.is_v4() && !v.addr.is_v6()) {
      *error = "steering key without an address family";
      return false;
    }
    want.push_back(bpf_vip_key(v));
  }
  std::sort(want.begin(), want.end(), less20);
  want.erase(std::unique(want.begin(), want.end(), eq20), want.end());
  std::sort(want_addrs.begin(), want_addrs.end(), less20);
  want_addrs.erase(std::unique(want_addrs.begin(), want_addrs.end(), eq20), want_addrs.end());

  // Add first, then delete what is no longer wanted.
  auto add = [&](int fd, const auto& wanted, const char* what) -> bool {
    const uint32_t one = 1;
    for (const auto& k : wanted) {
      if (const int rc = bpf_map_update_elem(fd, &k, &one, BPF_ANY); rc < 0) {
        *error = std::string("updating the XDP ") + what + " map failed: " + errno_text(rc) +
                 (rc == -E2BIG ? " (the map is full)" : "");
        return false;
      }
    }
    return true;
  };
  auto prune = [&](int fd, const auto& wanted, const char* what) -> bool {
    using Key = typename std::decay_t<decltype(wanted)>::value_type;
    std::vector<Key> present;
    Key cur{};
    Key next{};
    const Key* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
      present.push_back(next);
      cur = next;
      prev = &cur;
    }
    for (const Key& k : present) {
      if (std::binary_search(wanted.begin(), wanted.end(), k, less20)) continue;
      if (const int rc = bpf_map_delete_elem(fd, &k); rc < 0 && rc != -ENOENT) {
        *error = std::string("deleting from the XDP ") + what + " map failed: " + errno_text(rc);
        return false;
      }
    }
    return true;
  };
  // A new VIP address is steered as a whole (ICMP, fragments) no later than its ports; a
  // removed one keeps it until its ports are gone.
  return add(impl_->addrs_fd, want_addrs, "VIP address") && add(impl_->vips_fd, want, "VIP") &&
         prune(impl_->vips_fd, want, "VIP") && prune(impl_->addrs_fd, want_addrs, "VIP address");
}

XdpStats XdpProgram::stats() const {
  XdpStats s;
  const int ncpus = libbpf_num_possible_cpus();
  if (ncpus <= 0) return s;
  std::vector<uint64_t> values(static_cast<size_t>(ncpus));
  auto sum = [&](uint32_t key) -> uint64_t {
    std::fill(values.begin(), values.end(), 0);
    if (bpf_map_lookup_elem(impl_->stats_fd, &key, values.data()) != 0) return 0;
    uint64_t total = 0;
    for (uint64_t v : values) total += v;
    return total;
  };
  s.redirected_vip = sum(kStatRedirectVip);
  s.redirected_addr = sum(kStatRedirectAddr);
  s.passed = sum(kStatPass);
  s.no_socket = sum(kStatNoSocket);
  s.malformed = sum(kStatMalformed);
  return s;
}

}  // namespace l4mux
