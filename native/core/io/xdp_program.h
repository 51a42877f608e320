// The l4mux XDP program (native/bpf/l4mux_xdp.bpf.c, compiled at build time and embedded in
// the library) attached to one interface: VIP traffic goes to the AF_XDP socket of its
// receive queue, everything else to the kernel.
//
// What is steered (see the .bpf.c): TCP/UDP matching a VIP (address, protocol, port, or
// port 0 = every port), and every other packet whose destination is a VIP address: ICMP,
// IPv4 fragments, IPv6 with extension headers, TCP/UDP to ports no VIP serves (the pipeline
// drops those by name). The host never sees traffic for a VIP address while a socket serves
// the queue; without one (no_socket) the packet goes to the kernel. Ethernet with at most one
// 802.1Q/802.1ad tag.
//
// Attachment is netlink XDP (bpf_xdp_attach), not libxdp's dispatcher (which needs bpffs).
// An XDP program attached that way outlives the process; so the destructor detaches it
// (only if it is still ours), and attach() replaces a leftover l4mux program of a crashed
// run but refuses to replace anybody else's program.
//
// One XdpProgram per interface, shared by the interface's AfXdpIo workers (which only need
// xsks_map_fd() while they open). set_vips() and stats() may be called from any thread.
// attach() and the destructor act on the interface of the calling thread's network namespace
// (an ifindex is per namespace): destroy the object in the namespace it was attached in.
// Elsewhere the detach finds another program (or none) and, being conditional on our program
// fd, leaves it alone.
//
// Built without libbpf/libxdp/clang (L4MUX_HAVE_AF_XDP undefined), attach() always fails
// with the reason, so callers need no #ifdef.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>

#include "../types.h"

namespace l4mux {

enum class XdpMode : uint8_t {
  kNative = 0,   // XDP_FLAGS_DRV_MODE: in the driver, before any skb exists
  kGeneric = 1,  // XDP_FLAGS_SKB_MODE: after skb allocation; works on every device
};

inline const char* xdp_mode_name(XdpMode m) { return m == XdpMode::kNative ? "native" : "generic"; }

struct XdpAttachOptions {
  std::string interface;
  XdpMode mode = XdpMode::kNative;
  // Size of the XSKMAP: queue ids at or above it cannot get a socket. 0 = the interface's
  // rx queue count (from sysfs), at least 1.
  uint32_t max_queues = 0;
};

// Packet counts of the XDP program, summed over CPUs.
struct XdpStats {
  uint64_t redirected_vip = 0;   // TCP/UDP matching a VIP (address, protocol, port)
  uint64_t redirected_addr = 0;  // other traffic to a VIP address (ICMP, fragments, ext headers, other ports)
  uint64_t passed = 0;           // not for a VIP: handed to the kernel
  uint64_t no_socket = 0;        // for a VIP but no AF_XDP socket on the queue: handed to the kernel
  uint64_t malformed = 0;        // IP header truncated or inconsistent: handed to the kernel
};

class XdpProgram {
 public:
  // Loads the embedded object and attaches it. nullptr with *error set (e.g. "native XDP
  // attach failed on eth0: Peer MTU is too large to set XDP (errno 34: Numerical result out
  // of range)") when anything fails.
  static std::unique_ptr<XdpProgram> attach(const XdpAttachOptions& options, std::string* error);

  ~XdpProgram();  // detaches the program (if it is still the one attached) and unloads it
  XdpProgram(const XdpProgram&) = delete;
  XdpProgram& operator=(const XdpProgram&) = delete;

  // Makes the VIP maps hold exactly `vips` (and their addresses): new keys are added before
  // stale ones are deleted, so a VIP present in both the old and the new set never misses a
  // packet. False with *error when the kernel refuses an update (e.g. map full).
  // `port_only` keys (a cluster's redirect port on the mux's own address) are steered by
  // their exact (address, protocol, port) alone: their address's other traffic stays the
  // kernel's (SSH, BGP).
  bool set_vips(std::span<const VipKey> vips, std::string* error, std::span<const VipKey> port_only = {});

  // The XSKMAP: AfXdpIo registers its socket at key = queue id.
  int xsks_map_fd() const;
  uint32_t max_queues() const { return max_queues_; }
  const std::string& interface() const { return interface_; }
  int ifindex() const { return ifindex_; }
  XdpMode mode() const { return mode_; }
  uint32_t program_id() const { return prog_id_; }
  XdpStats stats() const;

 private:
  XdpProgram() = default;
  struct Impl;

  std::unique_ptr<Impl> impl_;
  std::string interface_;
  int ifindex_ = 0;
  XdpMode mode_ = XdpMode::kNative;
  uint32_t prog_id_ = 0;
  uint32_t max_queues_ = 0;
  mutable std::mutex mutex_;  // serialises set_vips()
};

#if defined(L4MUX_HAVE_AF_XDP) && L4MUX_HAVE_AF_XDP
namespace xdp_detail {
// While alive, libbpf's and libxdp's messages on this thread are collected here instead of
// being printed (libbpf reports the kernel's netlink error text and the verifier log only
// through its print callback). Outside a capture, warnings go to stderr as libbpf would.
class LogCapture {
 public:
  LogCapture();
  ~LogCapture();
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;
  // The netlink extended-ack text of the last failed request ("Peer MTU is too large ...").
  std::string kernel_message() const;
  // The last `max_chars` characters of everything captured.
  std::string tail(size_t max_chars) const;

 private:
  std::string text_;
  std::string* previous_ = nullptr;
};
}  // namespace xdp_detail
#else
// Built without AF_XDP support: the program can never be attached.
struct XdpProgram::Impl {};
inline std::unique_ptr<XdpProgram> XdpProgram::attach(const XdpAttachOptions&, std::string* error) {
  if (error) *error = "built without AF_XDP support (clang, libbpf or libxdp missing at build time)";
  return nullptr;
}
inline XdpProgram::~XdpProgram() = default;
inline bool XdpProgram::set_vips(std::span<const VipKey>, std::string* error, std::span<const VipKey>) {
  if (error) *error = "built without AF_XDP support";
  return false;
}
inline int XdpProgram::xsks_map_fd() const { return -1; }
inline XdpStats XdpProgram::stats() const { return {}; }
#endif

}  // namespace l4mux
