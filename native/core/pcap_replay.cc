#include "pcap_replay.h"

#include <pcap/pcap.h>

#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

#include "defaults.h"

namespace l4mux {
namespace {

constexpr uint32_t kHeadroom = defaults::kHeadroom;
constexpr uint32_t kMaxFrame = 65535;
constexpr uint32_t kSlotSize = kHeadroom + kMaxFrame;

struct PcapCloser {
  void operator()(pcap_t* p) const { pcap_close(p); }
};
struct DumperCloser {
  void operator()(pcap_dumper_t* d) const { pcap_dump_close(d); }
};

uint64_t to_ns(const struct timeval& tv) {
  // Opened with nanosecond precision: tv_usec holds nanoseconds.
  return static_cast<uint64_t>(tv.tv_sec) * 1000000000ull + static_cast<uint64_t>(tv.tv_usec);
}

}  // namespace

ReplayResult replay_pcap(const std::string& in_path, const std::string& out_path,
                         Pipeline& pipeline, const Snapshot& snapshot) {
  char err[PCAP_ERRBUF_SIZE] = {};
  std::unique_ptr<pcap_t, PcapCloser> in(
      pcap_open_offline_with_tstamp_precision(in_path.c_str(), PCAP_TSTAMP_PRECISION_NANO, err));
  if (!in) throw std::runtime_error(in_path + ": " + err);
  if (pcap_datalink(in.get()) != DLT_EN10MB) {
    throw std::runtime_error(in_path + ": not an Ethernet capture (link type " +
                             std::to_string(pcap_datalink(in.get())) + ")");
  }
  std::unique_ptr<pcap_t, PcapCloser> dead(
      pcap_open_dead_with_tstamp_precision(DLT_EN10MB, kMaxFrame, PCAP_TSTAMP_PRECISION_NANO));
  std::unique_ptr<pcap_dumper_t, DumperCloser> out(pcap_dump_open(dead.get(), out_path.c_str()));
  if (!out) throw std::runtime_error(out_path + ": " + pcap_geterr(dead.get()));

  std::vector<uint8_t> slots(static_cast<size_t>(kSlotSize) * kMaxBatch);
  std::vector<Packet> batch(kMaxBatch);
  std::vector<struct timeval> stamps(kMaxBatch);
  ReplayResult result;

  auto flush = [&](size_t n) {
    if (n == 0) return;
    // One batch shares the clock of its last packet, as a live worker's batch would.
    pipeline.process(std::span<Packet>(batch.data(), n), snapshot, to_ns(stamps[n - 1]));
    for (size_t i = 0; i < n; ++i) {
      if (batch[i].verdict != Verdict::kTx) continue;
      struct pcap_pkthdr hdr {};
      hdr.ts = stamps[i];
      hdr.caplen = hdr.len = batch[i].len;
      pcap_dump(reinterpret_cast<u_char*>(out.get()), &hdr, batch[i].data);
      ++result.packets_out;
    }
  };

  size_t n = 0;
  struct pcap_pkthdr* hdr = nullptr;
  const u_char* bytes = nullptr;
  int rc = 0;
  while ((rc = pcap_next_ex(in.get(), &hdr, &bytes)) == 1) {
    ++result.packets_in;
    uint8_t* slot = slots.data() + n * kSlotSize;
    const uint32_t len = std::min<uint32_t>(hdr->caplen, kMaxFrame);
    std::memcpy(slot + kHeadroom, bytes, len);
    batch[n] = Packet{};
    batch[n].data = slot + kHeadroom;
    batch[n].len = len;
    batch[n].headroom = kHeadroom;
    stamps[n] = hdr->ts;
    if (++n == kMaxBatch) {
      flush(n);
      n = 0;
    }
  }
  if (rc == PCAP_ERROR) throw std::runtime_error(in_path + ": " + pcap_geterr(in.get()));
  flush(n);
  if (pcap_dump_flush(out.get()) != 0) throw std::runtime_error(out_path + ": write failed");
  return result;
}

}  // namespace l4mux
