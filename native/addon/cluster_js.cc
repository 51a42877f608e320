#include "cluster_js.h"

#include <string>

#include "cluster/wire_entry.h"

namespace l4mux::addon {

constexpr size_t kMaxPoll = 65536;

size_t max_records_arg(const Napi::CallbackInfo& info, size_t index) {
  if (info.Length() <= index || info[index].IsUndefined()) return kMaxPoll;
  if (!info[index].IsNumber()) throw Napi::TypeError::New(info.Env(), "maxRecords: expected a number");
  const double d = info[index].As<Napi::Number>().DoubleValue();
  if (!(d >= 1) || d != static_cast<double>(static_cast<int64_t>(d))) {
    throw Napi::TypeError::New(info.Env(), "maxRecords: expected a positive integer");
  }
  return d > static_cast<double>(kMaxPoll) ? kMaxPoll : static_cast<size_t>(d);
}

Napi::Buffer<uint8_t> records_arg(const Napi::CallbackInfo& info, size_t index) {
  if (info.Length() <= index || !info[index].IsBuffer()) {
    throw Napi::TypeError::New(info.Env(), "installFlows(records): a Buffer of 64-byte records expected");
  }
  return info[index].As<Napi::Buffer<uint8_t>>();
}

std::vector<uint64_t> mark_arg(const Napi::CallbackInfo& info, size_t index) {
  if (info.Length() <= index || !info[index].IsArray()) {
    throw Napi::TypeError::New(info.Env(), "syncDrained(mark): the array syncMark() returned expected");
  }
  const Napi::Array a = info[index].As<Napi::Array>();
  std::vector<uint64_t> mark;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    const Napi::Value v = a.Get(i);
    if (!v.IsNumber() || v.As<Napi::Number>().DoubleValue() < 0) {
      throw Napi::TypeError::New(info.Env(), "mark[" + std::to_string(i) + "]: expected a count");
    }
    mark.push_back(static_cast<uint64_t>(v.As<Napi::Number>().DoubleValue()));
  }
  return mark;
}

uint32_t cursor_arg(const Napi::CallbackInfo& info, size_t index) {
  if (info.Length() <= index || info[index].IsUndefined()) return 0;
  if (!info[index].IsNumber()) throw Napi::TypeError::New(info.Env(), "cursor: expected a number");
  const double d = info[index].As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 4294967295.0) || d != static_cast<double>(static_cast<int64_t>(d))) {
    throw Napi::TypeError::New(info.Env(), "cursor: expected what the last call returned");
  }
  return static_cast<uint32_t>(d);
}

Napi::Value dump_to_js(Napi::Env env, const std::vector<uint8_t>& out, size_t n, uint32_t cursor) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("records", Napi::Buffer<uint8_t>::Copy(env, out.data(), n * cluster::kFlowRecordSize));
  o.Set("cursor", cursor);
  return o;
}

Napi::Value mark_to_js(Napi::Env env, const std::vector<uint64_t>& mark) {
  Napi::Array a = Napi::Array::New(env, mark.size());
  for (uint32_t i = 0; i < mark.size(); ++i) a.Set(i, static_cast<double>(mark[i]));
  return a;
}

Napi::Value install_result_to_js(Napi::Env env, const cluster::InstallResult& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("accepted", r.accepted);
  o.Set("refused", r.refused);
  return o;
}

Napi::Value owners_to_js(Napi::Env env, const cluster::Owners& o) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("owner", o.owner);
  out.Set("backup", o.backup);
  return out;
}

