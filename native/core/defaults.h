// The native side's fallbacks, one definition each. The control plane's defaults
// (src/config/defaults.ts) are the ones that count: the daemon passes every value it has in
// the config, and these apply only where a native caller (a test, a bench, replay, the
// addon's single-pipeline Dataplane) gives none. Keep the two in step where both exist.
// The protocols' own numbers are in wire.h, not here.
#pragma once

#include <cstdint>

namespace l4mux::defaults {

// ---- Tunnels --------------------------------------------------------------------------------

// No port is assigned to GUE by IANA; the mux and the agent use 6080 (defaults.ts
// DEFAULT_GUE_PORT, the agent's --gue-port).
inline constexpr uint16_t kGuePort = 6080;
// TTL / hop limit of the outer header toward a backend, and of the packets the mux sends
// back to clients (ICMP errors, resets, echo replies).
inline constexpr uint8_t kOuterTtl = 64;
inline constexpr uint8_t kReplyTtl = 64;
// Bytes kept in front of each frame for the outer headers (Ethernet + IPv6 + GRE/UDP = 62,
// with room to spare) where the mux allocates the buffers itself (Dataplane, replay,
// AF_PACKET's PACKET_RESERVE).
inline constexpr uint32_t kHeadroom = 256;

// ---- Connection table (defaults.ts defaultConntrackConfig) ---------------------------------

inline constexpr uint32_t kConntrackCapacity = 1u << 18;  // entries per engine
inline constexpr uint64_t kTcpSynSeconds = 30;
inline constexpr uint64_t kTcpEstablishedSeconds = 900;
inline constexpr uint64_t kTcpClosingSeconds = 30;
inline constexpr uint64_t kUdpSeconds = 60;
inline constexpr uint64_t kOtherSeconds = 30;
inline constexpr uint64_t kTcpUnprovenSeconds = 10;  // entries created mid-flow, until they repeat

// ---- Capacities -----------------------------------------------------------------------------

// VIP and backend slots of an engine's registries (defaults.ts MAX_VIPS, MAX_DISTINCT_BACKENDS).
inline constexpr uint32_t kMaxVips = 4096;
inline constexpr uint32_t kMaxBackends = 65536;
// Maglev table entries of a VIP (a prime; defaults.ts DEFAULT_TABLE_SIZE).
inline constexpr uint32_t kMaglevTableSize = 65537;
// Packets a worker receives and processes as one batch.
inline constexpr uint32_t kMaxBatch = 64;

// Cluster sync memory (defaults.ts DEFAULT_CLUSTER_PEER_FLOWS / DEFAULT_CLUSTER_EXPORT_RING).
inline constexpr uint32_t kPeerFlows = 262144;   // peer-entry table entries (64 bytes each)
inline constexpr uint32_t kExportRing = 65536;   // records per worker ring (64 bytes each)

// AF_PACKET (TPACKET_V3) rings.
inline constexpr uint32_t kAfPacketBlockSize = 1u << 18;  // bytes, a multiple of the page size
inline constexpr uint32_t kAfPacketBlockCount = 32;       // 8 MiB of ring per worker
inline constexpr uint32_t kAfPacketBlockTimeoutMs = 2;    // a partly filled block is handed over after this

// AF_XDP (defaults.ts AF_XDP_FRAME_COUNT / AF_XDP_FRAME_SIZE, the memory estimate's UMEM):
// deep enough to ride out a worker descheduled for ~30 ms at 250k pps.
inline constexpr uint32_t kAfXdpFrameCount = 16384;  // UMEM frames, a power of two
inline constexpr uint32_t kAfXdpFrameSize = 4096;    // 2048 or 4096
inline constexpr uint32_t kAfXdpRingSize = 8192;     // rx, tx and completion rings, a power of two
inline constexpr uint32_t kAfXdpTransmitFrames = 256;  // reserve for re-injected (copied) packets

// Live capture (defaults.ts CAPTURE_*).
inline constexpr uint64_t kCaptureCount = 1000;     // packets
inline constexpr uint32_t kCaptureSnaplen = 2048;   // bytes kept of each frame
inline constexpr uint32_t kCaptureMaxSnaplen = 4096;
inline constexpr uint32_t kCaptureRingSlots = 1024;  // per worker, a power of two

// ---- Rate limits per worker -----------------------------------------------------------------

// ICMP "too big" errors: a burst, refilled at a steady rate.
inline constexpr uint64_t kIcmpTooBigBurst = 100;
inline constexpr uint64_t kIcmpTooBigPerSecond = 1000;
// Echo replies (Linux's icmp_msgs_per_sec is 1000 too): pinging a VIP works, a ping flood
// gets no amplifier.
inline constexpr uint64_t kEchoBurst = 100;
inline constexpr uint64_t kEchoPerSecond = 1000;

}  // namespace l4mux::defaults
