// PacketIo over AF_PACKET: one TPACKET_V3 receive ring per worker, the workers' sockets joined
// in one PACKET_FANOUT_HASH group so that the kernel steers every flow to one worker.
//
// Receive: the ring is block based (TPACKET_V3). receive() hands frames out in place, straight
// from the ring, with PACKET_RESERVE bytes of headroom in front of each so that the pipeline
// encapsulates in place; a block goes back to the kernel in the complete() that follows the
// batch holding its last frame. Only PACKET_HOST / PACKET_OTHERHOST frames reach the pipeline
// (the kernel keeps its own copy of everything, so ARP, ND and broadcasts are simply left to
// it); outgoing frames are not even queued (PACKET_IGNORE_OUTGOING). Frames the kernel cut
// short (tp_snaplen < tp_len) or longer than max_frame_len (GRO/GSO super-frames) are counted
// rx_oversized and never processed.
//
// Transmit: sendmmsg(), one call per batch, straight from the receive ring (see af_packet.cc
// for why not a TX ring), with PACKET_QDISC_BYPASS.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "../defaults.h"
#include "packet_io.h"

struct mmsghdr;
struct iovec;

namespace l4mux {

struct AfPacketOptions {
  // Fanout group id (per network namespace). 0: let the kernel pick an id nobody uses
  // (PACKET_FANOUT_FLAG_UNIQUEID) for worker 0 and have the other workers join it.
  uint16_t fanout_group = 0;
  // PACKET_FANOUT_FLAG_DEFRAG: the kernel reassembles IPv4 datagrams before the fanout and
  // hands the *reassembled* datagram to one socket. See af_packet.cc before turning it on.
  bool fanout_defrag = false;
  uint32_t block_size = defaults::kAfPacketBlockSize;  // bytes, a multiple of the page size
  uint32_t block_count = defaults::kAfPacketBlockCount;  // 8 MiB of ring per worker with the default block size
  uint32_t block_timeout_ms = defaults::kAfPacketBlockTimeoutMs;  // a partly filled block is handed to us after this long
  uint32_t headroom = defaults::kHeadroom;  // PACKET_RESERVE: bytes in front of each frame (>= 128)
  uint32_t max_frame_len = 0;      // 0: the interface MTU + 22 (Ethernet + two VLAN tags)
  uint32_t sndbuf = 4u << 20;      // SO_SNDBUF(FORCE) for the batched sends
  bool qdisc_bypass = true;        // PACKET_QDISC_BYPASS
};

class AfPacketIo final : public PacketIo {
 public:
  // How the socket enters the fanout group.
  enum class FanoutJoin { kJoin, kCreateUnique };

  // Opens, maps and binds the ring on `ifname` in the calling thread's network namespace and
  // joins fanout group `fanout_group` (ignored with kCreateUnique). Throws std::system_error
  // (or std::invalid_argument for bad options) with a message naming the step that failed.
  AfPacketIo(const std::string& ifname, uint32_t worker, const AfPacketOptions& options,
             uint16_t fanout_group, FanoutJoin join);
  ~AfPacketIo() override;
  AfPacketIo(const AfPacketIo&) = delete;
  AfPacketIo& operator=(const AfPacketIo&) = delete;

  uint32_t receive(std::span<Packet> batch, int timeout_ms) override;
  void complete(std::span<Packet> batch, uint32_t n) override;
  uint32_t transmit(std::span<Packet> frames) override;
  void set_wakeup_fd(int fd) override { wakeup_fd_ = fd; }
  IoStats stats() const override;
  IoRingLevels ring_levels() const override;
  std::string describe() const override;

  uint16_t fanout_group() const { return fanout_group_; }
  int ifindex() const { return ifindex_; }
  uint32_t max_frame_len() const { return max_frame_len_; }

 private:
  class Fd {
   public:
    Fd() = default;
    ~Fd();
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    void reset(int fd);
    int get() const { return fd_; }

   private:
    int fd_ = -1;
  };
  class Mapping {
   public:
    Mapping() = default;
    ~Mapping();
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;
    void reset(uint8_t* addr, size_t len);
    uint8_t* get() const { return addr_; }

   private:
    uint8_t* addr_ = nullptr;
    size_t len_ = 0;
  };
  // Single-writer counter readable from any thread (the worker writes, anyone reads).
  class Stat {
   public:
    void add(uint64_t n) { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
    uint64_t get() const { return v_.load(std::memory_order_relaxed); }

   private:
    std::atomic<uint64_t> v_{0};
  };

  void setup(const std::string& ifname, const AfPacketOptions& options, uint16_t fanout_group,
             FanoutJoin join);
  uint8_t* block(uint32_t index) const { return ring_.get() + size_t{index} * block_size_; }
  bool take_frame(Packet& out);  // the next frame of the open block; false: skipped (counted)
  void close_block();
  void release_blocks();
  void clear_socket_error();
  uint32_t send_batch(uint32_t count);  // how many the kernel took

  std::string ifname_;
  uint32_t worker_ = 0;
  int ifindex_ = 0;
  uint16_t fanout_group_ = 0;
  uint32_t block_size_ = 0;
  uint32_t block_count_ = 0;
  uint32_t max_frame_len_ = 0;
  Fd fd_;
  Mapping ring_;
  int wakeup_fd_ = -1;  // not owned

  // Receive position: the next block to look at, the open block's remaining frames.
  uint32_t next_block_ = 0;
  bool block_open_ = false;
  uint32_t frames_left_ = 0;
  uint8_t* frame_ = nullptr;
  // Blocks fully handed out but not yet returned: [release_first_, +release_count_).
  uint32_t release_first_ = 0;
  uint32_t release_count_ = 0;

  // Transmit scratch, allocated once (kMaxBatch entries each).
  std::unique_ptr<mmsghdr[]> msgs_;
  std::unique_ptr<iovec[]> iovs_;

  Stat rx_packets_;
  Stat rx_oversized_;
  Stat rx_ignored_;
  Stat tx_packets_;
  Stat tx_errors_;
  Stat tx_ring_full_;
  mutable std::atomic<uint64_t> rx_kernel_drops_{0};  // read-and-reset from the kernel
};

// One AfPacketIo per worker on `ifname`, all in one fanout group. With options.fanout_group
// 0, worker 0's socket creates a group with a kernel-chosen unique id and later workers join
// it (so call the factory for worker 0 first, as Engine does).
std::function<std::unique_ptr<PacketIo>(uint32_t worker)> make_af_packet_factory(
    const std::string& ifname, const AfPacketOptions& options);

}  // namespace l4mux
