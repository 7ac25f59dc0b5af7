// Training order: global sample index g -> (epoch g / n, position g % n) of
// a per-epoch Fisher-Yates permutation seeded from (seed, epoch); the
// sample's augmentation seed is derived from (seed, g).
#include "fcn/data/sampling.hpp"
#include "fcn/data/random.hpp"
#include "fcn/core/error.hpp"

namespace fcn {

namespace {

// Seed streams: even for epochs, odd for samples, so they never collide.
uint64_t epoch_stream(int64_t epoch) { return 2 * static_cast<uint64_t>(epoch); }
uint64_t sample_stream(int64_t global_index) { return 2 * static_cast<uint64_t>(global_index) + 1; }

// The last permutation built on this thread: consecutive samples share it.
const std::vector<size_t>& epoch_order(size_t n, uint64_t seed, int64_t epoch) {
  struct Cache {
    size_t n = 0;
    uint64_t seed = 0;
    int64_t epoch = -1;
    std::vector<size_t> order;
  };
  thread_local Cache cache;
  if (cache.n != n || cache.seed != seed || cache.epoch != epoch) {
    cache.order = permutation(n, derive_seed(seed, epoch_stream(epoch)));
    cache.n = n;
    cache.seed = seed;
    cache.epoch = epoch;
  }
  return cache.order;
}

}  // namespace

SampleRef training_sample(int64_t global_index, size_t dataset_size, uint64_t seed, bool shuffle) {
  if (dataset_size == 0) throw Error("training_sample: empty dataset");
  if (global_index < 0) throw Error("training_sample: negative sample index " + std::to_string(global_index));
  const auto n = static_cast<int64_t>(dataset_size);
  const int64_t epoch = global_index / n;
  const auto position = static_cast<size_t>(global_index % n);
  SampleRef ref;
  ref.global_index = global_index;
  ref.dataset_index = shuffle ? epoch_order(dataset_size, seed, epoch)[position] : position;
  ref.seed = derive_seed(seed, sample_stream(global_index));
  return ref;
}

}  // namespace fcn
