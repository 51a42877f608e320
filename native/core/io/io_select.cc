#include "io_select.h"

#include <stdexcept>

#include "af_xdp.h"
#include "xdp_program.h"

namespace l4mux {
namespace {

class AfPacketPlan final : public IoPlan {
 public:
  AfPacketPlan(const IoRequest& request, std::string reason)
      : factory_(make_af_packet_factory(request.interface, request.af_packet)) {
    choice_ = IoChoice{"af_packet", "", std::move(reason)};
  }
  std::unique_ptr<PacketIo> open(uint32_t worker) override { return factory_(worker); }
  void set_vips(std::span<const VipKey>, std::span<const VipKey>) override {}

 private:
  std::function<std::unique_ptr<PacketIo>(uint32_t)> factory_;
};

class AfXdpPlan final : public IoPlan {
 public:
  // Attaches the program and opens one socket per worker (worker i on queue i) right away, so
  // that `auto` learns now, not at start(), whether AF_XDP works here.
  static std::unique_ptr<AfXdpPlan> try_open(const IoRequest& request, XdpMode mode, std::string* why_not) {
    auto plan = std::unique_ptr<AfXdpPlan>(new AfXdpPlan(request));
    plan->program_ = XdpProgram::attach(XdpAttachOptions{request.interface, mode, 0}, why_not);
    if (!plan->program_) return nullptr;
    for (uint32_t w = 0; w < request.workers; ++w) {
      std::unique_ptr<PacketIo> io = plan->open_socket(w, why_not);
      if (!io) {
        *why_not += " (AF_XDP needs one receive queue per worker; workers: " + std::to_string(request.workers) + ")";
        return nullptr;
      }
      plan->opened_.push_back(std::move(io));
    }
    plan->choice_ = IoChoice{"af_xdp", xdp_mode_name(mode), ""};
    return plan;
  }

  std::unique_ptr<PacketIo> open(uint32_t worker) override {
    // The sockets opened while choosing serve the first start; later starts open new ones.
    if (worker < opened_.size() && opened_[worker]) return std::move(opened_[worker]);
    std::string why;
    std::unique_ptr<PacketIo> io = open_socket(worker, &why);
    if (!io) throw std::runtime_error(why);
    return io;
  }

  void set_vips(std::span<const VipKey> vips, std::span<const VipKey> port_only) override {
    std::string error;
    if (!program_->set_vips(vips, &error, port_only)) throw std::runtime_error("XDP VIP map update failed: " + error);
  }

 private:
  explicit AfXdpPlan(const IoRequest& request) : request_(request) {}

  std::unique_ptr<PacketIo> open_socket(uint32_t worker, std::string* why_not) {
    AfXdpOptions o;
    o.interface = request_.interface;
    o.queue = worker;
    o.worker = worker;
    o.xsks_map_fd = program_->xsks_map_fd();
    return open_af_xdp(o, why_not);
  }

  IoRequest request_;
  std::unique_ptr<XdpProgram> program_;  // declared before the sockets: destroyed after them
  std::vector<std::unique_ptr<PacketIo>> opened_;
};

}  // namespace

std::unique_ptr<IoPlan> IoPlan::choose(const IoRequest& request) {
  if (request.kind == IoKind::kAfPacket) return std::make_unique<AfPacketPlan>(request, "configured");

  std::vector<XdpMode> modes;
  if (request.xdp_mode != XdpModeRequest::kGeneric) modes.push_back(XdpMode::kNative);
  if (request.xdp_mode != XdpModeRequest::kNative) modes.push_back(XdpMode::kGeneric);
  std::string failures;
  for (XdpMode mode : modes) {
    std::string why;
    if (auto plan = AfXdpPlan::try_open(request, mode, &why)) {
      plan->choice_.reason = failures.empty() ? "configured" : "after " + failures;
      return plan;
    }
    failures += (failures.empty() ? "" : "; ") + std::string(xdp_mode_name(mode)) + " XDP: " + why;
  }
  if (request.kind == IoKind::kAfXdp) throw std::runtime_error("AF_XDP unavailable on " + request.interface + ": " + failures);
  return std::make_unique<AfPacketPlan>(request, "AF_XDP unavailable (" + failures + ")");
}

}  // namespace l4mux
