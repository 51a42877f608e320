#include "config_convert.h"

#include <arpa/inet.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace l4mux::addon {
namespace {

[[noreturn]] void fail(const Napi::Env& env, const std::string& path, const std::string& reason) {
  throw Napi::TypeError::New(env, path + ": " + reason);
}

Napi::Value field(const Napi::Object& obj, const char* name) { return obj.Get(name); }

std::string get_string(const Napi::Object& obj, const char* name, const std::string& path) {
  const Napi::Value v = field(obj, name);
  if (!v.IsString()) fail(obj.Env(), path + "." + name, "expected a string");
  return v.As<Napi::String>().Utf8Value();
}

double get_number(const Napi::Object& obj, const char* name, const std::string& path, double lo,
                  double hi) {
  const Napi::Value v = field(obj, name);
  if (!v.IsNumber()) fail(obj.Env(), path + "." + name, "expected a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= lo && d <= hi) || d != static_cast<double>(static_cast<int64_t>(d))) {
    fail(obj.Env(), path + "." + name, "expected an integer in " + std::to_string(static_cast<int64_t>(lo)) +
                                           ".." + std::to_string(static_cast<int64_t>(hi)));
  }
  return d;
}

IpAddr parse_addr(const Napi::Env& env, const std::string& text, const std::string& path) {
  uint8_t buf[16] = {};
  if (inet_pton(AF_INET, text.c_str(), buf) == 1) return IpAddr::v4(buf);
  if (inet_pton(AF_INET6, text.c_str(), buf) == 1) return IpAddr::v6(buf);
  fail(env, path, "\"" + text + "\" is not an IPv4 or IPv6 address");
}

MacAddr parse_mac(const Napi::Env& env, const std::string& text, const std::string& path) {
  MacAddr mac{};
  unsigned v[6];
  char tail = 0;
  if (std::sscanf(text.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4],
                  &v[5], &tail) != 6) {
    fail(env, path, "\"" + text + "\" is not a MAC address");
  }
  for (int i = 0; i < 6; ++i) mac[i] = static_cast<uint8_t>(v[i]);
  return mac;
}

uint64_t parse_seed(const Napi::Env& env, const std::string& text, const std::string& path) {
  errno = 0;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(text.c_str(), &end, 0);
  if (text.empty() || text[0] == '-' || errno != 0 || end == nullptr || *end != '\0') {
    fail(env, path, "\"" + text + "\" is not a 64-bit number");
  }
  return v;
}

Encap parse_encap(const Napi::Env& env, const std::string& s, const std::string& path) {
  if (s == "ipip") return Encap::kIpip;
  if (s == "gre") return Encap::kGre;
  if (s == "gue") return Encap::kGue;
  fail(env, path, "unknown encapsulation \"" + s + "\"");
}

HashFields parse_hash_fields(const Napi::Env& env, const std::string& s, const std::string& path) {
  if (s == "5-tuple") return HashFields::kFiveTuple;
  if (s == "3-tuple") return HashFields::kThreeTuple;
  if (s == "src-ip") return HashFields::kSrcIp;
  if (s == "src-ip-port") return HashFields::kSrcIpPort;
  fail(env, path, "unknown hash fields \"" + s + "\"");
}

bool has(const Napi::Object& obj, const char* name) {
  return obj.Has(name) && !obj.Get(name).IsUndefined();
}

Scheduler parse_scheduler(const Napi::Env& env, const std::string& s, const std::string& path) {
  if (s == "maglev") return Scheduler::kMaglev;
  if (s == "source-hash") return Scheduler::kSourceHash;
  if (s == "wrr") return Scheduler::kWrr;
  if (s == "wlc") return Scheduler::kWlc;
  if (s == "random") return Scheduler::kRandom;
  fail(env, path, "unknown scheduler \"" + s + "\"");
}

