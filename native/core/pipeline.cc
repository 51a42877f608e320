#include "pipeline.h"

#include <cstring>

#include "bytes.h"
#include "checksum.h"
#include "encap.h"
#include "hash.h"
#include "icmp.h"
#include "tcp_reset.h"

namespace l4mux {
namespace {

bool is_new_connection_syn(uint8_t tcp_flags) {
  return (tcp_flags & (kTcpSyn | kTcpAck)) == kTcpSyn;
}

// The next-hop MTU an ICMP "fragmentation needed" (bytes 6-7) or ICMPv6 "packet too big"
// (bytes 4-7) reports; the parser made the 8-byte error header readable.
uint32_t reported_mtu(const uint8_t* icmp, Family family) {
  return family == Family::kIpv4 ? load_be16(icmp + 6) : load_be32(icmp + 4);
}

// Schedulers whose choice no other mux would repeat: their entries must be synced, and in a
// cluster their new flows are decided by the flow's owner.
bool is_per_mux(Scheduler s) {
  return s == Scheduler::kWrr || s == Scheduler::kWlc || s == Scheduler::kRandom;
}

}  // namespace

// How many frames ahead of the one being parsed are prefetched.
constexpr size_t kFramePrefetchAhead = 8;
// Expired entries freed per batch: little work each time, the whole table over time.
constexpr uint32_t kSweepBucketsPerBatch = 2;

Pipeline::Pipeline(const ConntrackConfig& conntrack, WorkerCounters& counters, PipelineOptions options)
    : conntrack_(conntrack, &counters),
      counters_(counters),
      wrr_position_(new uint32_t[counters.max_vips()]()),
      flow_rate_(new FlowRate[counters.max_vips()]()),
      // Distinct per worker (the object's address differs), so workers do not pick in lockstep.
      random_state_(options.random_seed != 0 ? options.random_seed
                                             : 0x9e3779b97f4a7c15ull ^ reinterpret_cast<uintptr_t>(this)),
      plain_lane_(options.plain_lane),
      sync_(options.sync),
      persist_hub_(options.persistence) {
  if (persist_hub_ != nullptr) {
    persist_ = &persist_hub_->table();
    punts_ = &persist_hub_->worker(options.worker);
  }
  if (sync_ != nullptr) {
    // Every expiry's end record, whether the sweep frees the entry or a new flow takes its
    // place first.
    conntrack_.set_expiry_sink([](void* ctx, const FlowEntry& e, uint64_t now_ns) {
      static_cast<cluster::WorkerSync*>(ctx)->ended(e, now_ns);
    }, sync_);
  }
}

// Never inlined into its caller: once per batch costs nothing, and profiles can then name it.
[[gnu::noinline]] void Pipeline::process(std::span<Packet> batch, const Snapshot& snapshot, uint64_t now_ns) {
  const size_t n = std::min<size_t>(batch.size(), kMaxBatch);
  const uint64_t seed = snapshot.seed();
  counters_.rx.add(n);

  // Pass 1: parse, hash, and prefetch each flow's connection-table bucket. Frames arrive
  // out of cache (a NIC wrote them), so the headers of those a few places ahead are fetched
  // while this one is parsed.
  for (size_t i = 0; i < std::min<size_t>(n, kFramePrefetchAhead); ++i) __builtin_prefetch(batch[i].data);
  for (size_t i = 0; i < n; ++i) {
    if (i + kFramePrefetchAhead < n) __builtin_prefetch(batch[i + kFramePrefetchAhead].data);
    Packet& pkt = batch[i];
    Work& w = work_[i];
    w.redirected = false;
    w.plain = plain_lane_ && parse_plain_flow(pkt.data, pkt.len, w.key, w.plain_flow);
    if (w.plain) {
      pkt.verdict = Verdict::kTx;  // provisional, as below
      w.flow_hash = hash_flow(w.key, HashFields::kFiveTuple, seed);
      w.tracked = true;
      conntrack_.prefetch_bucket(w.flow_hash);
      continue;
    }
    const ParseResult r = parse_frame(pkt.data, pkt.len, w.parsed);
    w.tracked = false;
    if (r.status == ParseStatus::kNotIp) {
      pkt.verdict = Verdict::kPass;
      continue;
    }
    if (r.status == ParseStatus::kMalformed) {
      drop(pkt, r.reason);
      continue;
    }
    pkt.verdict = Verdict::kTx;  // provisional: decided in pass 2
    const ParsedPacket& p = w.parsed;
    if ((p.proto == kProtoTcp || p.proto == kProtoUdp) && p.has_l4 && !p.is_fragment) {
      w.key = p.flow_key();
      w.flow_hash = hash_flow(w.key, HashFields::kFiveTuple, seed);
      w.tracked = true;
      conntrack_.prefetch_bucket(w.flow_hash);
    }
  }

  // Pass 2: with the buckets in cache, prefetch the entries their tags point to.
  for (size_t i = 0; i < n; ++i) {
    if (work_[i].tracked) conntrack_.prefetch_entry(work_[i].flow_hash);
  }

  // Pass 3: decide and rewrite. A plain packet the plain lane cannot finish is parsed in
  // full now and decided like any other (its key and hash are already those parse_frame's
  // would give).
  uint64_t tx = 0;
  uint64_t passed = 0;
  for (size_t i = 0; i < n; ++i) {
    Packet& pkt = batch[i];
    Work& w = work_[i];
    if (pkt.verdict == Verdict::kTx && !(w.plain && forward_plain_hit(pkt, w, snapshot, now_ns))) {
      if (w.plain) parse_frame(pkt.data, pkt.len, w.parsed);  // kOk: the frame is plain
      decide(pkt, w, snapshot, now_ns);
    }
    tx += pkt.verdict == Verdict::kTx;
    passed += pkt.verdict == Verdict::kPass;
  }
  counters_.tx.add(tx);
  counters_.passed.add(passed);
  if (held_in_batch_ != 0) {
    held_in_batch_ = 0;
    persist_hub_->punted();
  }
  conntrack_.sweep(now_ns, kSweepBucketsPerBatch);
}

// The plain lane: a plain packet of a flow the connection table holds, whose backend keeps
// it, forwarded in one line. Whatever else may happen to the packet (a new flow, a SYN on a
// closing flow, a backend that no longer keeps it, the MTU, a partial checksum, too little
// headroom) is left to decide(): this returns false before it has changed anything.
bool Pipeline::forward_plain_hit(Packet& pkt, const Work& w, const Snapshot& snapshot,
                                 uint64_t now_ns) {
  FlowEntry* entry = conntrack_.lookup(w.key, w.flow_hash, now_ns);
  if (entry == nullptr) return false;
  const Vip* vip = snapshot.vip_by_slot(entry->vip);
  if (vip == nullptr) return false;
  const PlainFlow& f = w.plain_flow;
  if (entry->state == FlowState::kTcpClosing && is_new_connection_syn(f.tcp_flags)) return false;
  if (w.key.proto == kProtoTcp && !tcp_flags_valid(f.tcp_flags)) return false;
  const VipMember* member = vip->member(entry->backend);
  if (member == nullptr || member->fate != FlowFate::kKeep) return false;
  const TunnelHeader& tunnel = member->tunnel;
  const uint32_t mtu = snapshot.egress_mtu();
  if (!tunnel.usable() || (mtu != 0 && f.l3_length + tunnel.len - kEthHeaderLen > mtu) ||
      (pkt.flags & kPacketChecksumPartial) != 0 || pkt.headroom + kPlainL3Offset < tunnel.len) {
    return false;
  }
  const FlowState before = entry->state;
  const bool was_unproven = is_unproven(*entry);
  if (conntrack_.touch(*entry, f.tcp_flags, now_ns)) persist_touch(*vip, w.key, now_ns);
  if (sync_ != nullptr) sync_->touched(*entry, before, was_unproven, now_ns);
  const InnerPacket inner{pkt.data + kPlainL3Offset, f.l3_length, w.key.family, f.traffic_class,
                          f.dont_fragment};
  emit(pkt, inner, tunnel, w.flow_hash, vip->slot, entry->backend);
  return true;
}

void Pipeline::decide(Packet& pkt, Work& w, const Snapshot& snapshot, uint64_t now_ns) {
  const ParsedPacket& p = w.parsed;

  if (w.tracked) {
    // A known flow names its VIP; only new flows (and non-VIP traffic) search the VIP index.
    FlowEntry* entry = conntrack_.lookup(w.key, w.flow_hash, now_ns);
    const Vip* vip = entry != nullptr ? snapshot.vip_by_slot(entry->vip) : nullptr;
    if (vip == nullptr) vip = snapshot.find_vip(p.dst, p.proto, p.dst_port);
    if (vip != nullptr) {
      forward_flow(pkt, w, *vip, entry, snapshot, now_ns);
      return;
    }
  }

  const VipAddressInfo* addr = snapshot.find_address(p.dst);
  if (addr == nullptr && sync_ != nullptr && w.tracked && !w.redirected && p.proto == kProtoUdp &&
      snapshot.cluster() != nullptr &&
      p.dst_port == snapshot.cluster()->redirect_port() && p.dst == snapshot.cluster()->self_address()) {
    receive_redirect(pkt, w, *snapshot.cluster(), snapshot, now_ns);
    return;
  }
  if (addr == nullptr) {
    pkt.verdict = Verdict::kPass;  // not addressed to a VIP: the kernel's business
    return;
  }
  if (w.tracked) {
    drop(pkt, DropReason::kNoVipForPort);
    return;
  }

  switch (p.proto) {
    case kProtoTcp:
    case kProtoUdp: {
      // A fragment (first or not); the first fragment's ports are ignored on purpose so that
      // all fragments of a datagram take the same decision.
      const Vip* vip = snapshot.fragment_vip(*addr, p.proto);
      if (vip == nullptr) {
        drop(pkt, DropReason::kFragmentNoVip);
        return;
      }
      // The first fragment shows the ports: one the VIP does not serve is refused as the
      // unfragmented packet would be (so is a TCP one with impossible flags). Later fragments
      // cannot be told apart; without their first one the backend never completes the datagram.
      if (p.has_l4 && vip->key.port != 0 && vip->key.port != p.dst_port) {
        drop(pkt, DropReason::kNoVipForPort);
        return;
      }
      if (p.has_l4 && p.proto == kProtoTcp && !tcp_flags_valid(p.tcp_flags)) {
        drop(pkt, DropReason::kTcpBadFlags);
        return;
      }
      forward_fragment(pkt, w, *vip, snapshot, now_ns);
      return;
    }
    case kProtoIcmp:
    case kProtoIcmpv6:
      if (p.is_fragment) {
        drop(pkt, DropReason::kIcmpUnsupported);
        return;
      }
      if (is_echo_request(p)) {
        if (!addr->icmp_echo) {
          drop(pkt, DropReason::kIcmpEchoDisabled);
          return;
        }
        if (!echo_budget_.has_token(now_ns, kEchoBurst, kEchoPerSecond)) {
          drop(pkt, DropReason::kIcmpEchoRateLimited);
          return;
        }
        echo_budget_.spend();
        pkt.len = make_echo_reply(pkt.data, p);
        counters_.echo_replies.add();
        return;
      }
      if (is_path_mtu_error(p) && p.embedded.present) {
        if (reported_mtu(pkt.data + p.l4_offset, p.family) <
            (p.family == Family::kIpv4 ? kMinRelayedMtuIpv4 : kMinRelayedMtuIpv6)) {
          drop(pkt, DropReason::kIcmpTooBigMtuTooSmall);
          return;
        }
        forward_icmp_error(pkt, w, snapshot, now_ns);
        return;
      }
      drop(pkt, DropReason::kIcmpUnsupported);
      return;
    default:
      drop(pkt, DropReason::kUnsupportedL4);
      return;
  }
}

void Pipeline::forward_flow(Packet& pkt, Work& w, const Vip& vip, FlowEntry* entry,
                            const Snapshot& snapshot, uint64_t now_ns) {
  const ParsedPacket& p = w.parsed;
  const uint8_t flags = p.proto == kProtoTcp ? p.tcp_flags : 0;
  if (p.proto == kProtoTcp && !tcp_flags_valid(flags)) {
    drop(pkt, DropReason::kTcpBadFlags);
    return;
  }

  // A fresh SYN on a closing connection is a new connection reusing the 5-tuple: it is
  // scheduled anew whatever became of the old one.
  if (entry != nullptr && !(entry->state == FlowState::kTcpClosing && is_new_connection_syn(flags))) {
    switch (vip.fate_of(entry->backend)) {
      case FlowFate::kKeep: {
        const FlowState before = entry->state;
        const bool was_unproven = is_unproven(*entry);
        if (conntrack_.touch(*entry, flags, now_ns)) persist_touch(vip, w.key, now_ns);
        if (sync_ != nullptr) {
          sync_->touched(*entry, before, was_unproven, now_ns);
          if (w.redirected) sync_->teach(*entry, w.asker, now_ns);
        }
        encapsulate_to(pkt, p, vip, entry->backend, w.flow_hash, snapshot, now_ns);
        return;
      }
      case FlowFate::kCut:
        if (!is_new_connection_syn(flags)) {
          cut_flow(pkt, p, *entry, now_ns);
          return;
        }
        break;
      case FlowFate::kReschedule:
        break;
    }
  }

  // Persistent VIPs: the client's entry decides, or the slow path does (a punt). Before the
  // cluster's redirect: every mux has the entries, and the store agrees the new ones.
  if (vip.persist_prefix != 0 && punts_ != nullptr && persistent_new_flow(pkt, w, vip, entry, snapshot, now_ns)) {
    return;
  }
  if (entry == nullptr && sync_ != nullptr && snapshot.cluster() != nullptr &&
      cluster_miss(pkt, w, vip, snapshot, now_ns)) {
    return;
  }
  const NewFlowAdmission admission =
      vip.new_flow_rate == 0 ? NewFlowAdmission::kTrack
                             : admit_new_flow(vip, p.proto == kProtoTcp && is_new_connection_syn(flags), now_ns);
  const uint32_t backend = admission == NewFlowAdmission::kTrack
                               ? select_backend(vip, w.key, w.flow_hash, snapshot.seed())
                               : consistent_backend(vip, w.key, w.flow_hash, snapshot.seed());
  if (backend == kMaglevNoBackend) {
    if (VipCounters* c = counters_.vip(vip.slot)) c->no_backend.add();
    drop(pkt, DropReason::kNoBackend);
    return;
  }
  start_flow(pkt, w, vip, entry, backend, flags, admission == NewFlowAdmission::kUntracked, snapshot, now_ns);
}

void Pipeline::start_flow(Packet& pkt, Work& w, const Vip& vip, FlowEntry* entry, uint32_t backend, uint8_t flags,
                          bool untracked, const Snapshot& snapshot, uint64_t now_ns) {
  if (entry != nullptr) conntrack_.erase(*entry);
  VipCounters* c = counters_.vip(vip.slot);
  if (untracked) {
    if (c != nullptr) c->flows_untracked.add();
  } else {
    FlowEntry* created = conntrack_.insert(w.key, w.flow_hash, backend, flags, now_ns, vip.slot);
    if (c != nullptr) c->new_flows.add();
    if (sync_ != nullptr) {
      // Persistent VIPs' flows follow an entry no other mux's scheduler would repeat.
      const bool must = is_per_mux(vip.scheduler) || vip.persist_prefix != 0;
      sync_->started(*created, now_ns, must ? cluster::kRecordMustSync : 0);
      if (w.redirected) sync_->teach(*created, w.asker, now_ns);
    }
  }
  encapsulate_to(pkt, w.parsed, vip, backend, w.flow_hash, snapshot, now_ns);
}

// A persistent VIP's new flow (a miss, or a flow whose backend left). A live entry whose
// backend takes new flows decides at once (and a touch is queued, throttled per client);
// otherwise a first packet (TCP SYN, any UDP packet) is held for the slow path with the
// scheduler's proposal. Other packets (a TCP flow picked up mid-way) are scheduled as usual.
bool Pipeline::persistent_new_flow(Packet& pkt, Work& w, const Vip& vip, FlowEntry* entry, const Snapshot& snapshot,
                                   uint64_t now_ns) {
  const ParsedPacket& p = w.parsed;
  const uint8_t flags = p.proto == kProtoTcp ? p.tcp_flags : 0;
  const ClientKey client = make_client_key(vip.slot, w.key.src, w.key.family, vip.persist_prefix);
  const uint64_t hash = hash_client_key(client);
  PuntCounters& pc = punts_->counters();
  PersistHit hit;
  uint32_t recorded = kPersistNoBackend;
  if (persist_->lookup(client, hash, now_ns, &hit)) {
    const VipMember* m = vip.member(hit.backend);
    if (m != nullptr && m->accepts_new_flows) {
      pc.hits.add();
      if (persist_->claim_touch(client, hash, now_ns, punts_->settings().touch_period_ns)) punts_->touch(client);
      start_flow(pkt, w, vip, entry, hit.backend, flags, false, snapshot, now_ns);
      return true;
    }
    recorded = hit.backend;
    pc.repicks.add();
  } else {
    pc.misses.add();
  }
  if (p.proto == kProtoTcp && !is_new_connection_syn(flags)) return false;
  PuntRecord r;
  r.client = client;
  r.proposed = select_backend(vip, w.key, w.flow_hash, snapshot.seed());
  r.recorded = recorded;
  switch (punts_->hold(pkt.data, pkt.len, pkt.flags, r, now_ns)) {
    case HoldResult::kHeld:
      pkt.verdict = Verdict::kHeld;
      ++held_in_batch_;
      return true;
    case HoldResult::kTooLarge:
      drop(pkt, DropReason::kPuntTooLarge);
      return true;
    case HoldResult::kFull:
      drop(pkt, DropReason::kPuntOverflow);
      return true;
  }
  return true;
}

uint32_t Pipeline::release_answers(const Snapshot& snapshot, uint64_t now_ns, std::span<Packet> out, uint32_t* slots) {
  if (punts_ == nullptr) return 0;
  for (uint32_t n = punts_->expire(now_ns, 64); n > 0; --n) counters_.drop(DropReason::kPuntExpired);
  PuntCounters& pc = punts_->counters();
  uint32_t ready = 0;
  AnswerRecord a;
  while (ready < out.size() && punts_->next_answer(&a)) {
    PuntQueue::Held h;
    if (!punts_->claim(a, &h)) {
      pc.release_refused.add();  // expired meanwhile (counted then), or not a held packet
      continue;
    }
    const Vip* vip = snapshot.vip_by_slot(h.vip);
    const VipMember* member = vip != nullptr && a.backend != kPersistNoBackend ? vip->member(a.backend) : nullptr;
    if (member == nullptr || member->fate != FlowFate::kKeep) {
      pc.release_refused.add();
      counters_.drop(DropReason::kPuntRefused);
      punts_->free(a.slot);
      continue;
    }
    Packet& pkt = out[ready];
    pkt = Packet{};
    pkt.data = h.data;
    pkt.len = h.len;
    pkt.headroom = h.headroom;
    pkt.flags = h.flags;
    Work& w = work_[0];  // between batches: the batch's state is free
    w = Work{};
    if (parse_frame(pkt.data, pkt.len, w.parsed).status != ParseStatus::kOk || !w.parsed.has_l4 ||
        w.parsed.is_fragment) {
      pc.release_refused.add();
      counters_.drop(DropReason::kPuntRefused);
      punts_->free(a.slot);
      continue;
    }
    w.key = w.parsed.flow_key();
    w.flow_hash = hash_flow(w.key, HashFields::kFiveTuple, snapshot.seed());
    w.tracked = true;
    const uint8_t flags = w.parsed.proto == kProtoTcp ? w.parsed.tcp_flags : 0;
    pkt.verdict = Verdict::kTx;
    // Another held packet of the flow (a retransmitted SYN) was released first: follow it.
    FlowEntry* entry = conntrack_.lookup(w.key, w.flow_hash, now_ns);
    if (entry != nullptr && vip->fate_of(entry->backend) == FlowFate::kKeep) {
      conntrack_.touch(*entry, flags, now_ns);
      encapsulate_to(pkt, w.parsed, *vip, entry->backend, w.flow_hash, snapshot, now_ns);
    } else {
      start_flow(pkt, w, *vip, entry, a.backend, flags, false, snapshot, now_ns);
    }
    if (pkt.verdict != Verdict::kTx) {
      punts_->free(a.slot);  // dropped (counted by reason)
      continue;
    }
    slots[ready++] = a.slot;
  }
  return ready;
}

void Pipeline::finish_release(const uint32_t* slots, uint32_t n, uint32_t sent) {
  PuntCounters& pc = punts_->counters();
  pc.released.add(std::min(sent, n));
  if (sent < n) pc.release_unsent.add(n - sent);
  for (uint32_t i = 0; i < n; ++i) punts_->free(slots[i]);
}

// A miss of a cluster VIP's flow: the entry a peer sent, else the owner's decision by a
// redirect (the owner holds every entry of its flows; a backup may not yet, after a leave whose
// transfer to it came late). The owner decides itself, and so does a leaving owner's backup,
// standing in for it. A TCP SYN of a VIP that every mux schedules alike (Maglev, source-hash)
// is a new connection and decided here at once.
bool Pipeline::cluster_miss(Packet& pkt, Work& w, const Vip& vip, const Snapshot& snapshot, uint64_t now_ns) {
  const ParsedPacket& p = w.parsed;
  const uint8_t flags = p.proto == kProtoTcp ? p.tcp_flags : 0;
  const bool per_mux = is_per_mux(vip.scheduler);
  if (p.proto == kProtoTcp && is_new_connection_syn(flags) && !per_mux) return false;
  cluster::PeerHit hit;
  if (sync_->peer_lookup(w.key, now_ns, &hit) && vip.fate_of(hit.backend) == FlowFate::kKeep) {
    FlowEntry* e = conntrack_.insert(w.key, w.flow_hash, hit.backend, flags, now_ns, vip.slot);
    sync_->counters().peer_hits.add();
    sync_->started(*e, now_ns, static_cast<uint8_t>(hit.flags | cluster::kRecordFromPeer));
    if (w.redirected) sync_->teach(*e, w.asker, now_ns);
    encapsulate_to(pkt, p, vip, hit.backend, w.flow_hash, snapshot, now_ns);
    return true;
  }
  if (w.redirected) return false;  // sent here as the owner (or its stand-in): decide
  const cluster::ClusterView& c = *snapshot.cluster();
  const cluster::Owners o = c.owners(w.key);
  if (o.owner == cluster::kNoMember) return false;
  const uint8_t decider = c.members()[o.owner].leaving ? o.backup : o.owner;
  if (decider == cluster::kNoMember || decider == c.self() || c.members()[decider].leaving) return false;
  return redirect(pkt, w, decider, snapshot);
}

// GUE to the owner's address on the redirect port, the client's packet unchanged inside.
bool Pipeline::redirect(Packet& pkt, const Work& w, uint8_t owner, const Snapshot& snapshot) {
  const ParsedPacket& p = w.parsed;
  const TunnelHeader& tunnel = snapshot.cluster()->redirect_tunnel(owner, p.family);
  if (!tunnel.usable()) {
    sync_->counters().redirect_unroutable.add();
    return false;
  }
  const uint32_t mtu = snapshot.egress_mtu();
  if ((mtu != 0 && p.l3_length + tunnel.len - kEthHeaderLen > mtu) || pkt.headroom + p.l3_offset < tunnel.len) {
    sync_->counters().redirect_too_big.add();
    return false;  // decided here rather than lost
  }
  if ((pkt.flags & kPacketChecksumPartial) != 0 && p.has_l4 && !p.is_fragment) {
    const uint32_t l4_len = p.l3_length - (p.l4_offset - p.l3_offset);
    if (finalize_l4_checksum(pkt.data + p.l4_offset, l4_len, p.src, p.dst, p.proto)) {
      counters_.checksums_finalized.add();
    }
  }
  const InnerPacket inner{pkt.data + p.l3_offset, p.l3_length, p.family, p.traffic_class, p.dont_fragment};
  uint8_t* const buffer_start = pkt.data - pkt.headroom;
  uint32_t frame_len = 0;
  uint8_t* const frame = encapsulate(inner, buffer_start, tunnel, w.flow_hash, &frame_len);
  pkt.headroom = static_cast<uint32_t>(frame - buffer_start);
  pkt.data = frame;
  pkt.len = frame_len;
  pkt.verdict = Verdict::kTx;
  sync_->counters().redirected.add();
  return true;
}

// A peer's redirect: the inner packet is given an Ethernet header in place of the outer ones
// and decided like a packet from the router, marked so that it is never redirected again.
void Pipeline::receive_redirect(Packet& pkt, Work& w, const cluster::ClusterView& cluster, const Snapshot& snapshot,
                                uint64_t now_ns) {
  const ParsedPacket& outer = w.parsed;
  const uint8_t asker = cluster.member_by_address(outer.src);
  if (asker == cluster::kNoMember || asker == cluster.self()) {
    drop(pkt, DropReason::kRedirectUnknownPeer);
    return;
  }
  const uint32_t udp_payload = outer.l3_length - (outer.l4_offset - outer.l3_offset) - kUdpHeaderLen;
  uint8_t* const inner = pkt.data + outer.l4_offset + kUdpHeaderLen;
  if (udp_payload < kIpv4HeaderLen ||
      (inner[0] >> 4 != 4 && inner[0] >> 4 != 6)) {
    drop(pkt, DropReason::kRedirectMalformed);
    return;
  }
  uint8_t* const frame = inner - kEthHeaderLen;  // inside the outer headers: at least 28 bytes in
  std::memmove(frame, pkt.data, 12);            // the MAC addresses, as received
  store_be16(frame + kEthTypeOffset, inner[0] >> 4 == 4 ? kEthTypeIpv4 : kEthTypeIpv6);
  pkt.headroom += static_cast<uint32_t>(frame - pkt.data);
  pkt.data = frame;
  pkt.len = kEthHeaderLen + udp_payload;
  pkt.flags &= ~kPacketChecksumPartial;  // the asker finalized the inner checksum
  sync_->counters().redirects_received.add();

  const ParseResult r = parse_frame(pkt.data, pkt.len, w.parsed);
  if (r.status != ParseStatus::kOk) {
    drop(pkt, r.status == ParseStatus::kMalformed ? r.reason : DropReason::kRedirectMalformed);
    return;
  }
  const ParsedPacket& p = w.parsed;
  w.tracked = (p.proto == kProtoTcp || p.proto == kProtoUdp) && p.has_l4 && !p.is_fragment;
  if (w.tracked) {
    w.key = p.flow_key();
    w.flow_hash = hash_flow(w.key, HashFields::kFiveTuple, snapshot.seed());
  }
  w.plain = false;
  w.redirected = true;
  w.asker = asker;
  decide(pkt, w, snapshot, now_ns);
}

void Pipeline::forward_fragment(Packet& pkt, Work& w, const Vip& vip, const Snapshot& snapshot,
                                uint64_t now_ns) {
  // Maglev §4.3: fragments are hashed on the 3-tuple and bypass the connection table.
  const ParsedPacket& p = w.parsed;
  FlowKey key = p.flow_key();
  key.src_port = 0;
  key.dst_port = 0;
  const uint64_t hash = hash_flow(key, HashFields::kThreeTuple, snapshot.seed());
  const uint32_t backend = vip.backend_for(hash);
  if (backend == kMaglevNoBackend) {
    if (VipCounters* c = counters_.vip(vip.slot)) c->no_backend.add();
    drop(pkt, DropReason::kNoBackend);
    return;
  }
  encapsulate_to(pkt, p, vip, backend, hash, snapshot, now_ns);
}

void Pipeline::forward_icmp_error(Packet& pkt, Work& w, const Snapshot& snapshot, uint64_t now_ns) {
  // The embedded packet is one the backend sent from the VIP to the client (replies bypass
  // the mux); its flow, seen from the client, is the embedded header reversed.
  const EmbeddedHeader& e = w.parsed.embedded;
  const Vip* vip = snapshot.find_vip(e.src, e.proto, e.src_port);
  if (vip == nullptr) {
    drop(pkt, DropReason::kIcmpErrorNoFlow);
    return;
  }
  FlowKey key{};
  key.family = e.family;
  key.proto = e.proto;
  key.src = e.dst.bytes;
  key.dst = e.src.bytes;
  key.src_port = e.dst_port;
  key.dst_port = e.src_port;
  const uint64_t hash = hash_flow(key, HashFields::kFiveTuple, snapshot.seed());
  uint32_t backend = kMaglevNoBackend;
  if (const FlowEntry* entry = conntrack_.lookup(key, hash, now_ns);
      entry != nullptr && vip->fate_of(entry->backend) == FlowFate::kKeep) {
    backend = entry->backend;
  } else {
    backend = vip->backend_for(hash);  // where Maglev would send it; no scheduler state spent
  }
  if (backend == kMaglevNoBackend) {
    drop(pkt, DropReason::kNoBackend);
    return;
  }
  counters_.icmp_errors_forwarded.add();
  encapsulate_to(pkt, w.parsed, *vip, backend, hash, snapshot, now_ns);
}

void Pipeline::cut_flow(Packet& pkt, const ParsedPacket& p, FlowEntry& entry, uint64_t now_ns) {
  // IPVS's expire_nodest_conn: the packet goes nowhere and the entry is forgotten, so that
  // whatever the client sends later is a new flow. A TCP client is told at once.
  if (BackendCounters* c = counters_.backend(entry.backend)) c->flows_cut.add();
  if (sync_ != nullptr) sync_->ended(entry, now_ns);
  conntrack_.erase(entry);
  if (p.proto == kProtoTcp) {
    if (const uint32_t len = make_tcp_reset(pkt.data, p); len != 0) {
      pkt.len = len;
      counters_.tcp_resets_sent.add();
      return;  // verdict stays kTx: the reset goes back toward the client
    }
  }
  drop(pkt, DropReason::kBackendOffline);
}

uint32_t Pipeline::select_backend(const Vip& vip, const FlowKey& key, uint64_t five_tuple_hash,
                                  uint64_t seed) {
  switch (vip.scheduler) {
    case Scheduler::kMaglev:
      return vip.backend_for(vip.hash_fields == HashFields::kFiveTuple
                                 ? five_tuple_hash
                                 : hash_flow(key, vip.hash_fields, seed));
    case Scheduler::kSourceHash:
      return vip.backend_for(hash_flow(key, HashFields::kSrcIp, seed));
    case Scheduler::kRandom:
      // The Maglev table holds every backend in proportion to its share (fall-overs
      // included): a random entry is a weighted random pick.
      return vip.backend_for(next_random());
    case Scheduler::kWrr: {
      const size_t n = vip.wrr_sequence.size();
      if (n == 0) return kMaglevNoBackend;
      uint32_t& position = wrr_position_[vip.slot < counters_.max_vips() ? vip.slot : 0];
      if (position >= n) position = 0;  // the order is shorter since a reload
      return vip.wrr_sequence[position++];
    }
    case Scheduler::kWlc:
      return least_loaded(vip);
  }
  return kMaglevNoBackend;
}

// The VIP's new-flow rate (this worker's share of the mux's), as Katran and Maglev limit it: new
// flows within the rate get entries. Past it the VIP is in flood mode for a second: SYNs get
// no entry at all (a SYN flood fills nothing; the Maglev table sends the SYN where an entry
// would have), and only flows that come back (a non-SYN packet without an entry: the
// handshake's ACK, or a flow picked up mid-way) take an entry, while the rate allows, as an
// unproven one, picked by the Maglev table too so that it agrees with its untracked SYN.
NewFlowAdmission Pipeline::admit_new_flow(const Vip& vip, bool syn, uint64_t now_ns) {
  if (vip.slot >= counters_.max_vips()) return NewFlowAdmission::kTrack;
  FlowRate& r = flow_rate_[vip.slot];
  constexpr uint64_t kSecondNs = 1'000'000'000ull;
  // Neither state reaches more than a second ahead of a clock that only moves forward; a
  // clock that jumped back (a replay's timestamps) starts them afresh.
  if (r.next_ns > now_ns + kSecondNs || r.flood_until_ns > now_ns + kSecondNs) r = FlowRate{};
  const bool flood = now_ns < r.flood_until_ns;
  if (flood && syn) return NewFlowAdmission::kUntracked;
  const uint64_t interval = kSecondNs / vip.new_flow_rate;
  // A burst of up to one second's worth of flows.
  const uint64_t next = std::max(r.next_ns, now_ns);
  if (next - now_ns > kSecondNs - interval) {
    r.flood_until_ns = now_ns + kSecondNs;
    return NewFlowAdmission::kUntracked;
  }
  r.next_ns = next + interval;
  return flood ? NewFlowAdmission::kTrackConsistent : NewFlowAdmission::kTrack;
}

uint32_t Pipeline::consistent_backend(const Vip& vip, const FlowKey& key, uint64_t five_tuple_hash,
                                      uint64_t seed) const {
  const HashFields fields = vip.scheduler == Scheduler::kSourceHash ? HashFields::kSrcIp : vip.hash_fields;
  return vip.backend_for(fields == HashFields::kFiveTuple ? five_tuple_hash : hash_flow(key, fields, seed));
}

uint32_t Pipeline::least_loaded(const Vip& vip) {
  // Weighted least connections over this worker's open flows: the backend minimising
  // (active + 1) / weight. The scan starts at a random place so ties spread.
  const size_t n = vip.new_flow_backends.size();
  if (n == 0) return kMaglevNoBackend;
  const size_t start = static_cast<size_t>(next_random() % n);
  uint32_t best = kMaglevNoBackend;
  uint64_t best_load = 0;
  uint64_t best_weight = 1;
  for (size_t k = 0; k < n; ++k) {
    const size_t i = (start + k) % n;
    const uint32_t slot = vip.new_flow_backends[i];
    const BackendCounters* c = counters_.backend(slot);
    const uint64_t load = (c != nullptr ? c->active_flows.get() : 0) + 1;
    const uint64_t weight = vip.new_flow_weights[i];
    if (best == kMaglevNoBackend || load * best_weight < best_load * weight) {
      best = slot;
      best_load = load;
      best_weight = weight;
    }
  }
  return best;
}

uint64_t Pipeline::next_random() {
  uint64_t x = random_state_;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  random_state_ = x;
  return x;
}

void Pipeline::encapsulate_to(Packet& pkt, const ParsedPacket& p, const Vip& vip, uint32_t backend,
                              uint64_t flow_hash, const Snapshot& snapshot, uint64_t now_ns) {
  const VipMember* member = vip.member(backend);
  if (member == nullptr || !member->tunnel.usable()) {
    // Schedulers only pick members; an unusable tunnel lacks the outer source of its family.
    drop(pkt, DropReason::kOuterSourceMissing);
    return;
  }
  const TunnelHeader& tunnel = member->tunnel;
  const uint32_t tunnel_bytes = tunnel.len - static_cast<uint32_t>(kEthHeaderLen);
  const uint32_t mtu = snapshot.egress_mtu();
  if (mtu != 0 && p.l3_length + tunnel_bytes > mtu) {
    // Never send what the link cannot carry. A sender that forbids fragmentation (DF, or any
    // IPv6 packet) learns the path MTU; other IPv4 would need the tunnel to fragment, and an
    // ICMP error never causes another one (RFC 1122 3.2.2).
    if (p.dont_fragment && mtu > tunnel_bytes && !is_path_mtu_error(p)) {
      send_too_big(pkt, p, mtu - tunnel_bytes, now_ns);
    } else {
      drop(pkt, DropReason::kMtuExceeded);
    }
    return;
  }

  if ((pkt.flags & kPacketChecksumPartial) != 0 && p.has_l4 && !p.is_fragment) {
    const uint32_t l4_len = p.l3_length - (p.l4_offset - p.l3_offset);
    if (finalize_l4_checksum(pkt.data + p.l4_offset, l4_len, p.src, p.dst, p.proto)) {
      counters_.checksums_finalized.add();
    }
  }

  if (pkt.headroom + p.l3_offset < tunnel.len) {
    drop(pkt, DropReason::kHeadroomExhausted);
    return;
  }
  const InnerPacket inner{pkt.data + p.l3_offset, p.l3_length, p.family, p.traffic_class,
                          p.dont_fragment};
  emit(pkt, inner, tunnel, flow_hash, vip.slot, backend);
}

// Always inlined: it is most of the per-packet work of both callers, and a call here cost
// the general path 5 to 10% (measured with the lane off).
[[gnu::always_inline]] inline void Pipeline::emit(Packet& pkt, const InnerPacket& inner,
                                                  const TunnelHeader& tunnel, uint64_t flow_hash,
                                                  uint32_t vip_slot, uint32_t backend) {
  uint8_t* const buffer_start = pkt.data - pkt.headroom;
  uint32_t frame_len = 0;
  uint8_t* const frame = encapsulate(inner, buffer_start, tunnel, flow_hash, &frame_len);
  pkt.headroom = static_cast<uint32_t>(frame - buffer_start);
  pkt.data = frame;
  pkt.len = frame_len;
  pkt.backend = backend;
  if (VipCounters* c = counters_.vip(vip_slot)) {
    c->packets.add();
    c->bytes.add(inner.length);
  }
  if (BackendCounters* c = counters_.backend(backend)) {
    c->packets.add();
    c->bytes.add(frame_len);
  }
}

void Pipeline::send_too_big(Packet& pkt, const ParsedPacket& p, uint32_t inner_mtu, uint64_t now_ns) {
  if (!too_big_budget_.has_token(now_ns, kIcmpBurst, kIcmpPerSecond)) {
    drop(pkt, DropReason::kIcmpRateLimited);
    return;
  }
  uint32_t frame_len = 0;
  uint8_t* const buffer_start = pkt.data - pkt.headroom;
  uint8_t* frame = make_too_big(pkt.data, p, inner_mtu, buffer_start, &frame_len);
  if (frame == nullptr) {
    drop(pkt, DropReason::kHeadroomExhausted);
    return;
  }
  too_big_budget_.spend();
  pkt.headroom = static_cast<uint32_t>(frame - buffer_start);
  pkt.data = frame;
  pkt.len = frame_len;
  counters_.icmp_too_big_sent.add();
}

void Pipeline::drop(Packet& pkt, DropReason reason) {
  pkt.verdict = Verdict::kDrop;
  pkt.reason = reason;
  counters_.drop(reason);
}

}  // namespace l4mux
