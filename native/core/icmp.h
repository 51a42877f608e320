// ICMP the mux answers itself: echo requests to a VIP address (ping a VIP, as IPVS and
// Katran users expect). ICMP errors about a flow are not answered here: the pipeline
// forwards them to the flow's backend.
#pragma once

#include <cstdint>

#include "parse.h"

namespace l4mux {

// True for an ICMP "fragmentation needed" or ICMPv6 "packet too big": the errors a backend
// must see to lower its path MTU, since its replies bypass the mux.
bool is_path_mtu_error(const ParsedPacket& pkt);

bool is_echo_request(const ParsedPacket& pkt);

// Turns an echo request into the echo reply, in place: MACs and addresses swapped, type
// changed, checksums updated, trailing padding trimmed. Returns the reply's frame length.
uint32_t make_echo_reply(uint8_t* frame, const ParsedPacket& pkt);

// Builds, in front of the packet, the ICMP "fragmentation needed" (IPv4) or ICMPv6 "packet
// too big" telling its sender that at most `mtu` bytes of IP packet fit. The reply comes from
// the packet's destination (the VIP) and quotes the start of the packet, as RFC 792 / 4443
// ask. `headroom_start` is the first writable byte in front of the frame. Returns the new
// frame start (length in *frame_len), or nullptr when there is not enough headroom.
uint8_t* make_too_big(uint8_t* frame, const ParsedPacket& pkt, uint32_t mtu, uint8_t* headroom_start,
                      uint32_t* frame_len);

}  // namespace l4mux
