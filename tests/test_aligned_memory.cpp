// Tensor and scratch memory (aligned_memory.hpp): 64-byte alignment, 2 MiB
// alignment and the transparent-huge-page advice from 4 MiB on, and the
// growing scratch buffer.
#include <catch2/catch.hpp>
#include <cstdint>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "fcn/core/aligned_memory.hpp"
#include "fcn/core/tensor.hpp"

using namespace fcn;

namespace {

uintptr_t address(const void* p) { return reinterpret_cast<uintptr_t>(p); }

// The VmFlags line of the mapping that holds p in /proc/self/smaps ("" if none).
std::string vm_flags(const void* p) {
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    uintptr_t begin = 0, end = 0;
    char dash = 0;
    std::istringstream range(line);
    if (range >> std::hex >> begin >> dash >> end && dash == '-' && line.find(':') > line.find(' ')) {
      inside = address(p) >= begin && address(p) < end;
      continue;
    }
    if (inside && line.rfind("VmFlags:", 0) == 0) return line + " ";
  }
  return "";
}

bool kernel_has_thp() { return std::ifstream("/sys/kernel/mm/transparent_hugepage/enabled").good(); }

}  // namespace

TEST_CASE("small buffers are 64-byte aligned, large ones 2 MiB aligned and advised for huge pages") {
  REQUIRE(huge_pages_advised());  // the suite runs without FCN_HUGE_PAGES=0
  for (size_t bytes : {size_t{1}, size_t{100}, size_t{4096}, kHugePageMinBytes - 1}) {
    std::unique_ptr<void, AlignedFree> p(allocate_aligned(bytes));
    INFO(bytes << " bytes");
    REQUIRE(p);
    CHECK(address(p.get()) % 64 == 0);
  }
  std::unique_ptr<void, AlignedFree> large(allocate_aligned(kHugePageMinBytes + 12345));
  REQUIRE(large);
  CHECK(address(large.get()) % kHugePageBytes == 0);
  const std::string flags = vm_flags(large.get());
  INFO(flags);
  REQUIRE(!flags.empty());
  if (kernel_has_thp()) CHECK(flags.find(" hg ") != std::string::npos);  // VM_HUGEPAGE: madvise took
  std::unique_ptr<void, AlignedFree> small(allocate_aligned(4096));
  CHECK(vm_flags(small.get()).find(" hg ") == std::string::npos);
}

TEST_CASE("a tensor of 4 MiB or more lies on huge-page-advised memory") {
  Tensor t({1, 64, 128, 128});  // 4 MiB
  CHECK(address(t.data()) % kHugePageBytes == 0);
  if (kernel_has_thp()) CHECK(vm_flags(t.data()).find(" hg ") != std::string::npos);
  int64_t nonzero = 0;
  for (int64_t i = 0; i < t.numel(); ++i) nonzero += t[i] != 0.f;
  CHECK(nonzero == 0);  // still zero-filled
}

TEST_CASE("a growing buffer keeps its memory until asked for more") {
  GrowingBuffer buffer;
  float* first = buffer.get<float>(1000);
  CHECK(address(first) % 64 == 0);
  first[999] = 1.f;
  CHECK(buffer.get<float>(10) == first);
  CHECK(buffer.get<uint16_t>(2000) == reinterpret_cast<uint16_t*>(first));
  uint16_t* larger = buffer.get<uint16_t>(kHugePageMinBytes);  // 8 MiB
  CHECK(address(larger) % kHugePageBytes == 0);
  larger[kHugePageMinBytes - 1] = 7;  // the whole size is usable
  CHECK(buffer.get<char>(0) == reinterpret_cast<char*>(larger));
}
