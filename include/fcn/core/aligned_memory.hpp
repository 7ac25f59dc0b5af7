#pragma once
// Memory for tensors and scratch buffers: 64-byte aligned (a cache line, one
// AVX-512 register). From kHugePageMinBytes on, a buffer starts on a 2 MiB
// boundary and is advised for transparent huge pages (MADV_HUGEPAGE), which
// Debian's default THP mode ("madvise") only grants to memory that asks.
//
// Why: the convolutions read and write their images a plane at a time (one
// channel's rows, then the next channel's, megabytes apart), and fc6's
// weight and gradient are 411 MB each; with 4 KiB pages nearly every such
// step is a TLB miss. Huge pages made FCN-8s's 500x500 train step ~6%
// shorter in fp32 and in bf16 on a Zen 5 (docs/performance.md).
// FCN_HUGE_PAGES=0 in the environment turns the advice off.
#include <cstddef>
#include <memory>

namespace fcn {

constexpr size_t kHugePageBytes = size_t{2} << 20;
constexpr size_t kHugePageMinBytes = size_t{4} << 20;

// `bytes` of uninitialised memory, aligned as above; nullptr when out of memory.
void* allocate_aligned(size_t bytes);
void free_aligned(void* p);
// Whether allocations of kHugePageMinBytes or more are advised for huge pages
// (FCN_HUGE_PAGES unset or not "0").
bool huge_pages_advised();

struct AlignedFree {
  void operator()(void* p) const { free_aligned(p); }
};

// A buffer that grows to the largest size asked of it and keeps its memory;
// its contents are unspecified after a call that grows it.
class GrowingBuffer {
 public:
  template <class T>
  T* get(size_t count) {
    return static_cast<T*>(reserve(count * sizeof(T)));
  }

 private:
  void* reserve(size_t bytes);
  std::unique_ptr<void, AlignedFree> storage_;
  size_t capacity_ = 0;
};

}  // namespace fcn
