// The packet path end to end in memory: frames in, verdicts and rewritten frames out.
#include "pipeline.h"

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <memory>
#include <set>

#include "frame_builder.h"
#include "pipeline_fixture.h"

namespace l4mux {
namespace {

using testing::Bytes;
using testing::flow_frame;
using testing::ip;
using testing::base_config;
using testing::kHeadroom;
using testing::L4Spec;
using testing::make_vip;
using testing::PipelineTest;

TEST_F(PipelineTest, EncapsulatesIpv4InIpv4WithInnerPacketUntouched) {
  configure(base_config());
  L4Spec l4;
  l4.payload.assign(100, 'a');
  const Bytes in = flow_frame("198.51.100.7", "192.0.2.10", l4);
  const Packet p = run(in);
  ASSERT_EQ(p.verdict, Verdict::kTx);
  const Bytes o = out(p);
  ASSERT_EQ(o.size(), 14 + 20 + (in.size() - 14));
  EXPECT_EQ(Bytes(o.begin(), o.begin() + 6), Bytes({2, 0, 0, 0, 0, 0xfe}));
  EXPECT_EQ(Bytes(o.begin() + 6, o.begin() + 12), Bytes({2, 0, 0, 0, 0, 1}));
  EXPECT_EQ(load_be16(&o[12]), kEthTypeIpv4);
  EXPECT_EQ(o[14], 0x45);
  EXPECT_EQ(o[14 + 9], kProtoIpip);
  EXPECT_EQ(load_be16(&o[14 + 2]), o.size() - 14);
  EXPECT_EQ(load_be16(&o[14 + 6]), 0x4000) << "inner DF copied to the outer header";
  EXPECT_EQ(ipv4_header_checksum(&o[14], 20), 0) << "outer header checksum verifies";
  EXPECT_EQ(Bytes(o.begin() + 14 + 12, o.begin() + 14 + 16), Bytes({10, 0, 0, 1}));
  EXPECT_TRUE(std::memcmp(&o[34], &in[14], in.size() - 14) == 0) << "inner packet byte for byte";
  EXPECT_EQ(counters_.tx.get(), 1u);
  EXPECT_EQ(counters_.vip(0)->new_flows.get(), 1u);
}

TEST_F(PipelineTest, EveryEncapsulationAndFamilyCombination) {
  ConfigSpec spec = base_config();
  spec.vips.clear();
  spec.vips.push_back(make_vip("gre", "192.0.2.20", kProtoTcp, 80, Encap::kGre, {"10.1.0.1"}));
  spec.vips.back().gre_key = 0xabcdef01;
  spec.vips.push_back(make_vip("gre-nokey", "192.0.2.21", kProtoTcp, 80, Encap::kGre, {"10.1.0.1"}));
  spec.vips.push_back(make_vip("gue4", "192.0.2.22", kProtoUdp, 53, Encap::kGue, {"10.1.0.1"}));
  spec.vips.push_back(make_vip("gue6", "2001:db8::22", kProtoUdp, 53, Encap::kGue, {"fd00:1::1"}));
  spec.vips.push_back(make_vip("6in6", "2001:db8::10", kProtoTcp, 443, Encap::kIpip, {"fd00:1::1"}));
  spec.vips.push_back(make_vip("4in6", "192.0.2.23", kProtoTcp, 80, Encap::kIpip, {"fd00:1::1"}));
  spec.vips.push_back(make_vip("6in4", "2001:db8::23", kProtoTcp, 80, Encap::kIpip, {"10.1.0.1"}));
  configure(spec);

  {
    const Packet p = run(flow_frame("198.51.100.7", "192.0.2.20", L4Spec{}));
    ASSERT_EQ(p.verdict, Verdict::kTx);
    const Bytes o = out(p);
    EXPECT_EQ(o[14 + 9], kProtoGre);
    EXPECT_EQ(load_be16(&o[34]), 0x2000) << "key present";
    EXPECT_EQ(load_be16(&o[36]), kEthTypeIpv4);
    EXPECT_EQ(load_be32(&o[38]), 0xabcdef01u);
    EXPECT_EQ(o[42], 0x45) << "inner IPv4 header follows";
  }
  {
    const Bytes o = out(run(flow_frame("198.51.100.7", "192.0.2.21", L4Spec{})));
    EXPECT_EQ(load_be16(&o[34]), 0);
    EXPECT_EQ(o[38], 0x45);
  }
  L4Spec dns;
  dns.proto = kProtoUdp;
  dns.dst_port = 53;
  {
    const Bytes o = out(run(flow_frame("198.51.100.7", "192.0.2.22", dns)));
    EXPECT_EQ(o[14 + 9], kProtoUdp);
    EXPECT_EQ(load_be16(&o[36]), 6080);
    EXPECT_GE(load_be16(&o[34]), 49152) << "GUE source port from the flow hash";
    EXPECT_EQ(load_be16(&o[38]), o.size() - 34);
    EXPECT_EQ(load_be16(&o[40]), 0) << "zero UDP checksum over IPv4";
  }
  {
    const Bytes o = out(run(flow_frame("2001:db8:c::7", "2001:db8::22", dns)));
    EXPECT_EQ(load_be16(&o[12]), kEthTypeIpv6);
    EXPECT_EQ(o[14 + 6], kProtoUdp);
    const uint32_t udp_len = load_be16(&o[14 + 40 + 4]);
    const uint32_t sum = pseudo_header_sum(ip("fd00::1"), ip("fd00:1::1"), kProtoUdp, udp_len);
    EXPECT_EQ(csum_fold(csum_partial(&o[54], udp_len, sum)), 0) << "outer UDP checksum verifies";
  }
  {
    const Bytes o = out(run(flow_frame("2001:db8:c::7", "2001:db8::10", L4Spec{.dst_port = 443})));
    EXPECT_EQ(o[14 + 6], kProtoIpv6);
    EXPECT_EQ(o[14 + 7], 64);
    EXPECT_EQ(o[54] >> 4, 6);
  }
  {
    const Bytes o = out(run(flow_frame("198.51.100.7", "192.0.2.23", L4Spec{})));
    EXPECT_EQ(load_be16(&o[12]), kEthTypeIpv6);
    EXPECT_EQ(o[14 + 6], kProtoIpip) << "IPv4-in-IPv6";
    EXPECT_EQ(o[54], 0x45);
  }
  {
    const Bytes o = out(run(flow_frame("2001:db8:c::7", "2001:db8::23", L4Spec{})));
    EXPECT_EQ(o[14 + 9], kProtoIpv6) << "IPv6-in-IPv4";
    EXPECT_EQ(load_be16(&o[14 + 6]), 0x4000) << "never fragment a tunnel carrying IPv6";
  }
}

TEST_F(PipelineTest, FlowStaysOnItsBackendAcrossPacketsAndReloads) {
  configure(base_config());
  L4Spec syn;
  syn.src_port = 41000;
  const Packet first = run(flow_frame("198.51.100.7", "192.0.2.10", syn));
  ASSERT_EQ(first.verdict, Verdict::kTx);
  const std::string backend = backend_of(first);

  // Reload that adds backends: Maglev would move part of the flows; the table keeps this one.
  ConfigSpec bigger = base_config();
  for (int i = 4; i <= 40; ++i) bigger.vips[0].backends.push_back({ip("10.1.0." + std::to_string(i)), 1});
  configure(bigger);
  L4Spec ack = syn;
  ack.tcp_flags = 0x10;
  for (int i = 0; i < 5; ++i) {
    now_ns_ += 1'000'000'000;
    const Packet p = run(flow_frame("198.51.100.7", "192.0.2.10", ack));
    ASSERT_EQ(p.verdict, Verdict::kTx);
    EXPECT_EQ(backend_of(p), backend);
  }
  EXPECT_EQ(counters_.vip(0)->new_flows.get(), 1u);
}

TEST_F(PipelineTest, FlowsOfARemovedBackendAreRescheduled) {
  configure(base_config());
  // Find a flow on 10.1.0.2, then remove that backend.
  uint16_t port = 0;
  for (uint16_t p = 1024; p < 2024 && port == 0; ++p) {
    L4Spec syn;
    syn.src_port = p;
    if (backend_of(run(flow_frame("198.51.100.7", "192.0.2.10", syn))) == "10.1.0.2") port = p;
  }
  ASSERT_NE(port, 0);
  ConfigSpec smaller = base_config();
  smaller.vips[0].backends.erase(smaller.vips[0].backends.begin() + 1);
  configure(smaller);
  L4Spec ack;
  ack.src_port = port;
  ack.tcp_flags = 0x10;
  const Packet p = run(flow_frame("198.51.100.7", "192.0.2.10", ack));
  ASSERT_EQ(p.verdict, Verdict::kTx);
  EXPECT_NE(backend_of(p), "10.1.0.2");
}

TEST_F(PipelineTest, SameDecisionOnEveryMuxWithTheSameSeed) {
  // Two independent pipelines and snapshots (two muxes), backends listed in another order.
  configure(base_config());
  ConfigSpec reordered = base_config();
  std::reverse(reordered.vips[0].backends.begin(), reordered.vips[0].backends.end());
  BackendRegistry other_backends(1024);
  VipRegistry other_vips(64);
  auto other_snapshot = Snapshot::build(reordered, other_backends, other_vips);
  WorkerCounters other_counters(64, 1024);
  Pipeline other(ConntrackConfig{4096, {}}, other_counters);

  for (uint16_t port = 2000; port < 2200; ++port) {
    L4Spec ack;
    ack.src_port = port;
    ack.tcp_flags = 0x10;  // mid-flow: the second mux never saw the SYN
    const Bytes frame = flow_frame("198.51.100.9", "192.0.2.10", ack);
    const Packet a = run(frame);
    Bytes copy(kHeadroom + frame.size());
    std::memcpy(copy.data() + kHeadroom, frame.data(), frame.size());
    Packet b;
    b.data = copy.data() + kHeadroom;
    b.len = static_cast<uint32_t>(frame.size());
    b.headroom = kHeadroom;
    other.process(std::span<Packet>(&b, 1), *other_snapshot, now_ns_);
    ASSERT_EQ(b.verdict, Verdict::kTx);
    EXPECT_EQ(snapshot_->backends()[a.backend].addr, other_snapshot->backends()[b.backend].addr);
  }
}

TEST_F(PipelineTest, HashFieldsSourceIpSendsAllConnectionsOfAClientTogether) {
  ConfigSpec spec = base_config();
  spec.vips[0].hash_fields = HashFields::kSrcIp;
  for (int i = 4; i <= 20; ++i) spec.vips[0].backends.push_back({ip("10.1.0." + std::to_string(i)), 1});
  configure(spec);
  std::set<std::string> seen;
  for (uint16_t port = 3000; port < 3100; ++port) {
    seen.insert(backend_of(run(flow_frame("198.51.100.50", "192.0.2.10", L4Spec{.src_port = port}))));
  }
  EXPECT_EQ(seen.size(), 1u);
}

TEST_F(PipelineTest, FragmentsOfADatagramShareTheFirstFragmentsBackend) {
  ConfigSpec spec = base_config();
  spec.vips.push_back(make_vip("dns", "192.0.2.53", kProtoUdp, 53, Encap::kIpip,
                               {"10.1.0.1", "10.1.0.2", "10.1.0.3", "10.1.0.4"}));
  spec.vips.back().hash_fields = HashFields::kThreeTuple;
  configure(spec);
  for (int client = 1; client < 40; ++client) {
    const std::string src = "198.51.100." + std::to_string(client);
    const IpAddr s = ip(src);
    const IpAddr d = ip("192.0.2.53");
    L4Spec dns;
    dns.proto = kProtoUdp;
    dns.dst_port = 53;
    dns.payload.assign(64, 'q');
    const Bytes udp = testing::l4_segment(s, d, dns);
    const Bytes head(udp.begin(), udp.begin() + 32);
    const Bytes tail(udp.begin() + 32, udp.end());
    testing::IpSpec first{s, d, kProtoUdp, false, true, 0};
    testing::IpSpec second{s, d, kProtoUdp, false, false, 32};
    const Packet a = run(testing::ethernet(testing::ip_packet(first, head)));
    const std::string a_backend = backend_of(a);
    const Packet b = run(testing::ethernet(testing::ip_packet(second, tail)));
    ASSERT_EQ(a.verdict, Verdict::kTx);
    ASSERT_EQ(b.verdict, Verdict::kTx);
    EXPECT_EQ(a_backend, backend_of(b));
    // An unfragmented datagram of the same client follows the fragments (3-tuple VIP).
    EXPECT_EQ(backend_of(run(flow_frame(src, "192.0.2.53", dns))), a_backend);
  }
}

TEST_F(PipelineTest, FragmentsForAnAddressWithSeveralVipsAreDroppedAndCounted) {
  ConfigSpec spec = base_config();
  spec.vips.push_back(make_vip("web2", "192.0.2.10", kProtoTcp, 8080, Encap::kIpip, {"10.1.0.1"}));
  configure(spec);
  const IpAddr s = ip("198.51.100.1");
  const IpAddr d = ip("192.0.2.10");
  const Packet p = run(testing::ethernet(testing::ip_packet({s, d, kProtoTcp, false, false, 64}, Bytes(40, 1))));
  EXPECT_EQ(p.verdict, Verdict::kDrop);
  EXPECT_EQ(p.reason, DropReason::kFragmentNoVip);
  EXPECT_EQ(counters_.drops[static_cast<size_t>(DropReason::kFragmentNoVip)].get(), 1u);
}

// Issue 12.4: a SYN to a port no VIP serves is dropped; the same SYN in two fragments must be
// too (the first fragment shows the port).
TEST_F(PipelineTest, FirstFragmentToAPortTheVipDoesNotServeIsRefused) {
  configure(base_config());  // 192.0.2.10 TCP 80 only
  const IpAddr s = ip("198.51.100.1");
  const IpAddr d = ip("192.0.2.10");
  for (uint16_t port : {uint16_t{81}, uint16_t{80}}) {
    L4Spec syn;
    syn.dst_port = port;
    syn.payload.assign(40, 'x');
    const Bytes tcp = testing::l4_segment(s, d, syn);
    const Bytes head(tcp.begin(), tcp.begin() + 24);
    const Bytes tail(tcp.begin() + 24, tcp.end());
    const Packet first = run(testing::ethernet(testing::ip_packet({s, d, kProtoTcp, false, true, 0}, head)));
    if (port == 81) {
      EXPECT_EQ(first.verdict, Verdict::kDrop);
      EXPECT_EQ(first.reason, DropReason::kNoVipForPort);
    } else {
      EXPECT_EQ(first.verdict, Verdict::kTx) << "the served port's fragments still go through";
      EXPECT_EQ(run(testing::ethernet(testing::ip_packet({s, d, kProtoTcp, false, false, 24}, tail))).verdict,
                Verdict::kTx);
    }
  }
}

// Issue 12.10: fragments that would build a datagram past 65535 bytes, and a TCP fragment at
// offset 8 that would rewrite the first fragment's ports and flags (RFC 1858).
TEST_F(PipelineTest, ImpossibleFragmentsAreDropped) {
  configure(base_config());
  const IpAddr s = ip("198.51.100.1");
  const IpAddr d = ip("192.0.2.10");
  const Packet late = run(testing::ethernet(testing::ip_packet({s, d, kProtoTcp, false, false, 65528}, Bytes(100, 1))));
  EXPECT_EQ(late.verdict, Verdict::kDrop);
  EXPECT_EQ(late.reason, DropReason::kFragmentTooLong);
  const IpAddr s6 = ip("2001:db8:c::1");
  const IpAddr d6 = ip("2001:db8::10");
  ConfigSpec spec = base_config();
  spec.vips.push_back(make_vip("v6", "2001:db8::10", kProtoTcp, 443, Encap::kIpip, {"fd00:1::1"}));
  configure(spec);
  EXPECT_EQ(run(testing::ethernet(testing::ip_packet({s6, d6, kProtoTcp, false, false, 65528}, Bytes(100, 1)))).reason,
            DropReason::kFragmentTooLong);
  const Packet overlap = run(testing::ethernet(testing::ip_packet({s, d, kProtoTcp, false, true, 8}, Bytes(40, 1))));
  EXPECT_EQ(overlap.verdict, Verdict::kDrop);
  EXPECT_EQ(overlap.reason, DropReason::kFragmentOverlapsHeader);
  // The last legal fragment still passes.
  EXPECT_EQ(run(testing::ethernet(testing::ip_packet({s, d, kProtoTcp, false, false, 65528}, Bytes(7, 1)))).verdict,
            Verdict::kTx);
}

TEST_F(PipelineTest, ImpossibleTcpFlagsAreDroppedOnNewAndKnownFlows) {
  configure(base_config());
  for (uint8_t flags : {uint8_t{0x03} /* SYN|FIN */, uint8_t{0x06} /* SYN|RST */, uint8_t{0x00} /* null */,
                        uint8_t{0x01} /* FIN without ACK */, uint8_t{0x29} /* FIN|PSH|URG: xmas */}) {
    L4Spec bad;
    bad.src_port = 33000;
    bad.tcp_flags = flags;
    const Packet p = run(flow_frame("198.51.100.1", "192.0.2.10", bad));
    EXPECT_EQ(p.verdict, Verdict::kDrop) << int{flags};
    EXPECT_EQ(p.reason, DropReason::kTcpBadFlags) << int{flags};
  }
  // An established flow (the plain lane's path) too.
  L4Spec syn;
  syn.src_port = 33001;
  ASSERT_EQ(run(flow_frame("198.51.100.1", "192.0.2.10", syn)).verdict, Verdict::kTx);
  L4Spec odd = syn;
  odd.tcp_flags = 0x03;
  EXPECT_EQ(run(flow_frame("198.51.100.1", "192.0.2.10", odd)).reason, DropReason::kTcpBadFlags);
  odd.tcp_flags = 0x18;  // PSH|ACK: fine
  EXPECT_EQ(run(flow_frame("198.51.100.1", "192.0.2.10", odd)).verdict, Verdict::kTx);
}

TEST_F(PipelineTest, EchoRepliesAreRateLimited) {
  configure(base_config());
  Bytes echo = {8, 0, 0, 0, 0x12, 0x34, 0, 1, 'p', 'i', 'n', 'g'};
  store_be16(&echo[2], csum_fold(csum_partial(echo.data(), echo.size())));
  const Bytes frame = testing::ethernet(testing::ip_packet({ip("198.51.100.1"), ip("192.0.2.10"), kProtoIcmp}, echo));
  int replies = 0;
  for (int i = 0; i < 1000; ++i) replies += run(frame).verdict == Verdict::kTx;
  EXPECT_EQ(replies, static_cast<int>(kEchoBurst)) << "a flood of 1000 at once";
  EXPECT_EQ(counters_.drops[static_cast<size_t>(DropReason::kIcmpEchoRateLimited)].get(), 1000u - kEchoBurst);
  now_ns_ += 10'000'000;  // 10 ms later: 10 more
  replies = 0;
  for (int i = 0; i < 100; ++i) replies += run(frame).verdict == Verdict::kTx;
  EXPECT_EQ(replies, 10);
}

TEST_F(PipelineTest, AllPortsVipCatchesPortsWithoutTheirOwnVip) {
  ConfigSpec spec = base_config();
  spec.vips.push_back(make_vip("any", "192.0.2.10", kProtoTcp, 0, Encap::kIpip, {"10.9.0.1"}));
  configure(spec);
  EXPECT_EQ(backend_of(run(flow_frame("198.51.100.1", "192.0.2.10", L4Spec{.dst_port = 22}))), "10.9.0.1");
  EXPECT_NE(backend_of(run(flow_frame("198.51.100.1", "192.0.2.10", L4Spec{.dst_port = 80}))), "10.9.0.1");
}

TEST_F(PipelineTest, TrafficNotForAVipIsPassedAndUnknownPortsDropped) {
  configure(base_config());
  EXPECT_EQ(run(flow_frame("198.51.100.1", "203.0.113.5", L4Spec{})).verdict, Verdict::kPass);
  const Packet p = run(flow_frame("198.51.100.1", "192.0.2.10", L4Spec{.dst_port = 81}));
  EXPECT_EQ(p.verdict, Verdict::kDrop);
  EXPECT_EQ(p.reason, DropReason::kNoVipForPort);
  Bytes arp = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 2, 0x08, 0x06};
  arp.resize(60, 0);
  EXPECT_EQ(run(arp).verdict, Verdict::kPass);
}

TEST_F(PipelineTest, VipWithoutBackendsDropsCounted) {
  ConfigSpec spec = base_config();
  spec.vips[0].backends.clear();
  configure(spec);
  const Packet p = run(flow_frame("198.51.100.1", "192.0.2.10", L4Spec{}));
  EXPECT_EQ(p.reason, DropReason::kNoBackend);
}

TEST_F(PipelineTest, AnswersEchoRequestsToAVip) {
  configure(base_config());
  const IpAddr client = ip("198.51.100.1");
  const IpAddr vip = ip("192.0.2.10");
  Bytes echo = {8, 0, 0, 0, 0x12, 0x34, 0, 1, 'p', 'i', 'n', 'g'};
  store_be16(&echo[2], csum_fold(csum_partial(echo.data(), echo.size())));
  const Bytes frame = testing::ethernet(testing::ip_packet({client, vip, kProtoIcmp}, echo));
  const Packet p = run(frame);
  ASSERT_EQ(p.verdict, Verdict::kTx);
  const Bytes o = out(p);
  ASSERT_EQ(o.size(), 14u + 20 + echo.size()) << "Ethernet padding trimmed";
  EXPECT_EQ(Bytes(o.begin(), o.begin() + 6), Bytes(frame.begin() + 6, frame.begin() + 12));
  EXPECT_EQ(Bytes(o.begin() + 26, o.begin() + 30), Bytes({192, 0, 2, 10}));
  EXPECT_EQ(Bytes(o.begin() + 30, o.begin() + 34), Bytes({198, 51, 100, 1}));
  EXPECT_EQ(o[34], 0) << "echo reply";
  EXPECT_EQ(ipv4_header_checksum(&o[14], 20), 0);
  EXPECT_EQ(csum_fold(csum_partial(&o[34], echo.size())), 0) << "ICMP checksum verifies";
  EXPECT_EQ(counters_.echo_replies.get(), 1u);

  ConfigSpec silent = base_config();
  silent.vips[0].icmp_echo = false;
  configure(silent);
  EXPECT_EQ(run(frame).reason, DropReason::kIcmpEchoDisabled);
}

TEST_F(PipelineTest, AnswersIcmpv6EchoRequestsToAVip) {
  ConfigSpec spec = base_config();
  spec.vips.push_back(make_vip("v6", "2001:db8::10", kProtoTcp, 443, Encap::kIpip, {"fd00:1::1"}));
  configure(spec);
  const IpAddr client = ip("2001:db8:c::1");
  const IpAddr vip = ip("2001:db8::10");
  Bytes echo = {128, 0, 0, 0, 0x12, 0x34, 0, 1, 'p', 'i', 'n', 'g'};
  finalize_l4_checksum(echo.data(), static_cast<uint32_t>(echo.size()), client, vip, kProtoIcmpv6);
  const Packet p = run(testing::ethernet(testing::ip_packet({client, vip, kProtoIcmpv6}, echo)));
  ASSERT_EQ(p.verdict, Verdict::kTx);
  const Bytes o = out(p);
  EXPECT_EQ(o[54], 129);
  const uint32_t sum = pseudo_header_sum(vip, client, kProtoIcmpv6, static_cast<uint32_t>(echo.size()));
  EXPECT_EQ(csum_fold(csum_partial(&o[54], echo.size(), sum)), 0);
}

TEST_F(PipelineTest, FragmentationNeededGoesToTheBackendOfTheEmbeddedFlow) {
  configure(base_config());
  L4Spec syn;
  syn.src_port = 45000;
  const Packet first = run(flow_frame("198.51.100.7", "192.0.2.10", syn));
  const std::string backend = backend_of(first);

  // The backend's reply (VIP -> client) hit a small MTU; the router reports it to the VIP.
  L4Spec reply;
  reply.src_port = 80;
  reply.dst_port = 45000;
  reply.tcp_flags = 0x12;
  const IpAddr vip = ip("192.0.2.10");
  const IpAddr client = ip("198.51.100.7");
  const Bytes quoted = testing::ip_packet({vip, client, kProtoTcp}, testing::l4_segment(vip, client, reply));
  Bytes icmp = {3, 4, 0, 0, 0, 0, 0x05, 0xdc};
  icmp.insert(icmp.end(), quoted.begin(), quoted.begin() + 28);
  store_be16(&icmp[2], csum_fold(csum_partial(icmp.data(), icmp.size())));
  const Packet p = run(testing::ethernet(testing::ip_packet({ip("203.0.113.1"), vip, kProtoIcmp}, icmp)));
  ASSERT_EQ(p.verdict, Verdict::kTx);
  EXPECT_EQ(backend_of(p), backend);
  EXPECT_EQ(counters_.icmp_errors_forwarded.get(), 1u);

  // A "too big" reporting an MTU below 576 (IPv4) is not relayed: it would only make the
  // backend send tiny segments.
  Bytes tiny = icmp;
  store_be16(&tiny[6], 68);
  store_be16(&tiny[2], 0);
  store_be16(&tiny[2], csum_fold(csum_partial(tiny.data(), tiny.size())));
  const Packet refused = run(testing::ethernet(testing::ip_packet({ip("203.0.113.1"), vip, kProtoIcmp}, tiny)));
  EXPECT_EQ(refused.verdict, Verdict::kDrop);
  EXPECT_EQ(refused.reason, DropReason::kIcmpTooBigMtuTooSmall);
  EXPECT_EQ(counters_.icmp_errors_forwarded.get(), 1u);

  // Other ICMP errors are counted, not forwarded.
  icmp[1] = 1;  // host unreachable
  EXPECT_EQ(run(testing::ethernet(testing::ip_packet({ip("203.0.113.1"), vip, kProtoIcmp}, icmp))).reason,
            DropReason::kIcmpUnsupported);
}

TEST_F(PipelineTest, PartialChecksumsAreFinalized) {
  configure(base_config());
  Bytes frame = flow_frame("198.51.100.7", "192.0.2.10", L4Spec{});
  const uint16_t good = load_be16(&frame[14 + 20 + 16]);
  // What a veth sender leaves with CHECKSUM_PARTIAL: only the pseudo-header sum, uncomplemented.
  const uint32_t tcp_len = load_be16(&frame[16]) - 20;
  store_be16(&frame[14 + 20 + 16],
             static_cast<uint16_t>(~csum_fold(pseudo_header_sum(ip("198.51.100.7"), ip("192.0.2.10"), kProtoTcp, tcp_len))));
  const Packet p = run(frame, kPacketChecksumPartial);
  ASSERT_EQ(p.verdict, Verdict::kTx);
  EXPECT_EQ(load_be16(p.data + 34 + 20 + 16), good);
  EXPECT_EQ(counters_.checksums_finalized.get(), 1u);
}

TEST_F(PipelineTest, NotEnoughHeadroomIsADropNotACorruption) {
  configure(base_config());
  const Packet p = run(flow_frame("198.51.100.7", "192.0.2.10", L4Spec{}), 0, 8);
  EXPECT_EQ(p.verdict, Verdict::kDrop);
  EXPECT_EQ(p.reason, DropReason::kHeadroomExhausted);
}

TEST_F(PipelineTest, VlanTaggedInputLeavesUntagged) {
  configure(base_config());
  const Packet p = run(flow_frame("198.51.100.7", "192.0.2.10", L4Spec{}, 100));
  ASSERT_EQ(p.verdict, Verdict::kTx);
  EXPECT_EQ(load_be16(p.data + 12), kEthTypeIpv4);
  EXPECT_EQ(p.data[34], 0x45);
}

TEST_F(PipelineTest, MalformedFramesAreDroppedWithTheirReason) {
  configure(base_config());
  Bytes frame = flow_frame("198.51.100.7", "192.0.2.10", L4Spec{});
  store_be16(&frame[16], 2000);  // IPv4 total length beyond the frame
  const Packet p = run(frame);
  EXPECT_EQ(p.verdict, Verdict::kDrop);
  EXPECT_EQ(p.reason, DropReason::kIpv4BadTotalLength);
  EXPECT_EQ(run(Bytes(10, 0)).reason, DropReason::kEthTruncated);
  EXPECT_EQ(counters_.dropped.get(), 2u);
}

TEST(SnapshotTest, RejectsDuplicateVipsAndNamesTheVipOfABadTable) {
  BackendRegistry backends(16);
  VipRegistry vips(16);
  ConfigSpec spec = base_config();
  spec.vips.push_back(spec.vips[0]);
  EXPECT_THROW(Snapshot::build(spec, backends, vips), std::invalid_argument);
  ConfigSpec bad = base_config();
  bad.vips[0].table_size = 250;
  try {
    Snapshot::build(bad, backends, vips);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("\"web\""), std::string::npos) << e.what();
  }
}

