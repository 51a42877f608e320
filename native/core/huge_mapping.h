// Memory for the large hash tables read at random (the connection table, the peer-entry
// table). On 4 KiB pages nearly every lookup of such a table also misses the TLB (a 1M-entry
// table spans ~18k pages), so each lives in its own anonymous mapping, 2 MiB aligned and
// advised for transparent huge pages (which hosts often enable only on request).
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <new>

namespace l4mux {

class HugeMapping {
 public:
  static constexpr size_t kHugePage = size_t{2} << 20;

  explicit HugeMapping(size_t bytes) : size_(bytes + kHugePage) {
    raw_ = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw_ == MAP_FAILED) throw std::bad_alloc();
    const uintptr_t aligned = (reinterpret_cast<uintptr_t>(raw_) + kHugePage - 1) & ~(kHugePage - 1);
    data_ = reinterpret_cast<void*>(aligned);
    madvise(data_, bytes, MADV_HUGEPAGE);  // advice: failure is harmless
  }
  ~HugeMapping() { munmap(raw_, size_); }
  HugeMapping(const HugeMapping&) = delete;
  HugeMapping& operator=(const HugeMapping&) = delete;

  // 2 MiB aligned, zero-filled, `bytes` long.
  void* data() const { return data_; }

 private:
  size_t size_;
  void* raw_;
  void* data_;
};

}  // namespace l4mux
