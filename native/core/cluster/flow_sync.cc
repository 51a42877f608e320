#include "flow_sync.h"

#include <algorithm>
#include <cstring>

#include "ownership.h"

namespace l4mux::cluster {
namespace {

constexpr uint32_t ticks_of(uint64_t ns) { return static_cast<uint32_t>(ns >> 30); }

uint32_t quarter_ticks(uint64_t timeout_ns) { return std::max<uint32_t>(1, ticks_of(timeout_ns) / 4); }

// Whole seconds left, rounded up (an entry about to expire still says 1).
uint32_t lifetime_seconds(uint64_t expires_ns, uint64_t now_ns) {
  if (expires_ns <= now_ns) return 0;
  const uint64_t s = (expires_ns - now_ns + 999'999'999) / 1'000'000'000;
  return s > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(s);
}

}  // namespace

WorkerSync::WorkerSync(ExportRing& ring, const PeerTable& peers, const ConntrackTimeouts& t)
    : ring_(ring), peers_(peers) {
  const uint32_t other = quarter_ticks(t.other_ns);
  for (uint32_t& r : refresh_) r = other;
  refresh_[static_cast<size_t>(FlowState::kTcpSynSeen)] = quarter_ticks(t.tcp_syn_ns);
  refresh_[static_cast<size_t>(FlowState::kTcpEstablished)] = quarter_ticks(t.tcp_established_ns);
  refresh_[static_cast<size_t>(FlowState::kTcpClosing)] = quarter_ticks(t.tcp_closing_ns);
  refresh_[static_cast<size_t>(FlowState::kUdp)] = quarter_ticks(t.udp_ns);
}

void WorkerSync::refresh(FlowEntry& e, uint64_t now_ns) {
  e.synced_ticks = ticks_of(now_ns);
  emit(RecordKind::kRefresh, e, now_ns, kNoMember);
}

void WorkerSync::teach(FlowEntry& e, uint8_t asker, uint64_t now_ns) {
  const auto tick = static_cast<uint8_t>(ticks_of(now_ns));
  if (e.taught_tick == tick) return;  // once a tick: the asker's copy is on its way
  e.taught_tick = tick;
  emit(RecordKind::kTeach, e, now_ns, asker);
  counters_.teach_sent.add();
}

SyncHub::SyncHub(const SyncSettings& settings, uint32_t workers, const ConntrackTimeouts& timeouts)
    : peers_(settings.peer_flows) {
  for (uint32_t i = 0; i < workers; ++i) {
    rings_.push_back(std::make_unique<ExportRing>(settings.export_ring));
    workers_.push_back(std::make_unique<WorkerSync>(*rings_.back(), peers_, timeouts));
  }
}

size_t SyncHub::poll(const Snapshot& snap, const BackendAddress& backend_address, uint8_t* out, size_t max,
                     uint64_t now_ns) {
  // Round robin over the rings, a share each, so that one busy worker does not starve the
  // others' records when `max` is small.
  size_t n = 0;
  const size_t rings = rings_.size();
  for (size_t pass = 0; pass < 2 && n < max; ++pass) {
    const size_t share = pass == 0 ? std::max<size_t>(1, (max - n) / rings) : max - n;
    for (size_t k = 0; k < rings && n < max; ++k) {
      ExportRing& ring = *rings_[(next_ring_ + k) % rings];
      n += ring.drain(out + n * kFlowRecordSize, std::min(share, max - n));
    }
  }
  next_ring_ = static_cast<uint32_t>((next_ring_ + 1) % rings);
  polled_ += n;

  // Each exported entry becomes its FlowRecord in place (record i is written where entry i
  // was read, so `kept` never passes `i`).
  const ClusterView* cluster = snap.cluster();
  const std::vector<BackendState>& addresses = snap.backends();
  size_t kept = 0;
  for (size_t i = 0; i < n; ++i) {
    ExportedEntry x;
    std::memcpy(&x, out + i * kFlowRecordSize, sizeof(x));
    FlowRecord r;
    r.kind = x.kind;
    r.flags = x.flags;
    r.peer = x.peer;
    r.key = x.key;
    if (x.kind != RecordKind::kEnd) {
      if (x.backend < addresses.size()) {
        r.backend = addresses[x.backend].addr;
      } else if (std::optional<IpAddr> a = backend_address ? backend_address(x.backend) : std::nullopt) {
        r.backend = *a;
      } else {
        continue;  // no slot of this process: cannot happen (slots are never taken back)
      }
      r.lifetime_s = std::max<uint32_t>(1, lifetime_seconds(x.expires_ns, x.at_ns));
    }
    if (cluster != nullptr) {
      const Owners o = cluster->owners(r.key);
      r.owner = o.owner;
      r.backup = o.backup;
    }
    encode_flow_record(r, out + kept * kFlowRecordSize);
    ++kept;
    if (cluster == nullptr || r.kind == RecordKind::kTeach) continue;  // a teach is for the asker, not for us
    if (r.owner != cluster->self() && r.backup != cluster->self()) continue;
    if (r.kind == RecordKind::kEnd) {
      peers_.remove(r.key);
    } else {
      peers_.install(r.key, x.backend, r.flags, now_ns + uint64_t{r.lifetime_s} * 1'000'000'000ull, now_ns);
    }
    ++self_installed_;
  }
  return kept;
}

bool SyncHub::admit(const uint8_t* rec, size_t len, const Snapshot& snap, const BackendResolver& backend_slot,
                    FlowRecord* r, uint32_t* backend) {
  if (const RecordError e = decode_flow_record(rec, len, r); e != RecordError::kOk) {
    refuse(e);
    return false;
  }
  if (snap.find_vip(IpAddr{r->key.dst, r->key.family}, r->key.proto, r->key.dst_port) == nullptr) {
    refuse(Refusal::unknown_vip);
    return false;
  }
  if (r->kind == RecordKind::kEnd) return true;
  if (r->lifetime_s == 0) {
    refuse(Refusal::no_lifetime);
    return false;
  }
  const std::optional<uint32_t> slot = backend_slot(r->backend);
  if (!slot) {
    refuse(Refusal::unknown_backend);
    return false;
  }
  *backend = *slot;
  return true;
}

void SyncHub::apply(const FlowRecord& r, uint32_t backend, uint64_t hash, uint64_t now_ns) {
  if (r.kind == RecordKind::kEnd) {
    peers_.remove(r.key, hash);
    return;
  }
  peers_.install(r.key, hash, backend, r.flags | kRecordFromPeer, now_ns + uint64_t{r.lifetime_s} * 1'000'000'000ull,
                 now_ns);
}

InstallResult SyncHub::install(const uint8_t* buf, size_t len, const Snapshot& snap, const BackendResolver& backend_slot,
                               uint64_t now_ns) {
  // In groups: decode and check every record of a group and prefetch its bucket, then the
  // slot it goes to, then write them all, so that a large table's cache misses overlap
  // instead of following each other. Consecutive records mostly name the same backend: its
  // slot is resolved once.
  constexpr size_t kGroup = 32;
  struct Admitted {
    FlowRecord r;
    uint32_t backend;
    uint64_t hash;
  };
  Admitted group[kGroup];
  IpAddr last_backend;
  std::optional<uint32_t> last_slot;
  bool resolved = false;
  const BackendResolver cached = [&](const IpAddr& a) {
    if (!resolved || !(a == last_backend)) {
      last_backend = a;
      last_slot = backend_slot(a);
      resolved = true;
    }
    return last_slot;
  };
  InstallResult result;
  size_t off = 0;
  while (off < len) {
    size_t n = 0;
    for (; n < kGroup && off < len; off += kFlowRecordSize) {
      Admitted& a = group[n];
      if (!admit(buf + off, len - off, snap, cached, &a.r, &a.backend)) {
        ++result.refused;
        continue;
      }
      a.hash = peers_.hash(a.r.key);
      peers_.prefetch_bucket(a.hash);
      ++n;
    }
    for (size_t i = 0; i < n; ++i) peers_.prefetch_slot(group[i].hash);
    for (size_t i = 0; i < n; ++i) apply(group[i].r, group[i].backend, group[i].hash, now_ns);
    result.accepted += static_cast<uint32_t>(n);
  }
  accepted_ += result.accepted;
  return result;
}

size_t SyncHub::dump(const Snapshot& snap, uint32_t* cursor, uint8_t* out, size_t max, uint64_t now_ns) const {
  const ClusterView* cluster = snap.cluster();
  size_t n = 0;
  uint32_t i = *cursor;
  for (; i < peers_.capacity() && n < max; ++i) {
    FlowRecord r;
    PeerHit hit;
    uint64_t expires = 0;
    if (!peers_.entry_at(i, now_ns, &r.key, &hit, &expires)) continue;
    if (hit.backend >= snap.backends().size()) continue;
    r.kind = RecordKind::kNew;
    r.flags = hit.flags;
    r.backend = snap.backends()[hit.backend].addr;
    r.lifetime_s = std::max<uint32_t>(1, lifetime_seconds(expires, now_ns));
    if (cluster != nullptr) {
      const Owners o = cluster->owners(r.key);
      r.owner = o.owner;
      r.backup = o.backup;
    }
    encode_flow_record(r, out + n * kFlowRecordSize);
    ++n;
  }
  *cursor = i >= peers_.capacity() ? 0 : i;
  return n;
}

std::vector<uint64_t> SyncHub::mark() const {
  std::vector<uint64_t> m;
  m.reserve(rings_.size());
  for (const auto& r : rings_) m.push_back(r->produced());
  return m;
}

bool SyncHub::drained(const std::vector<uint64_t>& mark) const {
  for (size_t i = 0; i < rings_.size() && i < mark.size(); ++i) {
    if (rings_[i]->consumed() < mark[i]) return false;
  }
  return true;
}

HubStats SyncHub::stats() const {
  HubStats s;
  s.polled = polled_;
  s.self_installed = self_installed_;
  s.accepted = accepted_;
  for (size_t e = 1; e < static_cast<size_t>(RecordError::kCount); ++e) {
    s.refused.emplace_back(record_error_name(static_cast<RecordError>(e)), decode_refused_[e]);
  }
  static constexpr std::string_view kRefusalNames[] = {
#define L4MUX_X(name, str) str,
      L4MUX_INSTALL_REFUSALS(L4MUX_X)
#undef L4MUX_X
  };
  for (size_t i = 0; i < static_cast<size_t>(Refusal::kCount); ++i) s.refused.emplace_back(kRefusalNames[i], install_refused_[i]);
  s.peers = peers_.stats();
  s.peer_capacity = peers_.capacity();
  return s;
}

}  // namespace l4mux::cluster
