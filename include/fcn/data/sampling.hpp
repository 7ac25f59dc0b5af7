#pragma once
// The training sample order: a pure function of (seed, global sample index),
// so resuming and data-parallel ranks need nothing but the iteration.
#include <cstddef>
#include <cstdint>

namespace fcn {

// Which dataset entry global sample index g is, and the seed of its draws.
struct SampleRef {
  int64_t global_index = 0;
  size_t dataset_index = 0;
  uint64_t seed = 0;
};
SampleRef training_sample(int64_t global_index, size_t dataset_size, uint64_t seed, bool shuffle = true);

}  // namespace fcn