TEST(SnapshotTest, SlotsAreStableAcrossBuilds) {
  BackendRegistry backends(16);
  VipRegistry vips(16);
  ConfigSpec a = base_config();
  auto s1 = Snapshot::build(a, backends, vips);
  ConfigSpec b = base_config();
  std::reverse(b.vips[0].backends.begin(), b.vips[0].backends.end());
  b.vips[0].backends.push_back({ip("10.1.0.9"), 1});
  auto s2 = Snapshot::build(b, backends, vips);
  for (uint32_t slot = 0; slot < s1->backends().size(); ++slot) {
    EXPECT_EQ(s1->backends()[slot].addr, s2->backends()[slot].addr);
  }
  EXPECT_EQ(backends.find(ip("10.1.0.9")), 3u);
}

TEST(SnapshotTest, RegistryCapacityIsEnforced) {
  BackendRegistry backends(2);
  VipRegistry vips(16);
  EXPECT_THROW(Snapshot::build(base_config(), backends, vips), std::invalid_argument);
}

}  // namespace
}  // namespace l4mux

namespace l4mux {
namespace {

class MtuTest : public PipelineTest {
 protected:
  void SetUp() override {
    ConfigSpec spec = base_config();
    spec.egress_mtu = 1500;
    spec.vips.push_back(make_vip("v6", "2001:db8::10", kProtoTcp, 443, Encap::kIpip, {"fd00:1::1"}));
    configure(spec);
  }
  static Bytes tcp_of_size(const std::string& src, const std::string& dst, uint16_t port,
                           uint32_t ip_len, bool df = true) {
    const IpAddr s = ip(src);
    const IpAddr d = ip(dst);
    L4Spec l4;
    l4.dst_port = port;
    l4.payload.assign(ip_len - (s.is_v4() ? 20 : 40) - 20, 'm');
    testing::IpSpec ipspec{s, d, kProtoTcp};
    ipspec.dont_fragment = df;
    return testing::ethernet(testing::ip_packet(ipspec, testing::l4_segment(s, d, l4)));
  }
};

TEST_F(MtuTest, PacketsThatStillFitAreForwarded) {
  const Packet p = run(tcp_of_size("198.51.100.7", "192.0.2.10", 80, 1480));
  ASSERT_EQ(p.verdict, Verdict::kTx);
  EXPECT_EQ(p.len, 14u + 1500);
}

TEST_F(MtuTest, TooBigWithDontFragmentGetsFragmentationNeededFromTheVip) {
  const Bytes in = tcp_of_size("198.51.100.7", "192.0.2.10", 80, 1500);
  const Packet p = run(in);
  ASSERT_EQ(p.verdict, Verdict::kTx);
  const Bytes o = out(p);
  EXPECT_EQ(Bytes(o.begin(), o.begin() + 6), Bytes(in.begin() + 6, in.begin() + 12)) << "back to the sender's hop";
  EXPECT_EQ(o[14 + 9], kProtoIcmp);
  EXPECT_EQ(Bytes(o.begin() + 26, o.begin() + 30), Bytes({192, 0, 2, 10}));
  EXPECT_EQ(Bytes(o.begin() + 30, o.begin() + 34), Bytes({198, 51, 100, 7}));
  EXPECT_EQ(o[34], 3);
  EXPECT_EQ(o[35], 4);
  EXPECT_EQ(load_be16(&o[34 + 6]), 1480) << "room left for the inner packet after the outer IPv4 header";
  EXPECT_EQ(ipv4_header_checksum(&o[14], 20), 0);
  EXPECT_EQ(csum_fold(csum_partial(&o[34], o.size() - 34)), 0);
  EXPECT_LE(o.size() - 14, 576u);
  EXPECT_TRUE(std::memcmp(&o[42], &in[14], 28) == 0) << "quotes the offending header";
  EXPECT_EQ(counters_.icmp_too_big_sent.get(), 1u);
}

TEST_F(MtuTest, TooBigIpv6GetsPacketTooBig) {
  const Packet p = run(tcp_of_size("2001:db8:c::7", "2001:db8::10", 443, 1500));
  ASSERT_EQ(p.verdict, Verdict::kTx);
  const Bytes o = out(p);
  EXPECT_EQ(o[14 + 6], kProtoIcmpv6);
  EXPECT_EQ(o[54], 2);
  EXPECT_EQ(load_be32(&o[58]), 1460u);
  EXPECT_LE(o.size() - 14, 1280u);
  const uint32_t sum = pseudo_header_sum(ip("2001:db8::10"), ip("2001:db8:c::7"), kProtoIcmpv6,
                                         static_cast<uint32_t>(o.size() - 54));
  EXPECT_EQ(csum_fold(csum_partial(&o[54], o.size() - 54, sum)), 0);
}

TEST_F(MtuTest, TooBigWithoutDontFragmentIsDroppedAndCounted) {
  const Packet p = run(tcp_of_size("198.51.100.7", "192.0.2.10", 80, 1500, false));
  EXPECT_EQ(p.verdict, Verdict::kDrop);
  EXPECT_EQ(p.reason, DropReason::kMtuExceeded);
}

TEST_F(MtuTest, TooBigErrorsAreRateLimited) {
  uint64_t sent = 0;
  uint64_t limited = 0;
  for (int i = 0; i < 300; ++i) {
    const Packet p = run(tcp_of_size("198.51.100.7", "192.0.2.10", 80, 1500));
    (p.verdict == Verdict::kTx ? sent : limited) += 1;
  }
  EXPECT_EQ(sent, kIcmpBurst);
  EXPECT_EQ(limited, 300 - kIcmpBurst);
  now_ns_ += 10'000'000;  // 10 ms later: 10 more tokens at 1000/s
  for (int i = 0; i < 20; ++i) sent += run(tcp_of_size("198.51.100.7", "192.0.2.10", 80, 1500)).verdict == Verdict::kTx;
  EXPECT_EQ(sent, kIcmpBurst + 10);
}

}  // namespace
}  // namespace l4mux
