// dropCapabilities(keep) for the daemon: see privileges.cc.
#pragma once

#include <napi.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace l4mux::addon {

struct CapabilityDrop {
  struct Thread {
    pid_t tid;
    std::string name;
  };
  uint32_t threads = 0;             // threads whose sets were lowered (the caller included)
  std::vector<Thread> unreachable;  // threads that block the signal or never answered
  bool bounding = false;            // the bounding set was lowered too (CAP_SETPCAP was there)
  uint64_t effective = 0;           // the calling thread's sets afterwards
  uint64_t permitted = 0;
  uint64_t bounding_set = 0;
  std::vector<std::string> errors;  // failures past the calling thread's own
};

// Lowers every thread's capabilities to `keep` (bit n = capability n). Once per process;
// throws std::runtime_error when the calling thread's sets cannot be lowered.
CapabilityDrop drop_capabilities(uint64_t keep);

Napi::Value DropCapabilities(const Napi::CallbackInfo& info);

}  // namespace l4mux::addon
