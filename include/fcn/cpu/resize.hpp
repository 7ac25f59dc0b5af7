#pragma once
// Bilinear resize kernels on NCHW planes, PyTorch's upsample_bilinear2d
// (F.interpolate(mode="bilinear")) on the CPU, forward and its exact adjoint.
#include <cstdint>
#include <optional>
#include <vector>

namespace fcn::cpu {

// PyTorch's area_pixel_compute_scale: input pixels per output pixel step.
// align_corners: (in - 1) / (out - 1), 0 when out == 1. Otherwise 1 / scale
// when a scale factor was given (PyTorch keeps the given factor, not
// in / out, when recompute_scale_factor is unset), else in / out.
double resize_source_step(int64_t in, int64_t out, bool align_corners, std::optional<double> scale);

// One axis of a bilinear resize: output pixel o reads input pixels index0[o]
// and index1[o] with weights 1 - lambda[o] and lambda[o].
struct LinearAxis {
  std::vector<int64_t> index0, index1;
  std::vector<float> lambda;
  int64_t size_in = 0;
  int64_t size() const { return static_cast<int64_t>(lambda.size()); }
};

// PyTorch's compute_source_index_and_lambda: when out == in the axis is
// copied whatever the step (PyTorch does so even for a scale factor != 1);
// otherwise src = step * o (align_corners) or max(step * (o + 0.5) - 0.5, 0),
// index0 = floor(src), index1 = index0 + 1 clamped to the last pixel, lambda
// = src - index0.
LinearAxis linear_axis(int64_t in, int64_t out, double step, bool align_corners);

struct ResizeGeometry {
  int64_t planes = 0;  // N*C
  const LinearAxis* rows = nullptr;
  const LinearAxis* cols = nullptr;
};

// y[p, oh, ow] = sum over the 2x2 taps of x[p] weighted by rows x cols.
void bilinear_forward(const ResizeGeometry& g, const float* x, float* y);
// dx[p] += the transpose of the same map applied to dy[p] (scatter-add).
void bilinear_backward_accumulate(const ResizeGeometry& g, const float* dy, float* dx);

}  // namespace fcn::cpu
