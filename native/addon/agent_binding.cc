#include "agent_binding.h"

#include <arpa/inet.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>

#include "agent/agent.h"

namespace l4mux::addon {
namespace {

IpAddr parse_addr(const Napi::Env& env, const Napi::Value& v, Family family, const char* field) {
  if (!v.IsString()) throw Napi::TypeError::New(env, std::string("Agent: ") + field + ": string expected");
  const std::string text = v.As<Napi::String>();
  uint8_t buf[16] = {};
  if (family == Family::kIpv4 && inet_pton(AF_INET, text.c_str(), buf) == 1) return IpAddr::v4(buf);
  if (family == Family::kIpv6 && inet_pton(AF_INET6, text.c_str(), buf) == 1) return IpAddr::v6(buf);
  throw Napi::TypeError::New(env, std::string("Agent: ") + field + ": '" + text + "' is not an " +
                                      (family == Family::kIpv4 ? "IPv4" : "IPv6") + " address");
}

// "address/length" (a bare address is a host prefix).
IpPrefix parse_prefix(const Napi::Env& env, const Napi::Value& v) {
  if (!v.IsString()) throw Napi::TypeError::New(env, "Agent: muxSources[]: string expected");
  const std::string text = v.As<Napi::String>();
  const size_t slash = text.find('/');
  const std::string address = text.substr(0, slash);
  const bool v6 = address.find(':') != std::string::npos;
  IpPrefix p;
  p.addr = parse_addr(env, Napi::String::New(env, address), v6 ? Family::kIpv6 : Family::kIpv4, "muxSources[]");
  const unsigned max = v6 ? 128 : 32;
  unsigned length = max;
  if (slash != std::string::npos) {
    const std::string digits = text.substr(slash + 1);
    if (digits.empty() || digits.size() > 3 || digits.find_first_not_of("0123456789") != std::string::npos ||
        (length = static_cast<unsigned>(std::stoul(digits))) > max) {
      throw Napi::RangeError::New(env, "Agent: muxSources[]: '" + text + "' has no valid prefix length");
    }
  }
  p.length = static_cast<uint8_t>(length);
  return p;
}

uint32_t integer(const Napi::Env& env, const Napi::Value& v, const char* field, double max) {
  if (!v.IsNumber()) throw Napi::TypeError::New(env, std::string("Agent: ") + field + ": number expected");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= max) || d != static_cast<double>(static_cast<uint64_t>(d))) {
    throw Napi::RangeError::New(env, std::string("Agent: ") + field + ": integer 0.." +
                                         std::to_string(static_cast<uint64_t>(max)) + " expected");
  }
  return static_cast<uint32_t>(d);
}

std::string name_field(const Napi::Env& env, const Napi::Object& o, const char* field) {
  const Napi::Value v = o.Get(field);
  if (!v.IsString()) throw Napi::TypeError::New(env, std::string("Agent: ") + field + ": string expected");
  return v.As<Napi::String>();
}

AgentConfig to_agent_config(const Napi::Env& env, const Napi::Object& o) {
  AgentConfig c;
  c.interface = name_field(env, o, "interface");
  c.tun = name_field(env, o, "tun");
  const Napi::Value addresses = o.Get("addresses");
  if (!addresses.IsObject()) throw Napi::TypeError::New(env, "Agent: addresses: object expected");
  const Napi::Object a = addresses.As<Napi::Object>();
  if (!a.Get("ipv4").IsUndefined()) c.decap.ipv4 = parse_addr(env, a.Get("ipv4"), Family::kIpv4, "addresses.ipv4");
  if (!a.Get("ipv6").IsUndefined()) c.decap.ipv6 = parse_addr(env, a.Get("ipv6"), Family::kIpv6, "addresses.ipv6");
  const Napi::Value sources = o.Get("muxSources");
  if (!sources.IsArray()) throw Napi::TypeError::New(env, "Agent: muxSources: array of prefixes expected");
  const Napi::Array src = sources.As<Napi::Array>();
  for (uint32_t i = 0; i < src.Length(); ++i) c.decap.mux_sources.push_back(parse_prefix(env, src.Get(i)));
  const Napi::Value vips = o.Get("vips");
  if (!vips.IsArray()) throw Napi::TypeError::New(env, "Agent: vips: array of addresses expected");
  const Napi::Array va = vips.As<Napi::Array>();
  for (uint32_t i = 0; i < va.Length(); ++i) {
    const Napi::Value v = va.Get(i);
    const bool v6 = v.IsString() && v.As<Napi::String>().Utf8Value().find(':') != std::string::npos;
    c.decap.vips.push_back(parse_addr(env, v, v6 ? Family::kIpv6 : Family::kIpv4, "vips[]"));
  }
  const Napi::Value ports = o.Get("guePorts");
  if (!ports.IsUndefined()) {
    if (!ports.IsArray()) throw Napi::TypeError::New(env, "Agent: guePorts: array expected");
    const Napi::Array arr = ports.As<Napi::Array>();
    if (arr.Length() > kMaxGuePorts) throw Napi::RangeError::New(env, "Agent: guePorts: at most 8");
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      c.decap.gue_ports[i] = static_cast<uint16_t>(integer(env, arr.Get(i), "guePorts[]", 65535));
    }
    c.decap.gue_port_count = static_cast<uint8_t>(arr.Length());
  }
  const Napi::Value key = o.Get("greKey");
  if (!key.IsUndefined() && !key.IsNull()) {
    c.decap.has_gre_key = true;
    c.decap.gre_key = integer(env, key, "greKey", 4294967295.0);
  }
  const Napi::Value suppress = o.Get("suppressIcmp");
  if (suppress.IsBoolean()) c.suppress_icmp = suppress.As<Napi::Boolean>().Value();
  const Napi::Value batch = o.Get("batch");
  if (!batch.IsUndefined()) c.batch = integer(env, batch, "batch", 1024);
  return c;
}

