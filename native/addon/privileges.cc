// dropCapabilities(keep): lowers the process's capabilities to `keep` (capability numbers) once
// the daemon has opened what needs the others. Node has no capset API, hence this function.
//
// Linux keeps capabilities per thread, and a Node process has many threads before any
// JavaScript runs (V8's platform workers, libuv's pool, the engine's workers): lowering the
// calling thread's sets alone would leave the rest with everything. So every other thread is
// sent a signal whose handler makes the same two system calls on itself (the way glibc's
// setuid() reaches all threads), and the caller waits until each has answered. Threads made
// later inherit the lowered sets of the thread that makes them. A thread that blocks the
// signal cannot be reached (Node's SIGUSR1 watchdog blocks every signal; it runs no code
// of ours and makes no privileged call): it is reported, not hidden.
//
// Per thread: the bounding set loses everything not kept (PR_CAPBSET_DROP, needs CAP_SETPCAP:
// without it, as under systemd's CapabilityBoundingSet, the bounding set stays as it is), then
// the effective, permitted and inheritable sets are masked (capset; lowering needs no
// privilege). Ambient capabilities not kept go with them (the kernel clears an ambient
// capability that leaves the permitted or inheritable set). Children started afterwards (ip,
// ethtool, BIRD, exec checks) get at most the kept set.
#include "privileges.h"

#include <linux/capability.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace l4mux::addon {
namespace {

// What the handler applies, and where it reports (fixed arrays: nothing allocated in the handler).
constexpr size_t kMaxThreads = 4096;
std::atomic<uint64_t> g_keep{0};
std::atomic<int> g_last_cap{0};
std::atomic<bool> g_bounding{false};
std::atomic<uint32_t> g_answers{0};
std::atomic<pid_t> g_answered_tid[kMaxThreads];
std::atomic<int> g_answered_error[kMaxThreads];

pid_t this_tid() { return static_cast<pid_t>(::syscall(SYS_gettid)); }

// Lowers the calling thread's sets to `keep`. 0, or the errno of capset (the sets unchanged),
// or -errno of the first PR_CAPBSET_DROP refused (the other sets lowered all the same).
int lower_this_thread(uint64_t keep, int last_cap, bool bounding) {
  int bounding_error = 0;
  if (bounding) {
    for (int cap = 0; cap <= last_cap; ++cap) {
      if ((keep >> cap) & 1u) continue;
      if (::prctl(PR_CAPBSET_READ, cap, 0, 0, 0) != 1) continue;
      if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && bounding_error == 0) bounding_error = errno;
    }
  }
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (::syscall(SYS_capget, &header, data) != 0) return errno;
  for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; ++i) {
    const auto mask = static_cast<uint32_t>(keep >> (32 * i));
    data[i].effective &= mask;
    data[i].permitted &= mask;
    data[i].inheritable &= mask;
  }
  if (::syscall(SYS_capset, &header, data) != 0) return errno;
  return bounding_error == 0 ? 0 : -bounding_error;
}

void on_signal(int) {
  const int saved = errno;
  const int result = lower_this_thread(g_keep.load(), g_last_cap.load(), g_bounding.load());
  const uint32_t i = g_answers.fetch_add(1);
  if (i < kMaxThreads) {
    g_answered_error[i].store(result);
    g_answered_tid[i].store(this_tid());
  }
  errno = saved;
}

int read_last_cap() {
  std::ifstream in("/proc/sys/kernel/cap_last_cap");
  int n = 0;
  if (!(in >> n) || n < 0 || n > 63) n = CAP_LAST_CAP;
  return n;
}

std::vector<pid_t> thread_ids() {
  std::vector<pid_t> tids;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    const std::string name = entry.path().filename().string();
    if (!name.empty() && name.find_first_not_of("0123456789") == std::string::npos) tids.push_back(std::stoi(name));
  }
  return tids;
}

// The thread's "SigBlk:" mask and name from /proc; false when it is gone.
bool thread_status(pid_t tid, uint64_t* blocked, std::string* name) {
  std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/status");
  if (!in) return false;
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Name:", 0) == 0) {
      *name = line.substr(line.find_first_not_of(" \t", 5));
    } else if (line.rfind("SigBlk:", 0) == 0) {
      *blocked = std::stoull(line.substr(7), nullptr, 16);
      return true;
    }
  }
  return false;
}

std::string errno_text(int err) { return std::string(std::strerror(err)) + " (errno " + std::to_string(err) + ")"; }

}  // namespace

