// l4mux_pktgen: a bounded packet generator for benchmarks (the fallback when the kernel has
// no pktgen module). Sends TCP SYNs or UDP datagrams to a VIP from many source ports and
// addresses (so flows spread over ECMP paths, fanout members and backends) through an
// AF_PACKET socket, in sendmmsg batches, and stops by itself after --count packets or
// --duration seconds, whichever comes first. Prints a JSON summary.
//
//   l4mux_pktgen --interface IF --dst-mac MAC --src 10.9.0.1 --dst 192.0.2.10 [--dport 80]
//                [--proto tcp|udp] [--flows 4096] [--sources N] [--size 64] [--rate PPS]
//                --count N | --duration S
// --sources N: flow f comes from the address --src + (f mod N) instead (N distinct clients, as a
// SYN flood from many sources or new clients of a persistent VIP); up to 2^20 flows then.
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "../tests/frame_builder.h"

using namespace l4mux;
using namespace l4mux::testing;

namespace {

struct Options {
  std::string interface;
  MacAddr dst_mac{};
  MacAddr src_mac{};
  std::string src = "10.9.0.1";
  std::string dst;
  uint16_t dport = 80;
  uint8_t proto = kProtoTcp;
  uint32_t flows = 4096;
  uint32_t sources = 0;  // 0: the source address varies with the flow's high bits (16 at most)
  uint32_t size = 64;  // Ethernet frame size without FCS (>= 60)
  uint64_t rate = 0;   // packets per second; 0 = as fast as possible
  uint64_t count = 0;
  double duration = 0;
};

MacAddr parse_mac(const std::string& s) {
  MacAddr m{};
  unsigned v[6];
  if (std::sscanf(s.c_str(), "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6) {
    throw std::invalid_argument("bad MAC " + s);
  }
  for (int i = 0; i < 6; ++i) m[i] = static_cast<uint8_t>(v[i]);
  return m;
}

Options parse(int argc, char** argv) {
  std::map<std::string, std::string> a;
  for (int i = 1; i + 1 < argc; i += 2) a[argv[i]] = argv[i + 1];
  Options o;
  auto need = [&](const char* k) {
    if (!a.count(k)) throw std::invalid_argument(std::string("missing ") + k);
    return a[k];
  };
  o.interface = need("--interface");
  o.dst_mac = parse_mac(need("--dst-mac"));
  o.dst = need("--dst");
  if (a.count("--src")) o.src = a["--src"];
  if (a.count("--src-mac")) o.src_mac = parse_mac(a["--src-mac"]);
  if (a.count("--dport")) o.dport = static_cast<uint16_t>(std::stoul(a["--dport"]));
  if (a.count("--proto")) o.proto = a["--proto"] == "udp" ? kProtoUdp : kProtoTcp;
  if (a.count("--flows")) o.flows = static_cast<uint32_t>(std::stoul(a["--flows"]));
  if (a.count("--sources")) o.sources = static_cast<uint32_t>(std::stoul(a["--sources"]));
  if (a.count("--size")) o.size = static_cast<uint32_t>(std::stoul(a["--size"]));
  if (a.count("--rate")) o.rate = std::stoull(a["--rate"]);
  if (a.count("--count")) o.count = std::stoull(a["--count"]);
  if (a.count("--duration")) o.duration = std::stod(a["--duration"]);
  // Every run must end by itself.
  if (o.count == 0 && o.duration <= 0) throw std::invalid_argument("give --count N or --duration S");
  if (o.flows == 0 || o.flows > (o.sources != 0 ? (1u << 20) : 65536u)) {
    throw std::invalid_argument(o.sources != 0 ? "--flows 1..1048576 with --sources" : "--flows 1..65536");
  }
  if (a.count("--sources") && (o.sources == 0 || o.sources > (1u << 24))) throw std::invalid_argument("--sources 1..16777216");
  if (o.size < 60 || o.size > 1514) throw std::invalid_argument("--size 60..1514");
  return o;
}

// Prebuilt frames, one per flow: source port and the last byte of the source address vary.
std::vector<Bytes> build_frames(const Options& o) {
  std::vector<Bytes> frames;
  const IpAddr base = ip(o.src);
  const IpAddr dst = ip(o.dst);
  for (uint32_t f = 0; f < o.flows; ++f) {
    IpAddr src = base;
    if (o.sources != 0) {
      // The low 32 bits of the address, plus f mod N.
      uint8_t* low = src.is_v4() ? &src.bytes[0] : &src.bytes[12];
      const uint32_t v = load_be32(low) + f % o.sources;
      store_be32(low, v);
    } else if (src.is_v4()) {
      src.bytes[3] = static_cast<uint8_t>(base.bytes[3] + (f >> 12));
    } else {
      src.bytes[15] = static_cast<uint8_t>(base.bytes[15] + (f >> 12));
    }
    L4Spec l4;
    l4.proto = o.proto;
    l4.src_port = static_cast<uint16_t>(1024 + (f & 0xfff) * 15);
    l4.dst_port = o.dport;
    l4.tcp_flags = kTcpSyn;
    const uint32_t headers = 14 + (src.is_v4() ? 20 : 40) + (o.proto == kProtoTcp ? 20 : 8);
    l4.payload.assign(o.size > headers ? o.size - headers : 0, 'g');
    Bytes frame = ethernet(ip_packet(IpSpec{src, dst, o.proto}, l4_segment(src, dst, l4)));
    std::memcpy(frame.data(), o.dst_mac.data(), 6);
    std::memcpy(frame.data() + 6, o.src_mac.data(), 6);
    frames.push_back(std::move(frame));
  }
  return frames;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  try {
    o = parse(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "l4mux_pktgen: %s\n", e.what());
    return 2;
  }
  const int fd = socket(AF_PACKET, SOCK_RAW, 0);  // protocol 0: send only, receive nothing
  if (fd < 0) {
    std::perror("l4mux_pktgen: socket");
    return 1;
  }
  sockaddr_ll addr{};
  addr.sll_family = AF_PACKET;
  addr.sll_ifindex = static_cast<int>(if_nametoindex(o.interface.c_str()));
  if (addr.sll_ifindex == 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    std::fprintf(stderr, "l4mux_pktgen: interface %s: %s\n", o.interface.c_str(), std::strerror(errno));
    return 1;
  }
  const int one = 1;
  setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one));

