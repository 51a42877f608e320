// A worker's packet source and sink on a NIC: one AF_PACKET ring or one AF_XDP socket per
// worker thread, never shared. The worker loop is
//   n = io.receive(batch, timeout); pipeline.process(batch[0..n)); io.complete(batch, n);
// receive() hands out frames in place (zero copy where the mechanism allows) with headroom
// in front for encapsulation; complete() transmits the kTx ones in one batched send and
// gives every buffer back to the kernel.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "../pipeline.h"

namespace l4mux {

// One list, X(member, "jsName"), as the counter sets in counters.h. rx_kernel_drops: the
// kernel could not queue a packet for us (ring full); rx_oversized: GRO/GSO super-frames or
// frames above the buffer, dropped; rx_ignored: not for the fast path (broadcast, multicast,
// outgoing), left to the kernel, which has its own copy; tx_errors: the kernel refused a
// transmit; tx_ring_full: no transmit slot, packet dropped.
#define L4MUX_IO_STATS(X)                  \
  X(rx_packets, "rxPackets")               \
  X(rx_kernel_drops, "rxKernelDrops")      \
  X(rx_oversized, "rxOversized")           \
  X(rx_ignored, "rxIgnored")               \
  X(tx_packets, "txPackets")               \
  X(tx_errors, "txErrors")                 \
  X(tx_ring_full, "txRingFull")

struct IoStats {
#define L4MUX_X(name, str) uint64_t name = 0;
  L4MUX_IO_STATS(L4MUX_X)
#undef L4MUX_X

  IoStats& operator+=(const IoStats& o) {
#define L4MUX_X(name, str) name += o.name;
    L4MUX_IO_STATS(L4MUX_X)
#undef L4MUX_X
    return *this;
  }
};

// How full the driver's rings are right now (gauges, in slots): AF_XDP's rx, fill, tx and
// completion rings in descriptors; AF_PACKET's receive ring in blocks (used: handed to us by
// the kernel and not yet given back), its sends go through sendmmsg (no tx ring: 0 of 0).
// Read from the rings' shared indices with relaxed loads: never stops or slows the worker.
#define L4MUX_IO_RING_LEVELS(X)              \
  X(rx_used, "rxUsed")                       \
  X(rx_size, "rxSize")                       \
  X(fill_used, "fillUsed")                   \
  X(fill_size, "fillSize")                   \
  X(tx_used, "txUsed")                       \
  X(tx_size, "txSize")                       \
  X(completion_used, "completionUsed")       \
  X(completion_size, "completionSize")

struct IoRingLevels {
#define L4MUX_X(name, str) uint64_t name = 0;
  L4MUX_IO_RING_LEVELS(L4MUX_X)
#undef L4MUX_X

  IoRingLevels& operator+=(const IoRingLevels& o) {
#define L4MUX_X(name, str) name += o.name;
    L4MUX_IO_RING_LEVELS(L4MUX_X)
#undef L4MUX_X
    return *this;
  }
};

class PacketIo {
 public:
  virtual ~PacketIo() = default;
  // Fills up to batch.size() packets; waits at most timeout_ms when none is ready.
  // Returns how many were received (0 on timeout). Never allocates.
  virtual uint32_t receive(std::span<Packet> batch, int timeout_ms) = 0;
  // Sends batch[i] for every i < n with verdict kTx, then releases all n buffers.
  virtual void complete(std::span<Packet> batch, uint32_t n) = 0;
  // Sends frames the caller owns (held packets re-injected by the worker), copied or sent
  // before it returns; how many were accepted (the rest are counted unsent by the caller).
  // Default: none (an I/O that cannot).
  virtual uint32_t transmit(std::span<Packet> frames) {
    (void)frames;
    return 0;
  }
  // An fd (an eventfd) whose becoming readable ends receive()'s wait early; receive() then
  // reads it (resetting it) and returns what it has. Default: ignored (waits end on timeout).
  virtual void set_wakeup_fd(int fd) { (void)fd; }
  // Safe to call from any thread (values are relaxed atomics or equivalent).
  virtual IoStats stats() const = 0;
  // Safe to call from any thread; drivers without rings report zeros.
  virtual IoRingLevels ring_levels() const { return {}; }
  virtual std::string describe() const = 0;  // e.g. "af_packet eth0 fanout 42 worker 1"
};

}  // namespace l4mux
