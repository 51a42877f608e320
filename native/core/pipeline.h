// The packet path: parse -> VIP match -> connection table -> Maglev -> encapsulate.
//
// Nearly every packet is a plain TCP or UDP packet (no VLAN tag, IP options, extension
// headers or fragmentation) of a flow the connection table already holds. Those take the
// plain lane: a short parse straight into the flow key (parse_plain_flow), the table lookup,
// and the tunnel headers. Everything else, and every plain packet the lane cannot finish
// (new flows, backends that no longer keep the flow, MTU, checksums), takes the general
// parse and decide(). The lane must never change an outcome (PipelineOptions::plain_lane).
//
// One Pipeline per worker thread. process() takes a batch of frames (at most kMaxBatch) and
// leaves a verdict on each: transmit (the buffer now holds the frame to send), pass to the
// kernel, or drop (counted under a named reason). Nothing here allocates, locks or makes a
// system call; live I/O and the pcap replay drive this same code.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <span>

#include "cluster/flow_sync.h"
#include "conntrack.h"
#include "counters.h"
#include "encap.h"
#include "parse.h"
#include "persistence.h"
#include "snapshot.h"
#include "defaults.h"
#include "types.h"

namespace l4mux {

inline constexpr uint32_t kMaxBatch = defaults::kMaxBatch;
// ICMP "too big" errors and echo replies a worker may send (defaults.h).
inline constexpr uint64_t kIcmpBurst = defaults::kIcmpTooBigBurst;
inline constexpr uint64_t kIcmpPerSecond = defaults::kIcmpTooBigPerSecond;
inline constexpr uint64_t kEchoBurst = defaults::kEchoBurst;
inline constexpr uint64_t kEchoPerSecond = defaults::kEchoPerSecond;
// Smallest MTUs a relayed "too big" may report (RFC 791's 576 that every IPv4 host accepts,
// IPv6's 1280): lower ones only serve to make backends fragment or send tiny segments.
inline constexpr uint32_t kMinRelayedMtuIpv4 = kIpv4MinMtu;
inline constexpr uint32_t kMinRelayedMtuIpv6 = kIpv6MinMtu;

// A token bucket: `burst` tokens, refilled at `per_second`.
struct TokenBucket {
  uint64_t tokens;
  uint64_t refilled_ns = 0;
  // Refills by the time passed; true when a token is left (spend() it once used).
  bool has_token(uint64_t now_ns, uint64_t burst, uint64_t per_second) {
    const uint64_t elapsed = now_ns - std::min(now_ns, refilled_ns);
    const uint64_t earned = elapsed * per_second / 1'000'000'000ull;
    if (earned > 0) {
      tokens = std::min(burst, tokens + earned);
      refilled_ns = now_ns;
    }
    return tokens != 0;
  }
  void spend() { --tokens; }
};

// Set by the receive path when the L4 checksum is not final (TP_STATUS_CSUMNOTREADY).
inline constexpr uint32_t kPacketChecksumPartial = 1u << 0;

struct Packet {
  uint8_t* data = nullptr;  // first byte of the Ethernet frame; moved back by encapsulation
  uint32_t len = 0;
  uint32_t headroom = 0;  // writable bytes in front of `data`
  uint32_t flags = 0;
  Verdict verdict = Verdict::kDrop;
  DropReason reason = DropReason::kEthTruncated;  // when verdict == kDrop
  uint32_t backend = kMaglevNoBackend;            // chosen backend slot, when forwarded
};

struct PipelineOptions {
  // The plain lane forwards plain flow packets (parse_plain_flow) that hit the connection
  // table without the general parse and decision. It is only a shortcut: with it off, every
  // output byte, verdict, counter and table entry is the same. The pipeline fuzz target runs
  // two pipelines, one without it, and checks exactly that.
  bool plain_lane = true;
  // Seeds the random scheduler and tie breaks; 0 derives a seed from the pipeline's address,
  // so that workers do not pick in lockstep.
  uint64_t random_seed = 0;
  // Cluster sync (export, peer entries, redirects): this worker's side of the engine's
  // SyncHub. nullptr: none, and a snapshot's cluster view is then ignored.
  cluster::WorkerSync* sync = nullptr;
  // Client persistence: the engine's hub and this worker's index in it. nullptr: none, and
  // persistent VIPs are scheduled as any other.
  PersistenceHub* persistence = nullptr;
  uint32_t worker = 0;
};

// How a new flow of a rate-limited VIP is handled (Pipeline::admit_new_flow).
enum class NewFlowAdmission : uint8_t {
  kTrack,            // an entry, the VIP's scheduler picks
  kTrackConsistent,  // an entry, picked by the Maglev table (flood mode: as untracked SYNs were)
  kUntracked,        // no entry: forwarded by the Maglev table
};

class Pipeline {
 public:
  Pipeline(const ConntrackConfig& conntrack, WorkerCounters& counters, PipelineOptions options = {});

  // `now_ns` is a monotonic clock (live) or the capture's timestamps (replay).
  void process(std::span<Packet> batch, const Snapshot& snapshot, uint64_t now_ns);

  // Client persistence: re-injects up to out.size() held packets the control plane answered
  // (the owning worker, between batches). Those to transmit are left in `out` (frames in
  // their hold slots) with their slots in `slots`; the caller sends them, then calls
  // finish_release(). Also drops the packets held too long. Returns how many are in `out`.
  uint32_t release_answers(const Snapshot& snapshot, uint64_t now_ns, std::span<Packet> out, uint32_t* slots);
  // After the send: `sent` of the n were accepted by the I/O (the rest counted unsent).
  void finish_release(const uint32_t* slots, uint32_t n, uint32_t sent);
  PuntQueue* punts() { return punts_; }

