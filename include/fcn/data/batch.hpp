#pragma once
// Stacking samples into one batch for a forward pass (solver.batch_size).
#include <vector>

#include "fcn/data/dataset.hpp"

namespace fcn {

struct Batch {
  Tensor image;  // [N, 3, H, W]
  Tensor label;  // [N, 1, H, W]
  std::vector<int64_t> global_indices;  // of each image, in order
};

// Stacks [1, 3, h, w] / [1, 1, h, w] samples into a batch of the largest H
// and W. A smaller sample is padded at the bottom and right: its image with
// 0 (the mean pixel under image_to_tensor's convention), its label with
// `ignore_label`, so that the padding adds nothing to a loss that ignores
// that label.
Batch stack_samples(const std::vector<Sample>& samples, float ignore_label);

}  // namespace fcn
