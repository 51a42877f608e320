// The backend-side decapsulator (`l4mux agent`). One native thread:
//
//   AF_PACKET socket on the backend's interface (ETH_P_ALL, classic BPF filter: only frames
//   addressed to this host whose outer destination is one of the backend's addresses and
//   whose protocol is IPIP / IPv6 / GRE or UDP to a GUE port reach user space)
//     -> recvmmsg batches -> decapsulate() -> one write() per inner packet to the TUN device
//
// The kernel's IP stack inside the TUN device then delivers the inner packet (to a VIP
// configured locally) and the service answers the client directly (direct server return).
//
// ICMP suppression. The kernel receives the tunnel packets too (AF_PACKET taps are copies):
// without ipip / ip_gre / ip6_tunnel / fou it would answer every one with ICMP "protocol
// unreachable" (IPv4 proto 4 / 41 / 47), ICMPv6 "unknown next header", or "port
// unreachable" (GUE). The agent prevents that with sink sockets it owns: one raw socket per
// tunnel protocol and family, and one UDP socket per GUE port and family, each bound to the
// backend's address and carrying a BPF filter that refuses everything. The kernel sends
// those errors only when no socket claims the packet (raw_local_deliver / udp lookup); a
// claiming socket whose filter drops the packet still claims it. So: no ICMP errors, no
// packet queued anywhere, nothing installed in the system that could outlive the process
// (the sockets close with it, even on SIGKILL), and no dependency on nft / iptables (absent
// on the lab machines). A GUE port or tunnel address already claimed by another process
// makes start() fail loudly instead of two decapsulators fighting. Cost: the kernel still
// runs its IP input path on each tunnel packet (one skb clone per raw match); where that
// matters, a tc ingress drop after the AF_PACKET tap is the heavier-weight alternative.
#pragma once

#include <linux/filter.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "counters.h"
#include "decap.h"
#include "tun.h"

namespace l4mux {

struct AgentConfig {
  std::string interface;  // where tunnel packets arrive (must exist in this namespace)
  std::string tun;        // TUN device to create (or attach to)
  DecapConfig decap;  // mux_sources and vips must be given: the agent is no open relay
  bool suppress_icmp = true;  // open the sink sockets described above
  uint32_t batch = 32;        // recvmmsg batch
  uint32_t frame_size = 65536 + 256;  // per slot; larger frames (GRO) are counted and dropped
  int poll_timeout_ms = 200;
};

enum class AgentTunnel : uint8_t { k4in4, k6in6, k4in6, k6in4, kCount };

inline constexpr std::array<const char*, 3> kAgentEncapNames = {"ipip", "gre", "gue"};
inline constexpr std::array<const char*, 4> kAgentTunnelNames = {"4in4", "6in6", "4in6", "6in4"};

struct AgentCounters {
  Counter rx_frames;          // frames the filter let through
  Counter rx_bytes;
  Counter rx_truncated;       // larger than a buffer slot: dropped
  Counter rx_errors;          // recvmmsg failures (interface down, ...)
  Counter kernel_drops;       // PACKET_STATISTICS tp_drops: the socket queue was full
  Counter decapsulated;
  Counter tun_packets;        // inner packets written to the TUN device
  Counter tun_bytes;
  Counter tun_errors;         // write() refused (device down, ...)
  Counter tun_discarded;      // packets the kernel routed to the TUN device: read, dropped
  Counter checksums_finalized;  // partial inner checksums completed before injection
  std::array<Counter, kDecapStatusCount> status;  // every frame, by decapsulate() outcome
  std::array<Counter, 3> by_encap;                // decapsulated, by Encap
  std::array<Counter, static_cast<size_t>(AgentTunnel::kCount)> by_tunnel;
};

// The classic BPF program attached to the AF_PACKET socket (exposed for tests).
std::vector<sock_filter> build_tunnel_filter(const DecapConfig& config);

class Agent {
 public:
  explicit Agent(AgentConfig config);  // throws std::invalid_argument on a bad config
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Opens the TUN device (brought up), the sink sockets and the packet socket, then starts
  // the thread. Throws std::system_error naming the step; nothing stays open on failure.
  void start();
  // Stops the thread and closes everything (the TUN device disappears with its addresses).
  // Idempotent; safe to call from any thread but the agent's own.
  void stop();

  bool running() const { return running_.load(std::memory_order_acquire); }
  // Why the loop ended by itself (the interface disappeared, ...); empty otherwise.
  std::string loop_error() const;
  const AgentCounters& counters() const { return counters_; }
  const AgentConfig& config() const { return config_; }
  std::string tun_name() const;
  int interface_index() const { return ifindex_; }

 private:
  void open_packet_socket();
  void open_sinks();
  void close_all();
  void run();
  void process(uint8_t* frame, uint32_t len, bool checksum_not_ready);
  void poll_kernel_drops();

  AgentConfig config_;
  AgentCounters counters_;
  std::atomic<bool> running_{false};
  std::atomic<bool> stop_requested_{false};
  std::thread thread_;
  std::mutex control_;  // start / stop
  mutable std::mutex error_mutex_;
  std::string loop_error_;

  int packet_fd_ = -1;
  int wake_fd_ = -1;
  int ifindex_ = 0;
  std::unique_ptr<Tun> tun_;
  std::vector<int> sink_fds_;

  // Receive buffers, allocated once by start().
  std::vector<uint8_t> frames_;
  std::vector<uint8_t> control_buf_;
  std::vector<uint8_t> drain_buf_;
};

}  // namespace l4mux
