// libFuzzer target: decapsulate() on arbitrary bytes, under two configurations (with and
// without a GRE key, with and without partial checksums). ASan/UBSan catch any read outside
// the frame (libFuzzer hands over an exactly-sized heap copy); the checks below catch
// results that would make the agent write outside it or inject a packet whose own header
// disagrees with the length written.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "bytes.h"
#include "agent/decap.h"

using namespace l4mux;

namespace {

#define DECAP_FUZZ_CHECK(cond)     \
  do {                             \
    if (!(cond)) __builtin_trap(); \
  } while (0)

DecapConfig make_config(bool keyed) {
  // Addresses match the seed corpus: backend 10.1.0.1 / fd00:1::1, GUE ports 6080 and 7777.
  DecapConfig c;
  const uint8_t v4[4] = {10, 1, 0, 1};
  const uint8_t v6[16] = {0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  c.ipv4 = IpAddr::v4(v4);
  c.ipv6 = IpAddr::v6(v6);
  c.gue_ports[0] = 6080;
  c.gue_ports[1] = 7777;
  c.gue_port_count = 2;
  c.has_gre_key = keyed;
  c.gre_key = 0xdeadbeef;
  return c;
}

const DecapConfig kKeyless = make_config(false);
const DecapConfig kKeyed = make_config(true);

// Keyless, admitting only the corpus's mux prefixes and VIPs (as the agent always does).
DecapConfig make_admitting() {
  DecapConfig c = make_config(false);
  const uint8_t mux4[4] = {10, 0, 0, 0};
  const uint8_t mux6[16] = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  const uint8_t vip4[4] = {192, 0, 2, 10};
  const uint8_t vip6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10};
  c.mux_sources = {IpPrefix{IpAddr::v4(mux4), 8}, IpPrefix{IpAddr::v6(mux6), 16}};
  c.vips = {IpAddr::v4(vip4), IpAddr::v6(vip6)};
  c.sort_vips();
  return c;
}
const DecapConfig kAdmitting = make_admitting();

void check(const DecapResult& r, const uint8_t* data, size_t size) {
  DECAP_FUZZ_CHECK(static_cast<size_t>(r.status) < kDecapStatusCount);
  if (r.status != DecapStatus::kOk) return;
  DECAP_FUZZ_CHECK(size_t{r.inner_offset} + r.inner_length <= size);
  DECAP_FUZZ_CHECK(r.inner_offset >= kEthHeaderLen + 20);
  DECAP_FUZZ_CHECK(r.outer == Family::kIpv4 || r.outer == Family::kIpv6);
  const uint8_t* inner = data + r.inner_offset;
  if (r.inner == Family::kIpv4) {
    DECAP_FUZZ_CHECK(r.inner_length >= 20);
    DECAP_FUZZ_CHECK((inner[0] >> 4) == 4 && (inner[0] & 0xf) >= 5);
    DECAP_FUZZ_CHECK(load_be16(inner + 2) == r.inner_length);
    DECAP_FUZZ_CHECK(uint32_t{inner[0] & 0xfu} * 4 <= r.inner_length);
  } else {
    DECAP_FUZZ_CHECK(r.inner == Family::kIpv6);
    DECAP_FUZZ_CHECK(r.inner_length >= 40);
    DECAP_FUZZ_CHECK((inner[0] >> 4) == 6);
    DECAP_FUZZ_CHECK(40u + load_be16(inner + 4) == r.inner_length);
  }
  DECAP_FUZZ_CHECK(r.kind == Encap::kIpip || r.kind == Encap::kGre || r.kind == Encap::kGue);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > UINT32_MAX) return 0;
  const auto len = static_cast<uint32_t>(size);
  const DecapResult a = decapsulate(data, len, kKeyless);
  check(a, data, size);
  const DecapResult b = decapsulate(data, len, kKeyed);
  check(b, data, size);
  const DecapResult c = decapsulate(data, len, kKeyless, kDecapChecksumNotReady);
  check(c, data, size);
  // Skipping checksum verification only ever turns a checksum failure into something else.
  if (a.status != DecapStatus::kUdpBadChecksum && a.status != DecapStatus::kGreBadChecksum) {
    DECAP_FUZZ_CHECK(c.status == a.status);
  }
  // The key only matters to GRE.
  if (a.kind != Encap::kGre || a.status == DecapStatus::kOuterFragment) {
    DECAP_FUZZ_CHECK(a.status == b.status);
  }
  // Admission only ever refuses what would otherwise have been decapsulated, and only for
  // its own two reasons.
  const DecapResult d = decapsulate(data, len, kAdmitting);
  check(d, data, size);
  if (d.status == DecapStatus::kOk) DECAP_FUZZ_CHECK(a.status == DecapStatus::kOk);
  if (d.status == DecapStatus::kSourceNotMux || d.status == DecapStatus::kInnerNotVip) {
    DECAP_FUZZ_CHECK(a.status != DecapStatus::kNotIp && a.status != DecapStatus::kNotOurAddress &&
                     a.status != DecapStatus::kNotTunnel && a.status != DecapStatus::kNotGuePort);
  } else {
    DECAP_FUZZ_CHECK(d.status == a.status);
  }
  // Deterministic.
  DECAP_FUZZ_CHECK(decapsulate(data, len, kKeyless).status == a.status);
  return 0;
}
