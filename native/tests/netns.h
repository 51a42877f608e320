// Network namespaces for the native tests (header-only, test support only). Two kinds, both
// gone when the test ends, failed or not, and never the root namespace:
//   - run_in_new_netns(body): body runs on a thread of its own that unshare()d into a fresh,
//     anonymous namespace; the namespace (and every link in it) vanishes with the thread.
//   - NamedNetns: `ip netns add` under a name unique to the process and the object, deleted
//     (with its links) by the destructor.
// Commands run with sh() execute in the calling thread's namespace (children inherit it).
#pragma once

#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>

namespace l4mux::testing {

// Runs a shell command quietly; true when it exited 0.
inline bool sh(const std::string& cmd) { return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0; }

inline void write_proc(const char* path, const char* value) {
  if (FILE* f = std::fopen(path, "w")) {
    std::fputs(value, f);
    std::fclose(f);
  }
}

inline ino_t netns_inode(const char* path) {
  struct stat st{};
  return ::stat(path, &st) == 0 ? st.st_ino : 0;
}

// What run_in_new_netns() returns when namespaces are not allowed here (tests skip then).
inline constexpr char kNoNetnsPrefix[] = "not permitted here: ";

// Runs `body` on a new thread inside a new network namespace, verified to be neither the
// process's nor the thread's previous one. Returns "" or why the namespace could not be made
// (then `body` did not run).
inline std::string run_in_new_netns(const std::function<void()>& body) {
  std::string error;
  std::thread t([&] {
    const ino_t before = netns_inode("/proc/thread-self/ns/net");
    if (::unshare(CLONE_NEWNET) != 0) {
      error = std::string(errno == EPERM ? kNoNetnsPrefix : "") + "unshare(CLONE_NEWNET): " + std::strerror(errno);
      return;
    }
    const ino_t after = netns_inode("/proc/thread-self/ns/net");
    if (before == 0 || after == 0 || before == after || after == netns_inode("/proc/self/ns/net")) {
      error = "could not verify that the thread left the root network namespace";
      return;
    }
    body();
  });
  t.join();
  return error;
}

// A named namespace (`ip netns`), removed by the destructor. Throws std::runtime_error when
// it cannot be made.
class NamedNetns {
 public:
  explicit NamedNetns(const std::string& prefix) : name_(prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(next_id())) {
    if (!sh("ip netns add " + name_)) {
      name_.clear();
      throw std::runtime_error("ip netns add " + prefix + "-...: failed");
    }
  }
  ~NamedNetns() {
    if (!name_.empty()) sh("ip netns del " + name_);  // also removes the links inside
  }
  NamedNetns(const NamedNetns&) = delete;
  NamedNetns& operator=(const NamedNetns&) = delete;

  const std::string& name() const { return name_; }

 private:
  static int next_id() {
    static int id = 0;
    return ++id;
  }
  std::string name_;
};

}  // namespace l4mux::testing
