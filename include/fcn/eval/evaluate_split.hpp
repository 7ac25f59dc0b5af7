#pragma once
// Scoring a model over a dataset split: the one loop behind `fcn eval` and
// the trainer's validation. Images load ahead on the prefetcher (no
// augmentation, in order); each prediction goes into one confusion matrix.
#include <cstdint>
#include <functional>
#include <string>

#include "fcn/core/tensor.hpp"
#include "fcn/data/dataset.hpp"
#include "fcn/eval/metrics.hpp"
#include "fcn/io/image_io.hpp"

namespace fcn {

// The predicted label map of one image tensor [1, 3, H, W], at its size.
using MaskFunction = std::function<Image(const Tensor& image)>;
// Called once per image, in order, after it was scored; `position` counts
// from 0 within [begin, end).
using ScoredImageCallback =
    std::function<void(int64_t position, const Sample& sample, const Image& truth, const Image& prediction)>;

// The dataset `fcn eval --split` scores: `split` of the validation sources'
// datasets, or the config's data.val when `split` is empty; validated.
Dataset evaluation_dataset(const DataConfig& data, const std::string& split, int64_t num_classes);

// A label tensor [1, 1, H, W] as a label map (values clamped to [0, 255]).
Image label_map(const Tensor& label);

// Scores dataset entries [begin, end) (end < 0: to the end of the split).
ConfusionMatrix evaluate_split(const Dataset& dataset, const DataConfig& data, int64_t num_classes,
                               const MaskFunction& predict, int64_t begin = 0, int64_t end = -1,
                               const ScoredImageCallback& on_image = {});

}  // namespace fcn
