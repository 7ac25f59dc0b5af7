#include "fcn/core/aligned_memory.hpp"

#include <sys/mman.h>

#include <cstdlib>

#include "fcn/core/environment.hpp"
#include "fcn/core/error.hpp"

namespace fcn {

bool huge_pages_advised() {
  static const bool advised = env_flag("FCN_HUGE_PAGES", true);
  return advised;
}

void* allocate_aligned(size_t bytes) {
  const size_t alignment = huge_pages_advised() && bytes >= kHugePageMinBytes ? kHugePageBytes : 64;
  // aligned_alloc wants a size that is a multiple of the alignment; a huge
  // page is granted only for whole 2 MiB pages inside the range
  const size_t rounded = (bytes + alignment - 1) / alignment * alignment;
  void* p = std::aligned_alloc(alignment, rounded == 0 ? alignment : rounded);
  // advice only: where THP is off (or "never") the memory works as before
  if (p && alignment == kHugePageBytes) madvise(p, rounded, MADV_HUGEPAGE);
  return p;
}

void free_aligned(void* p) { std::free(p); }

void* GrowingBuffer::reserve(size_t bytes) {
  if (bytes > capacity_ || !storage_) {
    storage_.reset();  // the old contents are not kept: never hold both
    capacity_ = 0;
    void* p = allocate_aligned(bytes);
    if (!p) throw Error("out of memory allocating a " + std::to_string(bytes >> 20) + " MiB scratch buffer");
    storage_.reset(p);
    capacity_ = bytes;
  }
  return storage_.get();
}

}  // namespace fcn
