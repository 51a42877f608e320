// What the engine answers about a flow (`l4mux flow`) and asks of a capture (`l4mux capture`).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "capture.h"
#include "flow_query.h"
#include "snapshot.h"
#include "types.h"

namespace l4mux {

struct WorkerFlow {
  uint32_t worker = 0;
  bool answered = false;  // false: the worker did not answer in time
  FlowQueryResult entry;  // entry.found: its connection table holds the flow
  std::optional<IpAddr> backend;
  std::string vip_name;   // of the VIP the entry was scheduled under
  FlowFate fate = FlowFate::kReschedule;  // what the running snapshot does with the entry
};

struct FlowLookup {
  uint64_t flow_hash = 0;  // 5-tuple hash: the connection-table key's hash
  bool vip_found = false;
  std::string vip_name;
  Scheduler scheduler = Scheduler::kMaglev;
  HashFields hash_fields = HashFields::kFiveTuple;  // as the scheduler applies them
  // Maglev and source-hash: the table entry a new flow would take.
  bool table_decides = false;
  uint64_t scheduler_hash = 0;
  uint32_t table_size = 0;
  uint32_t table_index = 0;
  std::optional<IpAddr> table_backend;  // empty: the entry names no backend
  std::vector<WorkerFlow> workers;
  // The backend the flow's next packet would go to, and why ("connection table",
  // "maglev table", "decided per worker", "no backend", "no VIP").
  std::optional<IpAddr> backend_now;
  std::string decided_by;
};

struct CaptureRequest {
  std::string vip_name;           // empty: any
  std::optional<IpAddr> backend;  // empty: any
  uint64_t count = 1000;
  uint32_t snaplen = 2048;
  uint32_t sample_every = 1;
};

}  // namespace l4mux
