#include "fcn/eval/evaluate_split.hpp"

#include <algorithm>

#include "fcn/core/error.hpp"
#include "fcn/data/prefetcher.hpp"

namespace fcn {

Dataset evaluation_dataset(const DataConfig& data, const std::string& split, int64_t num_classes) {
  Dataset dataset(data, split.empty() ? val_sources(data) : split_sources(data, split), num_classes);
  dataset.validate();
  return dataset;
}

Image label_map(const Tensor& label) {
  Image out(static_cast<int>(label.h()), static_cast<int>(label.w()), 1);
  for (int64_t i = 0; i < label.numel(); ++i) out.pixels[i] = static_cast<uint8_t>(std::clamp(label[i], 0.f, 255.f));
  return out;
}

ConfusionMatrix evaluate_split(const Dataset& dataset, const DataConfig& data, int64_t num_classes,
                               const MaskFunction& predict, int64_t begin, int64_t end,
                               const ScoredImageCallback& on_image) {
  const auto size = static_cast<int64_t>(dataset.size());
  if (end < 0) end = size;
  if (begin < 0 || begin > end || end > size)
    throw Error("evaluate_split: range [" + std::to_string(begin) + ", " + std::to_string(end) +
                ") outside the split's " + std::to_string(size) + " images");
  int64_t next = begin;
  Prefetcher loader(dataset, [&next] { return next++; }, data.seed, AugmentConfig{}, false, data.prefetch);
  ConfusionMatrix matrix(num_classes);
  for (int64_t position = 0; position < end - begin; ++position) {
    const Sample sample = loader.next();
    const Image prediction = predict(sample.image);
    const Image truth = label_map(sample.label);
    matrix.add(truth.pixels.data(), prediction.pixels.data(), truth.pixels.size());
    if (on_image) on_image(position, sample, truth, prediction);
  }
  return matrix;
}

}  // namespace fcn