AdminState parse_admin_state(const Napi::Env& env, const std::string& s, const std::string& path) {
  if (s == "active") return AdminState::kActive;
  if (s == "draining") return AdminState::kDraining;
  if (s == "offline") return AdminState::kOffline;
  fail(env, path, "unknown backend state \"" + s + "\"");
}

Napi::Array get_array(const Napi::Object& obj, const char* name, const std::string& path) {
  const Napi::Value v = field(obj, name);
  if (!v.IsArray()) fail(obj.Env(), path + "." + name, "expected an array");
  return v.As<Napi::Array>();
}

Napi::Object element(const Napi::Array& arr, uint32_t i, const std::string& path) {
  const Napi::Value v = arr.Get(i);
  if (!v.IsObject()) fail(arr.Env(), path, "expected an object");
  return v.As<Napi::Object>();
}

}  // namespace

std::string format_addr(const IpAddr& addr) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(addr.is_v4() ? AF_INET : AF_INET6, addr.bytes.data(), buf, sizeof(buf));
  return buf;
}

ConfigSpec to_config_spec(const Napi::Object& config) {
  const Napi::Env env = config.Env();
  ConfigSpec spec;
  spec.seed = parse_seed(env, get_string(config, "seed", "config"), "config.seed");
  spec.source_mac = parse_mac(env, get_string(config, "sourceMac", "config"), "config.sourceMac");
  spec.gateway_mac = parse_mac(env, get_string(config, "gatewayMac", "config"), "config.gatewayMac");
  if (config.Has("outerSourceV4") && !config.Get("outerSourceV4").IsUndefined()) {
    spec.outer_source_v4 =
        parse_addr(env, get_string(config, "outerSourceV4", "config"), "config.outerSourceV4");
    if (!spec.outer_source_v4->is_v4()) fail(env, "config.outerSourceV4", "not an IPv4 address");
  }
  if (config.Has("outerSourceV6") && !config.Get("outerSourceV6").IsUndefined()) {
    spec.outer_source_v6 =
        parse_addr(env, get_string(config, "outerSourceV6", "config"), "config.outerSourceV6");
    if (!spec.outer_source_v6->is_v6()) fail(env, "config.outerSourceV6", "not an IPv6 address");
  }

  if (config.Has("mtu") && !config.Get("mtu").IsUndefined()) {
    spec.egress_mtu = static_cast<uint32_t>(get_number(config, "mtu", "config", 68, 65535));
  }

  const Napi::Array vips = get_array(config, "vips", "config");
  for (uint32_t i = 0; i < vips.Length(); ++i) {
    const std::string path = "config.vips[" + std::to_string(i) + "]";
    const Napi::Object v = element(vips, i, path);
    VipSpec vip;
    vip.name = get_string(v, "name", path);
    vip.key.addr = parse_addr(env, get_string(v, "address", path), path + ".address");
    vip.key.proto = static_cast<uint8_t>(get_number(v, "protocol", path, 0, 255));
    if (vip.key.proto != kProtoTcp && vip.key.proto != kProtoUdp) {
      fail(env, path + ".protocol", "only TCP (6) and UDP (17) VIPs are supported");
    }
    vip.key.port = static_cast<uint16_t>(get_number(v, "port", path, 0, 65535));
    vip.encap = parse_encap(env, get_string(v, "encap", path), path + ".encap");
    if (v.Has("greKey") && !v.Get("greKey").IsUndefined()) {
      vip.gre_key = static_cast<uint32_t>(get_number(v, "greKey", path, 0, 4294967295.0));
    }
    vip.gue_port = static_cast<uint16_t>(get_number(v, "guePort", path, 1, 65535));
    vip.hash_fields = parse_hash_fields(env, get_string(v, "hashFields", path), path + ".hashFields");
    vip.table_size = static_cast<uint32_t>(get_number(v, "tableSize", path, 2, 100000007));
    const Napi::Value echo = v.Get("icmpEcho");
    if (!echo.IsBoolean()) fail(env, path + ".icmpEcho", "expected a boolean");
    vip.icmp_echo = echo.As<Napi::Boolean>().Value();
    // Optional here (absent: Maglev, active, healthy, no fall-over) so that hand-written
    // configs of tests and tools stay short; src/config always fills them in.
    if (has(v, "scheduler")) {
      vip.scheduler = parse_scheduler(env, get_string(v, "scheduler", path), path + ".scheduler");
    }
    if (has(v, "newFlowRatePerWorker")) {
      vip.new_flow_rate = static_cast<uint32_t>(get_number(v, "newFlowRatePerWorker", path, 0, 1e9));
    }

    if (has(v, "persistence")) {
      const std::string ppath = path + ".persistence";
      const Napi::Value pv = v.Get("persistence");
      if (!pv.IsObject()) fail(env, ppath, "expected an object");
      const Napi::Object po = pv.As<Napi::Object>();
      VipSpec::Persistence ps;
      ps.timeout_seconds = static_cast<uint32_t>(get_number(po, "timeoutSeconds", ppath, 1, 31536000));
      const double bits = vip.key.addr.is_v4() ? 32 : 128;
      ps.prefix_length = static_cast<uint8_t>(get_number(po, "prefixLength", ppath, 1, bits));
      ps.max_entries = static_cast<uint32_t>(get_number(po, "maxEntries", ppath, 1, 4294967295.0));
      vip.persistence = ps;
    }

    const Napi::Array backends = get_array(v, "backends", path);
    for (uint32_t b = 0; b < backends.Length(); ++b) {
      const std::string bpath = path + ".backends[" + std::to_string(b) + "]";
      const Napi::Object bo = element(backends, b, bpath);
      BackendSpec backend;
      backend.addr = parse_addr(env, get_string(bo, "address", bpath), bpath + ".address");
      backend.weight = static_cast<uint32_t>(get_number(bo, "weight", bpath, 0, 1000000));
      if (has(bo, "state")) {
        backend.state = parse_admin_state(env, get_string(bo, "state", bpath), bpath + ".state");
      }
      if (has(bo, "healthy")) {
        const Napi::Value healthy = bo.Get("healthy");
        if (!healthy.IsBoolean()) fail(env, bpath + ".healthy", "expected a boolean");
        backend.healthy = healthy.As<Napi::Boolean>().Value();
      }
      if (has(bo, "fallover")) {
        const Napi::Array fallover = get_array(bo, "fallover", bpath);
        for (uint32_t f = 0; f < fallover.Length(); ++f) {
          const std::string fpath = bpath + ".fallover[" + std::to_string(f) + "]";
          const Napi::Value a = fallover.Get(f);
          if (!a.IsString()) fail(env, fpath, "expected a string");
          backend.fallover.push_back(parse_addr(env, a.As<Napi::String>().Utf8Value(), fpath));
        }
      }
      vip.backends.push_back(backend);
    }
    spec.vips.push_back(std::move(vip));
  }
  if (has(config, "cluster")) spec.cluster = to_cluster_spec(config.Get("cluster"));
  return spec;
}

