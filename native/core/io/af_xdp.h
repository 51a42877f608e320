// AF_XDP packet I/O: one XDP socket per worker, bound to (interface, rx queue), with its own
// UMEM. The XDP program (XdpProgram) redirects the queue's VIP traffic to the socket;
// everything else never leaves the kernel.
//
// Frames: the UMEM is `frame_count` frames of `frame_size` bytes (aligned mode). The kernel
// writes a received packet XDP_PACKET_HEADROOM (256) + `frame_headroom` bytes into its frame;
// all bytes in front of it are ours, so encapsulation prepends its headers in place and the
// frame goes back out on the TX ring with the adjusted address and length.
//
// Frame cycle: fill ring -> (kernel) -> rx ring -> receive() -> pipeline ->
//   complete(): kTx -> tx ring -> (kernel sends) -> completion ring -> fill ring
//               kDrop, kPass -> fill ring
// The fill ring has one slot per frame, so a returned frame always has a slot.
//
// transmit() sends packets that are not in a received frame (held packets of persistence,
// released once the slow path answers): each is copied into a frame of a small reserve that
// never goes on the fill ring, and that frame returns to the reserve from the completion ring.
//
// kPass cannot be honoured: a frame taken by AF_XDP has no way back into the kernel's stack.
// The XDP program only redirects traffic for VIP addresses, so such verdicts are rare; they
// are counted (passed_dropped) and the frame is recycled.
//
// Checksums: AF_XDP has no equivalent of TP_STATUS_CSUMNOTREADY. Packets a local stack sent
// over veth arrive with CHECKSUM_PARTIAL checksums (measured on veth, native and generic XDP);
// receive() recognises them by value (see detect_partial_checksums).
//
// Zero copy (XDP_ZEROCOPY) needs driver support and a native-mode program; kAuto tries it and
// falls back to copy mode (XDP_COPY), which works on every device, veth included.
//
// Built without libbpf/libxdp/clang (L4MUX_HAVE_AF_XDP undefined), open_af_xdp() always
// returns nullptr with the reason, so `io: auto` can fall back to AF_PACKET without #ifdefs.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "../defaults.h"
#include "packet_io.h"

namespace l4mux {

enum class AfXdpZeroCopy : uint8_t {
  kAuto = 0,     // zero copy if the driver can, else copy mode
  kRequire = 1,  // zero copy or fail
  kOff = 2,      // copy mode
};

struct AfXdpOptions {
  std::string interface;
  uint32_t queue = 0;
  int xsks_map_fd = -1;  // XdpProgram::xsks_map_fd() of the program attached to `interface`
  AfXdpZeroCopy zero_copy = AfXdpZeroCopy::kAuto;
  // Deep enough to ride out a worker being descheduled for ~30 ms at 250k pps (shared or
  // oversubscribed hosts): the rx ring, and frames to fill it, are the only buffer AF_XDP has.
  uint32_t frame_count = defaults::kAfXdpFrameCount;  // UMEM frames, power of two (16384 x 4096 B = 64 MiB per worker)
  uint32_t frame_size = defaults::kAfXdpFrameSize;    // 2048 or 4096
  uint32_t frame_headroom = 0;   // extra headroom on top of the kernel's XDP_PACKET_HEADROOM (256)
  uint32_t ring_size = defaults::kAfXdpRingSize;  // rx, tx and completion rings, power of two
  uint32_t max_batch = kMaxBatch;  // the largest batch receive() fills
  // Frames kept off the fill ring for transmit() (the last ones of the UMEM); at most half.
  uint32_t transmit_frames = defaults::kAfXdpTransmitFrames;
  // Mark TCP/UDP packets whose checksum field holds only the pseudo-header sum (Linux's
  // CHECKSUM_PARTIAL state, which veth passes through XDP unchanged) kPacketChecksumPartial,
  // so that the pipeline finalizes their checksum. Costs a look at the fixed headers.
  bool detect_partial_checksums = true;
  uint32_t worker = 0;           // for describe()
};

// AF_XDP specifics beyond IoStats.
struct AfXdpStats {
  uint64_t passed_dropped = 0;        // kPass verdicts: the frame cannot go back to the kernel
  uint64_t rx_dropped = 0;            // kernel: no fill buffer, or frame larger than the buffer
  uint64_t rx_ring_full = 0;          // kernel: our rx ring was full
  uint64_t rx_fill_ring_empty = 0;    // kernel: times the fill ring was found empty
  uint64_t rx_invalid_descs = 0;
  uint64_t tx_invalid_descs = 0;      // kernel refused a TX descriptor
  uint64_t tx_kick_errors = 0;        // sendto() failed for another reason than back-pressure
};

#if defined(L4MUX_HAVE_AF_XDP) && L4MUX_HAVE_AF_XDP

class AfXdpIo final : public PacketIo {
 public:
  ~AfXdpIo() override;
  AfXdpIo(const AfXdpIo&) = delete;
  AfXdpIo& operator=(const AfXdpIo&) = delete;

  uint32_t receive(std::span<Packet> batch, int timeout_ms) override;
  void complete(std::span<Packet> batch, uint32_t n) override;
  uint32_t transmit(std::span<Packet> frames) override;
  IoStats stats() const override;
  IoRingLevels ring_levels() const override;
  std::string describe() const override;

  bool zero_copy() const;
  // Why zero copy is not in use when it was tried (kAuto fell back to copy mode), for the log.
  const std::string& zero_copy_refused() const;
  AfXdpStats xdp_stats() const;
  int fd() const;

 private:
  friend std::unique_ptr<PacketIo> open_af_xdp(const AfXdpOptions&, std::string*);
  struct State;
  explicit AfXdpIo(std::unique_ptr<State> state);
  void reap_completions();
  void recycle(uint64_t frame);
  void flush_recycled();
  void kick_tx();

  std::unique_ptr<State> s_;
};

// Opens the socket (zero copy or copy mode, per options.zero_copy), registers it in the
// XSKMAP at key options.queue and fills the fill ring. nullptr with *why_not set when
// anything fails (e.g. "AF_XDP bind to eth0 queue 3 failed: ... (errno 22: Invalid argument)").
std::unique_ptr<PacketIo> open_af_xdp(const AfXdpOptions& options, std::string* why_not);

#else

inline std::unique_ptr<PacketIo> open_af_xdp(const AfXdpOptions&, std::string* why_not) {
  if (why_not) *why_not = "built without AF_XDP support (clang, libbpf or libxdp missing at build time)";
  return nullptr;
}

#endif

}  // namespace l4mux
