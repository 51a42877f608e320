#include "capture.h"

#include <cstring>
#include <stdexcept>
#include <string>

#include "parse.h"

namespace l4mux {

CaptureSession::CaptureSession(const CaptureFilter& filter, uint32_t workers)
    : filter_(filter),
      slot_bytes_(static_cast<uint32_t>(sizeof(CaptureRecordHeader)) + filter.snaplen),
      budget_(static_cast<int64_t>(filter.count)) {
  if (filter.snaplen < 64 || filter.snaplen > kCaptureMaxSnaplen) {
    throw std::invalid_argument("capture: snaplen must be 64.." + std::to_string(kCaptureMaxSnaplen));
  }
  if (filter.count == 0 || filter.count > (1ull << 40)) throw std::invalid_argument("capture: count must be > 0");
  if (filter.sample_every == 0) throw std::invalid_argument("capture: sample_every must be > 0");
  workers_.reserve(workers);
  for (uint32_t i = 0; i < workers; ++i) {
    auto w = std::make_unique<PerWorker>();
    w->ring = std::make_unique<uint8_t[]>(static_cast<size_t>(kCaptureRingSlots) * slot_bytes_);
    w->staging = std::make_unique<uint8_t[]>(static_cast<size_t>(kMaxBatch) * filter.snaplen);
    workers_.push_back(std::move(w));
  }
}

CaptureSession::~CaptureSession() = default;

bool CaptureSession::wanted_before(const Packet& pkt) const {
  if (!filter_.vip) return true;
  ParsedPacket p;
  if (parse_frame(pkt.data, pkt.len, p).status != ParseStatus::kOk) return false;
  const VipKey& v = *filter_.vip;
  return p.dst == v.addr && p.proto == v.proto && (v.port == 0 || p.dst_port == v.port);
}

void CaptureSession::before(uint32_t worker, std::span<Packet> batch, uint64_t realtime_ns) {
  if (worker >= workers_.size() || complete()) return;
  PerWorker& w = *workers_[worker];
  w.realtime_ns = realtime_ns;
  const size_t n = std::min<size_t>(batch.size(), kMaxBatch);
  for (size_t i = 0; i < n; ++i) {
    Packet& pkt = batch[i];
    w.staged[i] = false;
    if (w.seen++ % filter_.sample_every != 0 || !wanted_before(pkt)) continue;
    const uint32_t len = std::min(pkt.len, filter_.snaplen);
    std::memcpy(w.staging.get() + i * filter_.snaplen, pkt.data, len);
    w.staged[i] = true;
    w.staged_len[i] = len;
    w.original_len[i] = pkt.len;
    pkt.backend = kMaglevNoBackend;  // so that after() sees only what this batch chose
  }
  for (size_t i = n; i < kMaxBatch; ++i) w.staged[i] = false;
}

void CaptureSession::after(uint32_t worker, std::span<const Packet> batch) {
  if (worker >= workers_.size()) return;
  PerWorker& w = *workers_[worker];
  const size_t n = std::min<size_t>(batch.size(), kMaxBatch);
  for (size_t i = 0; i < n; ++i) {
    if (!w.staged[i]) continue;
    const Packet& pkt = batch[i];
    const bool sent = pkt.verdict == Verdict::kTx;
    if (filter_.backend && !(sent && pkt.backend == *filter_.backend)) continue;
    // Both copies fit, or neither is written: a packet is never half captured.
    const uint64_t used = w.head.load(std::memory_order_relaxed) - w.tail.load(std::memory_order_acquire);
    if (kCaptureRingSlots - used < (sent ? 2u : 1u)) {
      w.ring_full.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    if (budget_.fetch_sub(1, std::memory_order_relaxed) <= 0) return;
    CaptureRecordHeader h;
    h.realtime_ns = w.realtime_ns;
    h.packet = w.sequence++;
    h.worker = static_cast<uint16_t>(worker);
    h.verdict = pkt.verdict;
    h.direction = CaptureDirection::kReceived;
    h.original_len = w.original_len[i];
    h.captured_len = w.staged_len[i];
    push(w, h, w.staging.get() + i * filter_.snaplen);
    if (sent) {
      h.direction = CaptureDirection::kSent;
      h.original_len = pkt.len;
      h.captured_len = std::min(pkt.len, filter_.snaplen);
      push(w, h, pkt.data);
    }
    w.packets.fetch_add(1, std::memory_order_relaxed);
  }
}

bool CaptureSession::push(PerWorker& w, const CaptureRecordHeader& h, const uint8_t* data) {
  const uint64_t head = w.head.load(std::memory_order_relaxed);
  uint8_t* slot = w.slot(head, slot_bytes_);
  std::memcpy(slot, &h, sizeof(h));
  std::memcpy(slot + sizeof(h), data, h.captured_len);
  w.head.store(head + 1, std::memory_order_release);
  return true;
}

CaptureStats CaptureSession::stats() const {
  CaptureStats s;
  for (const auto& w : workers_) {
    s.packets += w->packets.load(std::memory_order_relaxed);
    s.ring_full += w->ring_full.load(std::memory_order_relaxed);
  }
  return s;
}

}  // namespace l4mux