cluster::ClusterSpec to_cluster_spec(const Napi::Value& value) {
  const Napi::Env env = value.Env();
  if (!value.IsObject()) fail(env, "config.cluster", "expected an object");
  const Napi::Object c = value.As<Napi::Object>();
  cluster::ClusterSpec spec;
  spec.seed = parse_seed(env, get_string(c, "seed", "config.cluster"), "config.cluster.seed");
  spec.redirect_port = static_cast<uint16_t>(get_number(c, "redirectPort", "config.cluster", 1, 65535));
  const Napi::Array members = get_array(c, "members", "config.cluster");
  if (members.Length() == 0 || members.Length() > cluster::kMaxMembers) {
    fail(env, "config.cluster.members", "expected 1.." + std::to_string(cluster::kMaxMembers) + " members");
  }
  spec.self_index = static_cast<uint32_t>(get_number(c, "selfIndex", "config.cluster", 0, members.Length() - 1));
  for (uint32_t i = 0; i < members.Length(); ++i) {
    const std::string path = "config.cluster.members[" + std::to_string(i) + "]";
    const Napi::Object m = element(members, i, path);
    cluster::MemberSpec ms;
    ms.id = get_string(m, "id", path);
    ms.address = parse_addr(env, get_string(m, "address", path), path + ".address");
    ms.weight = static_cast<uint32_t>(get_number(m, "weight", path, 1, 1000000));
    const Napi::Value live = m.Get("live");
    if (!live.IsBoolean()) fail(env, path + ".live", "expected a boolean");
    ms.live = live.As<Napi::Boolean>().Value();
    const Napi::Value leaving = m.Get("leaving");
    if (!leaving.IsUndefined()) {
      if (!leaving.IsBoolean()) fail(env, path + ".leaving", "expected a boolean");
      ms.leaving = leaving.As<Napi::Boolean>().Value();
    }
    spec.members.push_back(std::move(ms));
  }
  return spec;
}