  const Conntrack& conntrack() const { return conntrack_; }
  // For the worker that owns this pipeline only (introspection between batches).
  Conntrack& conntrack() { return conntrack_; }

 private:
  // Per-packet state carried from the first pass over a batch (parse, hash, prefetch) to the
  // last (decide, rewrite).
  struct Work {
    ParsedPacket parsed;  // filled by parse_frame(); for a plain packet only if it needs it
    FlowKey key;
    uint64_t flow_hash = 0;
    bool tracked = false;  // has a connection-table entry to look up
    bool plain = false;    // parsed by parse_plain_flow() into `key` and `plain_flow`
    PlainFlow plain_flow;
    bool redirected = false;  // decapsulated from a peer's redirect: never redirected again
    uint8_t asker = cluster::kNoMember;  // the member that redirected it
  };

  bool forward_plain_hit(Packet& pkt, const Work& w, const Snapshot& snapshot, uint64_t now_ns);
  void decide(Packet& pkt, Work& w, const Snapshot& snapshot, uint64_t now_ns);
  void forward_flow(Packet& pkt, Work& w, const Vip& vip, FlowEntry* entry, const Snapshot& snapshot,
                    uint64_t now_ns);
  void forward_fragment(Packet& pkt, Work& w, const Vip& vip, const Snapshot& snapshot, uint64_t now_ns);
  void forward_icmp_error(Packet& pkt, Work& w, const Snapshot& snapshot, uint64_t now_ns);
  void cut_flow(Packet& pkt, const ParsedPacket& p, FlowEntry& entry, uint64_t now_ns);
  // Cluster: a table miss answered from the peer table or by a redirect to the flow's owner
  // (true: the packet is taken care of), and a redirected packet received from a peer.
  bool cluster_miss(Packet& pkt, Work& w, const Vip& vip, const Snapshot& snapshot, uint64_t now_ns);
  bool redirect(Packet& pkt, const Work& w, uint8_t owner, const Snapshot& snapshot);
  // A packet of a persistent VIP's flow moved the flow's deadline (conntrack touch returned
  // true): the client's entry is refreshed too, throttled per client (IPVS: the timeout counts
  // from the client's last packet, so from its last connection's end).
  void persist_touch(const Vip& vip, const FlowKey& key, uint64_t now_ns) {
    if (vip.persist_prefix == 0 || punts_ == nullptr) return;
    const ClientKey client = make_client_key(vip.slot, key.src, key.family, vip.persist_prefix);
    if (persist_->claim_touch(client, hash_client_key(client), now_ns, punts_->settings().touch_period_ns)) {
      punts_->touch(client);
    }
  }
  // A new flow of a persistent VIP: the client's entry, or a punt (true: taken care of).
  bool persistent_new_flow(Packet& pkt, Work& w, const Vip& vip, FlowEntry* entry, const Snapshot& snapshot,
                           uint64_t now_ns);
  // Creates the connection entry toward `backend` (replacing `entry`) and forwards.
  void start_flow(Packet& pkt, Work& w, const Vip& vip, FlowEntry* entry, uint32_t backend, uint8_t flags,
                  bool untracked, const Snapshot& snapshot, uint64_t now_ns);
  void receive_redirect(Packet& pkt, Work& w, const cluster::ClusterView& cluster, const Snapshot& snapshot,
                        uint64_t now_ns);
  // The backend for a new flow, by the VIP's scheduler; kMaglevNoBackend when none can take it.
  uint32_t select_backend(const Vip& vip, const FlowKey& key, uint64_t five_tuple_hash,
                          uint64_t seed);
  uint32_t least_loaded(const Vip& vip);
  NewFlowAdmission admit_new_flow(const Vip& vip, bool syn, uint64_t now_ns);
  uint32_t consistent_backend(const Vip& vip, const FlowKey& key, uint64_t five_tuple_hash, uint64_t seed) const;
  uint64_t next_random();
  void encapsulate_to(Packet& pkt, const ParsedPacket& parsed, const Vip& vip, uint32_t backend,
                      uint64_t flow_hash, const Snapshot& snapshot, uint64_t now_ns);
  // Writes the tunnel headers (the room for them was checked) and counts the packet.
  void emit(Packet& pkt, const InnerPacket& inner, const TunnelHeader& tunnel, uint64_t flow_hash,
            uint32_t vip_slot, uint32_t backend);
  void send_too_big(Packet& pkt, const ParsedPacket& parsed, uint32_t inner_mtu, uint64_t now_ns);
  void drop(Packet& pkt, DropReason reason);

  Conntrack conntrack_;
  WorkerCounters& counters_;
  std::array<Work, kMaxBatch> work_;
  // Per-worker scheduler state: a position in each VIP's round-robin order (by VIP slot,
  // sized once), and a xorshift generator for random picks and tie breaks.
  std::unique_ptr<uint32_t[]> wrr_position_;
  // Per VIP slot: the new-flow rate limiter (GCRA: the theoretical arrival time of the next
  // allowed flow) and the end of flood mode.
  struct FlowRate {
    uint64_t next_ns = 0;
    uint64_t flood_until_ns = 0;
  };
  std::unique_ptr<FlowRate[]> flow_rate_;
  uint64_t random_state_;
  // Token bucket for the ICMP errors this worker originates (RFC 1812 4.3.2.8, RFC 4443 2.4(f)).
  TokenBucket too_big_budget_{kIcmpBurst};
  TokenBucket echo_budget_{kEchoBurst};
  bool plain_lane_;
  cluster::WorkerSync* sync_;
  PersistenceHub* persist_hub_;
  const PersistTable* persist_ = nullptr;
  PuntQueue* punts_ = nullptr;
  uint32_t held_in_batch_ = 0;
};

}  // namespace l4mux