CapabilityDrop drop_capabilities(uint64_t keep) {
  static std::atomic<bool> once{false};
  if (once.exchange(true)) throw std::runtime_error("dropCapabilities: already called in this process");

  const int last_cap = read_last_cap();
  keep &= last_cap >= 63 ? ~0ull : ((1ull << (last_cap + 1)) - 1);
  // Dropping from the bounding set needs CAP_SETPCAP in the effective set.
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (::syscall(SYS_capget, &header, data) != 0) throw std::runtime_error("dropCapabilities: capget: " + errno_text(errno));
  const bool bounding = (data[0].effective >> CAP_SETPCAP) & 1u;

  g_keep = keep;
  g_last_cap = last_cap;
  g_bounding = bounding;
  g_answers = 0;

  // A real-time signal nobody else uses (checked), handled only while this runs.
  const int sig = SIGRTMAX - 2;
  struct sigaction action = {};
  struct sigaction previous = {};
  action.sa_handler = on_signal;
  action.sa_flags = SA_RESTART;
  sigemptyset(&action.sa_mask);
  if (::sigaction(sig, nullptr, &previous) != 0 || (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) ||
      (previous.sa_flags & SA_SIGINFO) != 0) {
    throw std::runtime_error("dropCapabilities: signal " + std::to_string(sig) + " is already handled in this process");
  }

  CapabilityDrop result;
  result.bounding = bounding;
  const int own = lower_this_thread(keep, last_cap, bounding);
  if (own > 0) throw std::runtime_error("dropCapabilities: capset: " + errno_text(own));
  if (own < 0) result.errors.push_back("PR_CAPBSET_DROP: " + errno_text(-own));
  result.threads = 1;
  ::sigaction(sig, &action, nullptr);

  const pid_t self = this_tid();
  const pid_t pid = ::getpid();
  std::set<pid_t> handled{self};
  std::set<pid_t> unreachable;
  uint32_t consumed = 0;
  // Rounds until a listing of the threads shows none not handled (one made meanwhile by a
  // thread not yet lowered would show in the next round).
  for (int round = 0; round < 16; ++round) {
    std::set<pid_t> sent;
    for (const pid_t tid : thread_ids()) {
      if (handled.count(tid) != 0 || unreachable.count(tid) != 0) continue;
      uint64_t blocked = 0;
      std::string name;
      if (!thread_status(tid, &blocked, &name)) continue;  // gone
      if ((blocked >> (sig - 1)) & 1u) {
        unreachable.insert(tid);
        result.unreachable.push_back({tid, name});
        continue;
      }
      if (::syscall(SYS_tgkill, pid, tid, sig) != 0) continue;  // ESRCH: gone meanwhile
      sent.insert(tid);
    }
    if (sent.empty()) break;
    // Each answers within a scheduling delay; a loaded machine gets 5 s.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!sent.empty() && std::chrono::steady_clock::now() < deadline) {
      const uint32_t answers = std::min<uint32_t>(g_answers.load(), kMaxThreads);
      for (; consumed < answers; ++consumed) {
        pid_t tid = 0;
        while ((tid = g_answered_tid[consumed].load()) == 0) std::this_thread::yield();  // being written
        const int error = g_answered_error[consumed].load();
        if (error > 0) result.errors.push_back("thread " + std::to_string(tid) + ": capset: " + errno_text(error));
        if (error < 0 && result.errors.empty()) result.errors.push_back("thread " + std::to_string(tid) + ": PR_CAPBSET_DROP: " + errno_text(-error));
        sent.erase(tid);
        if (handled.insert(tid).second) ++result.threads;
      }
      if (!sent.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    for (const pid_t tid : sent) {
      uint64_t blocked = 0;
      std::string name;
      if (!thread_status(tid, &blocked, &name)) continue;  // exited before it ran the handler
      unreachable.insert(tid);
      result.unreachable.push_back({tid, name + " (did not answer)"});
    }
  }
  // Ignored from now on, not back to its default (which ends the process): a signal still
  // pending for a thread that never took it is then discarded.
  struct sigaction ignore = {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  ::sigaction(sig, &ignore, nullptr);

  if (::syscall(SYS_capget, &header, data) == 0) {
    result.effective = (static_cast<uint64_t>(data[1].effective) << 32) | data[0].effective;
    result.permitted = (static_cast<uint64_t>(data[1].permitted) << 32) | data[0].permitted;
  }
  for (int cap = 0; cap <= last_cap; ++cap) {
    if (::prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1) result.bounding_set |= 1ull << cap;
  }
  return result;
}

Napi::Value DropCapabilities(const Napi::CallbackInfo& info) {
  const Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsArray()) throw Napi::TypeError::New(env, "dropCapabilities(keep: number[])");
  const Napi::Array list = info[0].As<Napi::Array>();
  uint64_t keep = 0;
  for (uint32_t i = 0; i < list.Length(); ++i) {
    const Napi::Value v = list.Get(i);
    const double n = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
    if (!(n >= 0 && n <= 63) || n != static_cast<double>(static_cast<int>(n))) {
      throw Napi::TypeError::New(env, "dropCapabilities: keep[" + std::to_string(i) + "] is not a capability number (0-63)");
    }
    keep |= 1ull << static_cast<int>(n);
  }
  CapabilityDrop drop;
  try {
    drop = drop_capabilities(keep);
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  const auto hex = [](uint64_t v) {
    std::ostringstream s;
    s << std::hex << v;
    return s.str();
  };
  Napi::Object out = Napi::Object::New(env);
  out.Set("threads", Napi::Number::New(env, drop.threads));
  Napi::Array unreachable = Napi::Array::New(env, drop.unreachable.size());
  for (size_t i = 0; i < drop.unreachable.size(); ++i) {
    Napi::Object t = Napi::Object::New(env);
    t.Set("tid", Napi::Number::New(env, drop.unreachable[i].tid));
    t.Set("name", Napi::String::New(env, drop.unreachable[i].name));
    unreachable.Set(static_cast<uint32_t>(i), t);
  }
  out.Set("unreachable", unreachable);
  out.Set("boundingDropped", Napi::Boolean::New(env, drop.bounding));
  out.Set("effective", Napi::String::New(env, hex(drop.effective)));
  out.Set("permitted", Napi::String::New(env, hex(drop.permitted)));
  out.Set("boundingSet", Napi::String::New(env, hex(drop.bounding_set)));
  Napi::Array errors = Napi::Array::New(env, drop.errors.size());
  for (size_t i = 0; i < drop.errors.size(); ++i) errors.Set(static_cast<uint32_t>(i), Napi::String::New(env, drop.errors[i]));
  out.Set("errors", errors);
  return out;
}

}  // namespace l4mux::addon
