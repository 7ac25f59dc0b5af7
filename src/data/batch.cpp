#include "fcn/data/batch.hpp"

#include <algorithm>
#include <cstring>

#include "fcn/core/error.hpp"

namespace fcn {

namespace {

// Copies every plane of a [1, C, h, w] tensor into image n of the [N, C, H, W] `out`.
void copy_into(const Tensor& sample, Tensor& out, int64_t n) {
  const int64_t channels = sample.c(), h = sample.h(), w = sample.w();
  const int64_t height = out.h(), width = out.w();
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t y = 0; y < h; ++y)
      std::memcpy(out.data() + ((n * channels + c) * height + y) * width, sample.data() + (c * h + y) * w,
                  sizeof(float) * static_cast<size_t>(w));
}

void check_sample(const Sample& s) {
  if (s.image.ndim() != 4 || s.image.n() != 1 || s.image.c() != 3 || s.label.ndim() != 4 || s.label.n() != 1 ||
      s.label.c() != 1 || s.label.h() != s.image.h() || s.label.w() != s.image.w())
    throw Error("batch: sample \"" + s.id + "\" is not a [1, 3, H, W] image with a [1, 1, H, W] label");
}

}  // namespace

Batch stack_samples(const std::vector<Sample>& samples, float ignore_label) {
  if (samples.empty()) throw Error("batch: no samples");
  int64_t height = 0, width = 0;
  for (const Sample& s : samples) {
    check_sample(s);
    height = std::max(height, s.image.h());
    width = std::max(width, s.image.w());
  }
  const auto n = static_cast<int64_t>(samples.size());
  Batch batch;
  batch.image = Tensor({n, 3, height, width});  // zero: the mean pixel
  batch.label = Tensor({n, 1, height, width});
  batch.label.fill(ignore_label);
  for (int64_t i = 0; i < n; ++i) {
    copy_into(samples[i].image, batch.image, i);
    copy_into(samples[i].label, batch.label, i);
    batch.global_indices.push_back(samples[i].global_index);
  }
  return batch;
}

}  // namespace fcn
