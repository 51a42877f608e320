// A pipeline with one snapshot, fed one frame at a time: the fixture of the packet-path tests.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "frame_builder.h"
#include "pipeline.h"

namespace l4mux::testing {

constexpr uint32_t kHeadroom = 128;

inline VipSpec make_vip(const std::string& name, const std::string& addr, uint8_t proto, uint16_t port,
                 Encap encap, std::vector<std::string> backends) {
  VipSpec v;
  v.name = name;
  v.key = VipKey{ip(addr), proto, port};
  v.encap = encap;
  v.table_size = 251;
  for (const auto& b : backends) v.backends.push_back(BackendSpec{ip(b), 1});
  return v;
}

inline ConfigSpec base_config() {
  ConfigSpec spec;
  spec.seed = 0x1234;
  spec.source_mac = {2, 0, 0, 0, 0, 1};
  spec.gateway_mac = {2, 0, 0, 0, 0, 0xfe};
  spec.outer_source_v4 = ip("10.0.0.1");
  spec.outer_source_v6 = ip("fd00::1");
  spec.vips.push_back(make_vip("web", "192.0.2.10", kProtoTcp, 80, Encap::kIpip,
                               {"10.1.0.1", "10.1.0.2", "10.1.0.3"}));
  return spec;
}

class PipelineTest : public ::testing::Test {
 protected:
  void configure(const ConfigSpec& spec) { snapshot_ = Snapshot::build(spec, backends_, vips_); }

  // Runs one frame through the pipeline; the result's data points into buffer_.
  Packet run(const Bytes& frame, uint32_t flags = 0, uint32_t headroom = kHeadroom) {
    buffer_.assign(headroom + frame.size(), 0);
    std::memcpy(buffer_.data() + headroom, frame.data(), frame.size());
    Packet pkt;
    pkt.data = buffer_.data() + headroom;
    pkt.len = static_cast<uint32_t>(frame.size());
    pkt.headroom = headroom;
    pkt.flags = flags;
    pipeline_.process(std::span<Packet>(&pkt, 1), *snapshot_, now_ns_);
    return pkt;
  }
  Bytes out(const Packet& p) const { return Bytes(p.data, p.data + p.len); }
  std::string backend_of(const Packet& p) const {
    char buf[64];
    const IpAddr& a = snapshot_->backends()[p.backend].addr;
    inet_ntop(a.is_v4() ? AF_INET : AF_INET6, a.bytes.data(), buf, sizeof(buf));
    return buf;
  }

  BackendRegistry backends_{1024};
  VipRegistry vips_{64};
  std::unique_ptr<const Snapshot> snapshot_;
  WorkerCounters counters_{64, 1024};
  Pipeline pipeline_{ConntrackConfig{4096, {}}, counters_};
  std::vector<uint8_t> buffer_;
  uint64_t now_ns_ = 1'000'000'000;
};

}  // namespace l4mux::testing