Napi::Value sync_stats_to_js(Napi::Env env, const cluster::HubStats& hub,
                             const std::vector<std::vector<std::pair<std::string_view, uint64_t>>>& workers,
                             const std::vector<uint64_t>& overflow) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("polled", static_cast<double>(hub.polled));
  o.Set("selfInstalled", static_cast<double>(hub.self_installed));
  o.Set("accepted", static_cast<double>(hub.accepted));
  Napi::Object refused = Napi::Object::New(env);
  for (const auto& [name, n] : hub.refused) refused.Set(std::string(name), static_cast<double>(n));
  o.Set("refused", refused);
  Napi::Object peers = Napi::Object::New(env);
  peers.Set("capacity", hub.peer_capacity);
  peers.Set("live", static_cast<double>(hub.peers.live));
  peers.Set("installed", static_cast<double>(hub.peers.installed));
  peers.Set("updated", static_cast<double>(hub.peers.updated));
  peers.Set("removed", static_cast<double>(hub.peers.removed));
  peers.Set("evicted", static_cast<double>(hub.peers.evicted));
  o.Set("peerTable", peers);
  Napi::Array ws = Napi::Array::New(env, workers.size());
  uint64_t total_overflow = 0;
  for (uint32_t i = 0; i < workers.size(); ++i) {
    Napi::Object w = Napi::Object::New(env);
    for (const auto& [name, n] : workers[i]) w.Set(std::string(name), static_cast<double>(n));
    const uint64_t over = i < overflow.size() ? overflow[i] : 0;
    w.Set("syncExportOverflow", static_cast<double>(over));
    total_overflow += over;
    ws.Set(i, w);
  }
  o.Set("workers", ws);
  o.Set("syncExportOverflow", static_cast<double>(total_overflow));
  return o;
}

namespace {

// A whole number in [lo, hi], or a TypeError naming `what`.
size_t index_arg(const Napi::CallbackInfo& info, size_t index, size_t lo, size_t hi, const char* what) {
  if (info.Length() <= index || !info[index].IsNumber()) {
    throw Napi::TypeError::New(info.Env(), std::string(what) + ": expected a number");
  }
  const double d = info[index].As<Napi::Number>().DoubleValue();
  if (!(d >= static_cast<double>(lo) && d <= static_cast<double>(hi)) || d != static_cast<double>(static_cast<int64_t>(d))) {
    throw Napi::RangeError::New(info.Env(), std::string(what) + ": expected a whole number in [" + std::to_string(lo) +
                                                ", " + std::to_string(hi) + "]");
  }
  return static_cast<size_t>(d);
}

Napi::Buffer<uint8_t> buffer_arg(const Napi::CallbackInfo& info, size_t index, const char* what) {
  if (info.Length() <= index || !info[index].IsBuffer()) {
    throw Napi::TypeError::New(info.Env(), std::string(what) + ": a Buffer expected");
  }
  return info[index].As<Napi::Buffer<uint8_t>>();
}

Napi::Value EncodeWireEntries(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  const Napi::Buffer<uint8_t> records = buffer_arg(info, 0, "records");
  const size_t n = records.Length() / cluster::kFlowRecordSize;
  const size_t from = index_arg(info, 1, 0, n, "from");
  cluster::WireSelect select;
  select.member = static_cast<uint8_t>(index_arg(info, 2, 0, 255, "member"));
  select.refresh = info.Length() > 3 && info[3].ToBoolean().Value();
  const Napi::Buffer<uint8_t> out = buffer_arg(info, 4, "out");
  const size_t end = index_arg(info, 6, 0, out.Length(), "outEnd");
  const size_t start = index_arg(info, 5, 0, end, "outStart");
  const cluster::WireEncodeResult r =
      cluster::encode_wire_entries(records.Data(), n, from, select, out.Data() + start, end - start);
  Napi::Object o = Napi::Object::New(env);
  o.Set("next", static_cast<double>(r.next));
  o.Set("count", r.count);
  o.Set("end", static_cast<double>(start + r.bytes));
  return o;
}

Napi::Value DecodeWireEntries(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  const Napi::Buffer<uint8_t> payload = buffer_arg(info, 0, "payload");
  const size_t start = index_arg(info, 1, 0, payload.Length(), "start");
  const size_t count = index_arg(info, 2, 0, 65535, "count");
  const Napi::Buffer<uint8_t> out = buffer_arg(info, 3, "out");
  if (out.Length() < count * cluster::kFlowRecordSize) throw Napi::RangeError::New(env, "out: room for count records expected");
  // More entries than the bytes could hold is malformed.
  const bool ok = count * cluster::kWireEntryMin <= payload.Length() - start &&
                  cluster::decode_wire_entries(payload.Data() + start, payload.Length() - start, count, out.Data());
  return Napi::Boolean::New(env, ok);
}

}  // namespace

void register_wire_codec(Napi::Env env, Napi::Object exports) {
  exports.Set("encodeWireEntries", Napi::Function::New<EncodeWireEntries>(env));
  exports.Set("decodeWireEntries", Napi::Function::New<DecodeWireEntries>(env));
}

}  // namespace l4mux::addon