  const std::vector<Bytes> frames = build_frames(o);
  constexpr uint32_t kBatch = 64;
  std::vector<iovec> iov(kBatch);
  std::vector<mmsghdr> msgs(kBatch);

  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto deadline = o.duration > 0 ? start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.duration))
                                       : Clock::time_point::max();
  uint64_t sent = 0;
  uint64_t errors = 0;
  size_t next = 0;
  while ((o.count == 0 || sent < o.count) && Clock::now() < deadline) {
    uint32_t n = kBatch;
    if (o.count != 0) n = static_cast<uint32_t>(std::min<uint64_t>(n, o.count - sent));
    if (o.rate != 0) {
      // Pace: never ahead of rate x elapsed.
      const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
      const auto allowed = static_cast<uint64_t>(elapsed * static_cast<double>(o.rate)) + 1;
      if (sent >= allowed) {
        std::this_thread::sleep_for(std::chrono::microseconds(50));
        continue;
      }
      n = static_cast<uint32_t>(std::min<uint64_t>(n, allowed - sent));
    }
    for (uint32_t i = 0; i < n; ++i) {
      const Bytes& f = frames[next];
      next = next + 1 == frames.size() ? 0 : next + 1;
      iov[i] = iovec{const_cast<uint8_t*>(f.data()), f.size()};
      msgs[i] = mmsghdr{};
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    const int r = sendmmsg(fd, msgs.data(), n, 0);
    if (r < 0) {
      ++errors;
      if (errno != ENOBUFS && errno != EAGAIN) break;
      continue;
    }
    sent += static_cast<uint64_t>(r);
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  close(fd);
  std::printf("{\"sent\": %llu, \"seconds\": %.3f, \"pps\": %.0f, \"send_errors\": %llu}\n",
              static_cast<unsigned long long>(sent), seconds, static_cast<double>(sent) / seconds,
              static_cast<unsigned long long>(errors));
  return 0;
}
