// The TCP reset the mux sends for a flow it cuts (its backend went offline), so that the
// client fails fast instead of retransmitting into silence: setting a backend offline ends
// its clients' connections at once (draining lets them finish).
#pragma once

#include <cstdint>

#include "parse.h"

namespace l4mux {

// Turns a client's TCP segment into the RST answering it, in place: from the VIP back to the
// client, MACs swapped, with sequence numbers the client accepts (RFC 793 "Reset
// Generation", exact RCV.NXT so RFC 5961 takes it at once). IP options and IPv6 extension
// headers are not copied. Returns the frame length; 0 when the segment is itself a RST (never
// answered).
uint32_t make_tcp_reset(uint8_t* frame, const ParsedPacket& pkt);

}  // namespace l4mux
