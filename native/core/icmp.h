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

}  // namespace l4mux
