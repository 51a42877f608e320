// A TUN device (layer 3, no packet information header) owned by this object: the device
// exists while the file descriptor is open unless it was made persistent by someone else,
// so everything configured on it (addresses, routes, sysctls) disappears with the owner,
// even when the process is killed.
//
// Writing injects one IP packet into the kernel's receive path as if it had arrived on the
// device. A write is one packet: the kernel reads a whole writev() iovec as a single packet,
// so there is no batched write on a TUN file descriptor without virtio-net headers and GSO;
// one write() per packet it is, with no allocation on our side.
#pragma once

#include <cstdint>
#include <string>

namespace l4mux {

class Tun {
 public:
  // Opens /dev/net/tun and attaches to (or creates) the TUN device `name`
  // (IFF_TUN | IFF_NO_PI). With `bring_up`, the device is also set administratively up,
  // after its IPv6 address generation was turned off (addr_gen_mode 1: no link-local
  // address, so no router solicitations or MLD from the kernel into the device).
  // Throws std::system_error naming the step that failed.
  explicit Tun(const std::string& name, bool bring_up = true);
  ~Tun();
  Tun(Tun&& other) noexcept;
  Tun& operator=(Tun&& other) noexcept;
  Tun(const Tun&) = delete;
  Tun& operator=(const Tun&) = delete;

  // The name the kernel gave the device (the requested one, or the expanded pattern).
  const std::string& name() const { return name_; }
  int fd() const { return fd_; }
  int ifindex() const { return ifindex_; }

  // Writes one IPv4 or IPv6 packet. Returns 0 or the errno of the failed write (the device
  // is down: EIO; the packet is not IP or too short: EINVAL).
  int write_packet(const uint8_t* packet, uint32_t len) const;

  // Reads one packet the kernel routed to the device (non-blocking when the fd is, which it
  // is: O_NONBLOCK). Returns the length, or -errno (-EAGAIN: nothing queued).
  long read_packet(uint8_t* buf, uint32_t cap) const;

 private:
  int fd_ = -1;
  int ifindex_ = 0;
  std::string name_;
};

}  // namespace l4mux
