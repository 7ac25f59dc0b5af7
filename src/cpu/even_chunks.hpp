#pragma once
// Cutting a length into even chunks: shared by the bf16 GEMMs' splits
// (bf16_gemm.cpp) and the bf16 Winograd weight gradient's chunks of tiles
// (winograd.cpp).
#include <cstdint>

namespace fcn::cpu {

// The size of `total` split into the fewest chunks of at most `at_most`,
// evened out and rounded up to a multiple of `multiple` (the last chunk
// takes what is left).
inline int64_t chunk_size(int64_t total, int64_t at_most, int64_t multiple) {
  const int64_t count = (total + at_most - 1) / at_most;
  const int64_t even = (total + count - 1) / count;
  return (even + multiple - 1) / multiple * multiple;
}

}  // namespace fcn::cpu