class AgentWrap : public Napi::ObjectWrap<AgentWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Agent",
                       {InstanceMethod<&AgentWrap::Start>("start"), InstanceMethod<&AgentWrap::Stop>("stop"),
                        InstanceMethod<&AgentWrap::Running>("running"),
                        InstanceMethod<&AgentWrap::Error>("error"),
                        InstanceMethod<&AgentWrap::TunName>("tunName"),
                        InstanceMethod<&AgentWrap::Counters>("counters")});
  }

  explicit AgentWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<AgentWrap>(info) {
    const Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "Agent(options): object expected");
    try {
      agent_ = std::make_unique<Agent>(to_agent_config(env, info[0].As<Napi::Object>()));
    } catch (const std::invalid_argument& e) {
      throw Napi::RangeError::New(env, e.what());
    }
  }

 private:
  Napi::Value Start(const Napi::CallbackInfo& info) {
    try {
      agent_->start();
    } catch (const std::exception& e) {
      throw Napi::Error::New(info.Env(), e.what());
    }
    return info.Env().Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    agent_->stop();
    return info.Env().Undefined();
  }

  Napi::Value Running(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), agent_->running()); }

  Napi::Value Error(const Napi::CallbackInfo& info) {
    const std::string e = agent_->loop_error();
    return e.empty() ? info.Env().Null() : Napi::String::New(info.Env(), e);
  }

  Napi::Value TunName(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), agent_->tun_name()); }

  Napi::Value Counters(const Napi::CallbackInfo& info) {
    const Napi::Env env = info.Env();
    const AgentCounters& c = agent_->counters();
    auto num = [](const Counter& k) { return static_cast<double>(k.get()); };
    Napi::Object out = Napi::Object::New(env);
    out.Set("rxFrames", num(c.rx_frames));
    out.Set("rxBytes", num(c.rx_bytes));
    out.Set("rxTruncated", num(c.rx_truncated));
    out.Set("rxErrors", num(c.rx_errors));
    out.Set("kernelDrops", num(c.kernel_drops));
    out.Set("decapsulated", num(c.decapsulated));
    out.Set("tunPackets", num(c.tun_packets));
    out.Set("tunBytes", num(c.tun_bytes));
    out.Set("tunErrors", num(c.tun_errors));
    out.Set("tunDiscarded", num(c.tun_discarded));
    out.Set("checksumsFinalized", num(c.checksums_finalized));
    Napi::Object status = Napi::Object::New(env);
    for (size_t s = 0; s < kDecapStatusCount; ++s) {
      status.Set(std::string(decap_status_name(static_cast<DecapStatus>(s))), num(c.status[s]));
    }
    out.Set("status", status);
    Napi::Object encap = Napi::Object::New(env);
    for (size_t k = 0; k < kAgentEncapNames.size(); ++k) encap.Set(kAgentEncapNames[k], num(c.by_encap[k]));
    out.Set("encap", encap);
    Napi::Object tunnels = Napi::Object::New(env);
    for (size_t t = 0; t < kAgentTunnelNames.size(); ++t) tunnels.Set(kAgentTunnelNames[t], num(c.by_tunnel[t]));
    out.Set("tunnels", tunnels);
    return out;
  }

  std::unique_ptr<Agent> agent_;
};

Napi::Value DecapStatuses(const Napi::CallbackInfo& info) {
  Napi::Array names = Napi::Array::New(info.Env(), kDecapStatusCount);
  for (size_t s = 0; s < kDecapStatusCount; ++s) {
    names.Set(static_cast<uint32_t>(s), std::string(decap_status_name(static_cast<DecapStatus>(s))));
  }
  return names;
}

}  // namespace

void register_agent(Napi::Env env, Napi::Object exports) {
  exports.Set("Agent", AgentWrap::Define(env));
  exports.Set("decapStatuses", Napi::Function::New<DecapStatuses>(env));
}

}  // namespace l4mux::addon