cluster::SyncSettings to_sync_settings(const Napi::Object& capacity) {
  cluster::SyncSettings s;
  if (has(capacity, "peerFlows")) {
    s.peer_flows = static_cast<uint32_t>(get_number(capacity, "peerFlows", "cluster", 8, 1u << 28));
  }
  if (has(capacity, "exportRing")) {
    s.export_ring = static_cast<uint32_t>(get_number(capacity, "exportRing", "cluster", 2, 1u << 24));
  }
  return s;
}

FlowKey to_flow_key(const Napi::Object& flow) {
  const Napi::Env env = flow.Env();
  const IpAddr client = parse_addr(env, get_string(flow, "client", "flow"), "flow.client");
  const IpAddr vip = parse_addr(env, get_string(flow, "vip", "flow"), "flow.vip");
  if (client.family != vip.family) fail(env, "flow.vip", "not of the client's address family");
  FlowKey k;
  k.family = client.family;
  k.src = client.bytes;
  k.dst = vip.bytes;
  k.src_port = static_cast<uint16_t>(get_number(flow, "clientPort", "flow", 0, 65535));
  k.dst_port = static_cast<uint16_t>(get_number(flow, "vipPort", "flow", 0, 65535));
  const auto proto = static_cast<uint8_t>(get_number(flow, "protocol", "flow", 0, 255));
  if (proto != kProtoTcp && proto != kProtoUdp) fail(env, "flow.protocol", "expected 6 (TCP) or 17 (UDP)");
  k.proto = proto;
  return k;
}

ConntrackConfig to_conntrack_config(const Napi::Object& settings) {
  ConntrackConfig c;
  c.capacity = static_cast<uint32_t>(get_number(settings, "maxFlows", "conntrack", 1, 1u << 28));
  const Napi::Value t = settings.Get("timeouts");
  if (!t.IsObject()) fail(settings.Env(), "conntrack.timeouts", "expected an object");
  const Napi::Object to = t.As<Napi::Object>();
  constexpr double kMaxSeconds = 7 * 24 * 3600;
  auto ns = [&](const char* name) {
    return static_cast<uint64_t>(get_number(to, name, "conntrack.timeouts", 1, kMaxSeconds)) *
           1000000000ull;
  };
  c.timeouts.tcp_syn_ns = ns("tcpSynSeconds");
  c.timeouts.tcp_established_ns = ns("tcpEstablishedSeconds");
  c.timeouts.tcp_closing_ns = ns("tcpClosingSeconds");
  c.timeouts.udp_ns = ns("udpSeconds");
  c.timeouts.other_ns = ns("otherSeconds");
  if (has(to, "tcpUnprovenSeconds")) c.timeouts.tcp_unproven_ns = ns("tcpUnprovenSeconds");
  return c;
}

}  // namespace l4mux::addon
