#pragma once
// Batch normalisation kernels on NCHW blobs (PyTorch BatchNorm2d, after its
// CPU kernels): channel c of every image is normalised with one mean and one
// inverse standard deviation, y = (x - mean[c]) * invstd[c] * gamma[c] + beta[c],
// with scale = invstd * gamma per channel. Per-channel sums are accumulated
// in double.
#include <cstdint>

namespace fcn::cpu {

struct BatchNormGeometry {
  int64_t batch = 0;     // N
  int64_t channels = 0;  // C
  int64_t area = 0;      // H*W
  // M: how many values one channel's statistics pool (N*H*W)
  int64_t per_channel() const { return batch * area; }
};

// mean[c] = sum x / M and the biased var[c] = sum (x - mean[c])^2 / M over
// N, H, W, in one pass: sums of x - k and (x - k)^2 in double, k one of the
// channel's values (no cancellation to speak of when |mean| >> std).
void channel_moments(const BatchNormGeometry& g, const float* x, double* mean, double* var);

// y = (x - mean[c]) * scale[c] + beta[c], then max(y, 0) when rectify (a
// ReLU follows in place); y may alias x. (PyTorch's
// x * scale + (beta - mean * scale) loses the digits of a small y when
// |mean| >> std.)
void batch_norm_forward(const BatchNormGeometry& g, const float* x, const float* mean, const float* scale,
                        const float* beta, float* y, bool rectify = false);

// sum_dy[c] = sum dy and dot[c] = sum (x - mean[c]) * dy over N, H, W: the
// bias gradient, and the weight gradient times the standard deviation.
void channel_gradient_sums(const BatchNormGeometry& g, const float* x, const float* dy, const float* mean,
                           double* sum_dy, double* dot);

// The input gradient through batch statistics (PyTorch's
// batch_norm_backward in training):
//   dx += (dy - sum_dy[c]/M - (x - mean[c]) * dot[c] * invstd[c]^2 / M) * invstd[c] * gamma[c]
// with `scale` = invstd * gamma. The last two terms are the gradient through
// the batch mean and variance.
void batch_norm_backward_data(const BatchNormGeometry& g, const float* x, const float* dy, const float* mean,
                              const float* invstd, const float* scale, const double* sum_dy, const double* dot,
                              float* dx);

// dx += dy * scale[c]: the input gradient through fixed statistics.
void channel_scale_accumulate(const BatchNormGeometry& g, const float* dy, const float* scale, float* dx);

// Folds an inference batch norm into the convolution before it, in place:
// with s = gamma / sqrt(var + eps) per output channel o,
//   weight[o, ...] *= s[o],  bias[o] = (bias[o] - mean[o]) * s[o] + beta[o].
// `weight` holds `channels` blocks of `per_channel` values (conv's
// [out, in/groups, kh, kw]); `bias` must exist (zeros for a bias-free conv).
void fold_batch_norm(int64_t channels, int64_t per_channel, const float* gamma, const float* beta, const float* mean,
                     const float* var, double eps, float* weight, float* bias);

}  // namespace fcn::cpu
