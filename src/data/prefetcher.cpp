#include <spdlog/spdlog.h>

#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include "fcn/data/prefetcher.hpp"
#include "fcn/data/sampling.hpp"
#include "fcn/core/error.hpp"

namespace fcn {

struct Prefetcher::Impl {
  struct Item {
    Sample sample;
    std::exception_ptr error;
  };

  const Dataset& dataset;
  std::function<int64_t()> next_global_index;
  uint64_t seed;
  AugmentConfig augment;
  bool shuffle;
  size_t depth;

  std::mutex mutex;
  std::condition_variable changed;
  std::deque<Item> queue;
  bool stopping = false;
  bool worker_done = false;  // the worker has stopped after an error
  std::thread worker;

  Impl(const Dataset& dataset, std::function<int64_t()> next, uint64_t seed, const AugmentConfig& augment,
       bool shuffle, int depth)
      : dataset(dataset), next_global_index(std::move(next)), seed(seed), augment(augment), shuffle(shuffle),
        depth(static_cast<size_t>(depth)) {}

  Sample load(int64_t global_index) const {
    const SampleRef ref = training_sample(global_index, dataset.size(), seed, shuffle);
    Sample sample = dataset.load(ref.dataset_index, &augment, ref.seed);
    sample.global_index = global_index;
    return sample;
  }

  // The next loadable sample; with on_error "skip", failures move on to the
  // following index, up to one epoch's worth in a row.
  Sample load_next() {
    const bool skip = dataset.config().on_error == "skip";
    for (size_t failures = 0;; ++failures) {
      const int64_t global_index = next_global_index();
      try {
        return load(global_index);
      } catch (const Error& e) {
        if (!skip || failures + 1 >= dataset.size()) throw;
        spdlog::warn("skipping sample {}: {}", global_index, e.what());
      }
    }
  }

  void run() {
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mutex);
        changed.wait(lock, [&] { return stopping || queue.size() < depth; });
        if (stopping) return;
      }
      Item item;
      try {
        item.sample = load_next();
      } catch (...) {
        item.error = std::current_exception();
      }
      const bool failed = static_cast<bool>(item.error);
      {
        std::lock_guard<std::mutex> lock(mutex);
        queue.push_back(std::move(item));
        worker_done = failed;
      }
      changed.notify_all();
      if (failed) return;
    }
  }
};

Prefetcher::Prefetcher(const Dataset& dataset, std::function<int64_t()> next_global_index, uint64_t seed,
                       const AugmentConfig& augment, bool shuffle, int depth) {
  if (depth < 1) throw Error("prefetch depth must be at least 1, got " + std::to_string(depth));
  impl_ = std::make_unique<Impl>(dataset, std::move(next_global_index), seed, augment, shuffle, depth);
  Impl* impl = impl_.get();
  impl->worker = std::thread([impl] { impl->run(); });
}

Prefetcher::~Prefetcher() {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->stopping = true;
  }
  impl_->changed.notify_all();
  impl_->worker.join();
}

Sample Prefetcher::next() {
  Impl::Item item;
  {
    std::unique_lock<std::mutex> lock(impl_->mutex);
    impl_->changed.wait(lock, [&] { return !impl_->queue.empty() || impl_->worker_done; });
    if (impl_->queue.empty()) throw Error("prefetcher: no more samples after an earlier loading error");
    item = std::move(impl_->queue.front());
    impl_->queue.pop_front();
  }
  impl_->changed.notify_all();
  if (item.error) std::rethrow_exception(item.error);
  return std::move(item.sample);
}

}  // namespace fcn
