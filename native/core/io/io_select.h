// Chooses how an engine moves packets: AF_XDP (our XDP program steers VIP traffic into the
// sockets, everything else goes to the kernel) or AF_PACKET (a fanout group of rings).
//
// `auto` tries AF_XDP first (native XDP, then generic) and falls back to AF_PACKET, keeping
// the reason for the log. An explicit `af_xdp` fails with that reason instead. With AF_XDP
// the program's VIP set must follow the configuration: the engine calls set_vips() after
// each snapshot it publishes.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "../types.h"
#include "af_packet.h"
#include "packet_io.h"

namespace l4mux {

enum class IoKind : uint8_t { kAuto, kAfPacket, kAfXdp };
enum class XdpModeRequest : uint8_t { kAuto, kNative, kGeneric };

struct IoRequest {
  std::string interface;
  IoKind kind = IoKind::kAuto;
  XdpModeRequest xdp_mode = XdpModeRequest::kAuto;
  uint32_t workers = 1;
  AfPacketOptions af_packet;
};

struct IoChoice {
  std::string mode;      // "af_xdp" or "af_packet"
  std::string xdp_mode;  // "native" / "generic" with AF_XDP, else empty
  std::string reason;    // why this mode (what failed before it, for `auto`)
};

class IoPlan {
 public:
  // Throws std::runtime_error with the reason when the requested mode cannot work (never for
  // `auto`, which ends on AF_PACKET).
  static std::unique_ptr<IoPlan> choose(const IoRequest& request);
  virtual ~IoPlan() = default;

  // The engine's factory: worker i gets the PacketIo for queue / fanout member i.
  virtual std::unique_ptr<PacketIo> open(uint32_t worker) = 0;
  // Steering follows the configuration (no-op for AF_PACKET, which sees every frame).
  // `port_only`: steered by exact (address, protocol, port) only (see XdpProgram::set_vips).
  virtual void set_vips(std::span<const VipKey> vips, std::span<const VipKey> port_only = {}) = 0;
  const IoChoice& choice() const { return choice_; }

 protected:
  IoChoice choice_;
};

}  // namespace l4mux
