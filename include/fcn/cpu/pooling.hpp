#pragma once
// Max and average pooling kernels on NCHW planes (PyTorch max_pool2d and
// avg_pool2d semantics).
#include <cstdint>

namespace fcn::cpu {

struct PoolGeometry {
  int64_t planes = 0;  // N*C
  int64_t in_h = 0, in_w = 0;
  int64_t out_h = 0, out_w = 0;
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
};

// y[p, oy, ox] = max over the window of x[p]; argmax[p, oy, ox] = index of
// the winner within its input plane (iy*in_w + ix). Padding never wins; ties
// go to the first maximum in row-major window order; a NaN wins (as PyTorch).
// Every window must overlap the input (pool_output_size guarantees it).
void max_pool_forward(const PoolGeometry& g, const float* x, float* y, int32_t* argmax);

// dx[p, argmax[p, o]] += dy[p, o]
// Without `accumulate`, dx = that (its old values are not read): each plane
// is zeroed just before its scatter, while it is cached. With `kept` (a
// rectifier's bits over dx, bit 0 at dx[0]), each winner adds
// kept_gradient of its share (elementwise.hpp): one whose input was not
// positive adds 0 * dy. dx's old values are not masked (unlike
// conv_backward_data_images'), so the result is kept_gradient of the whole
// only over zeros or without `accumulate`, which is how the graph calls it
// for a folded ReLU (the gradient buffers it has not zeroed are written fresh).
void max_pool_backward(const PoolGeometry& g, const float* dy, const int32_t* argmax, float* dx,
                       bool accumulate = true, const uint16_t* kept = nullptr);

// y[p, oy, ox] = (sum of x[p] over the window clipped to the input) / divisor.
// The divisor, as PyTorch's avg_pool2d: with count_include_pad, the window
// clipped to the padded input, (min(y0 + kh, in_h + pad_h) - y0) * (the same
// for w) with y0 = oy*stride_h - pad_h (Caffe's AVE pool_size); without, the
// number of input pixels it covers. Every window must overlap the input
// (pool_output_size guarantees it).
void avg_pool_forward(const PoolGeometry& g, bool count_include_pad, const float* x, float* y);

// That divisor of output (oy, ox).
double avg_pool_divisor(const PoolGeometry& g, bool count_include_pad, int64_t oy, int64_t ox);

// dx[p, window of o] += dy[p, o] / divisor(o)
void avg_pool_backward(const PoolGeometry& g, bool count_include_pad, const float* dy, float* dx);

}  // namespace fcn::cpu
