// Runs a capture through the pipeline and writes what would be transmitted: the
// deterministic test harness of the fast path (`l4mux replay`). Packet timestamps drive the
// connection table's clock, so a replay always gives the same result.
#pragma once

#include <cstdint>
#include <string>

#include "pipeline.h"
#include "snapshot.h"

namespace l4mux {

struct ReplayResult {
  uint64_t packets_in = 0;
  uint64_t packets_out = 0;
};

// Throws std::runtime_error when a file cannot be read or written, or the input is not
// Ethernet. Input may be pcap or pcapng; output is pcap (nanosecond timestamps).
ReplayResult replay_pcap(const std::string& in_path, const std::string& out_path,
                         Pipeline& pipeline, const Snapshot& snapshot);

}  // namespace l4mux
