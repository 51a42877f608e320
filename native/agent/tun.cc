#include "tun.h"

#include <fcntl.h>
#include <net/if.h>  // not <linux/if.h>: one definition of struct ifreq across the library (LTO checks)
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>
#include <utility>

namespace l4mux {
namespace {

[[noreturn]] void fail(int err, const std::string& what) {
  throw std::system_error(err, std::generic_category(), what);
}

}  // namespace

Tun::Tun(const std::string& name, bool bring_up) {
  if (name.empty() || name.size() >= IFNAMSIZ) {
    fail(EINVAL, "tun: device name '" + name + "' must have 1 to " + std::to_string(IFNAMSIZ - 1) + " characters");
  }
  fd_ = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd_ < 0) fail(errno, "tun: open /dev/net/tun");

  ifreq ifr{};
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  std::memcpy(ifr.ifr_name, name.data(), name.size());
  if (::ioctl(fd_, TUNSETIFF, &ifr) < 0) {
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    fail(err, "tun: TUNSETIFF " + name);
  }
  name_.assign(ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ));

  // Interface ioctls go through any socket of the namespace.
  const int sock = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) {
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    fail(err, "tun: socket for interface ioctls");
  }
  auto ioctl_or_throw = [&](unsigned long request, ifreq& req, const char* what) {
    if (::ioctl(sock, request, &req) < 0) {
      const int err = errno;
      ::close(sock);
      ::close(fd_);
      fd_ = -1;
      fail(err, std::string("tun: ") + what + " " + name_);
    }
  };
  ifreq q{};
  std::memcpy(q.ifr_name, name_.data(), name_.size());
  ioctl_or_throw(SIOCGIFINDEX, q, "SIOCGIFINDEX");
  ifindex_ = q.ifr_ifindex;
  if (bring_up) {
    // No IPv6 link-local address (addrgenmode none) before the device goes up: otherwise
    // the kernel sends router solicitations into it, the first thing its reader would get.
    // Best effort: the file is missing when IPv6 is disabled. /proc/sys/net follows the
    // network namespace of the calling thread, as the device does.
    const std::string sysctl = "/proc/sys/net/ipv6/conf/" + name_ + "/addr_gen_mode";
    const int sfd = ::open(sysctl.c_str(), O_WRONLY | O_CLOEXEC);
    if (sfd >= 0) {
      (void)!::write(sfd, "1", 1);
      ::close(sfd);
    }
    ifreq f{};
    std::memcpy(f.ifr_name, name_.data(), name_.size());
    ioctl_or_throw(SIOCGIFFLAGS, f, "SIOCGIFFLAGS");
    f.ifr_flags = static_cast<short>(f.ifr_flags | IFF_UP);
    ioctl_or_throw(SIOCSIFFLAGS, f, "SIOCSIFFLAGS (up)");
  }
  ::close(sock);
}

Tun::~Tun() {
  if (fd_ >= 0) ::close(fd_);
}

Tun::Tun(Tun&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), ifindex_(other.ifindex_), name_(std::move(other.name_)) {}

Tun& Tun::operator=(Tun&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    ifindex_ = other.ifindex_;
    name_ = std::move(other.name_);
  }
  return *this;
}

int Tun::write_packet(const uint8_t* packet, uint32_t len) const {
  for (;;) {
    const ssize_t n = ::write(fd_, packet, len);
    if (n >= 0) return n == static_cast<ssize_t>(len) ? 0 : EIO;
    if (errno != EINTR) return errno;
  }
}

long Tun::read_packet(uint8_t* buf, uint32_t cap) const {
  for (;;) {
    const ssize_t n = ::read(fd_, buf, cap);
    if (n >= 0) return static_cast<long>(n);
    if (errno != EINTR) return -errno;
  }
}

}  // namespace l4mux
