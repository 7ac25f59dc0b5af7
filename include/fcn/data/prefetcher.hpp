#pragma once
#include <functional>
#include <memory>

#include "fcn/data/dataset.hpp"

namespace fcn {

// Loads samples in a background thread, `depth` ahead of the consumer, for
// the global indices that `next_global_index` yields in order (it is called
// on that thread). With the dataset's on_error "skip", a sample that fails
// to load is replaced by the next index, with a warning.
class Prefetcher {
 public:
  Prefetcher(const Dataset& dataset, std::function<int64_t()> next_global_index, uint64_t seed,
             const AugmentConfig& augment, bool shuffle, int depth);
  ~Prefetcher();
  // Blocks until the next sample is ready; rethrows a loading error.
  Sample next();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fcn
