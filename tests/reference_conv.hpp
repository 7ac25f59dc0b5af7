#pragma once
// The convolution written out from its definition, in double precision: the
// one reference that the conv, winograd and explain tests compare against.
// One image (batch 1): for a batch, call it per image.
//   y[o, oh, ow] = b[o] + sum_{c in group(o), ki, kj} w[o, c', ki, kj] * x[c, oh*sh - ph + ki*dh, ow*sw - pw + kj*dw]
// (x is 0 in the padding; c' = c's index within its group).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include "fcn/cpu/convolution.hpp"

namespace fcn::testing {

// Calls visit(output index, weight index, input index) for every term of
// the sum above that lies inside the image.
template <typename Visit>
void for_each_conv_term(const cpu::ConvGeometry& g, Visit visit) {
  const int64_t in_per_group = g.channels / g.groups, out_per_group = g.out_channels / g.groups;
  for (int64_t o = 0; o < g.out_channels; ++o)
    for (int64_t oh = 0; oh < g.out_h; ++oh)
      for (int64_t ow = 0; ow < g.out_w; ++ow)
        for (int64_t ci = 0; ci < in_per_group; ++ci) {
          const int64_t c = o / out_per_group * in_per_group + ci;
          for (int64_t ki = 0; ki < g.kernel_h; ++ki)
            for (int64_t kj = 0; kj < g.kernel_w; ++kj) {
              const int64_t ih = oh * g.stride_h - g.pad_h + ki * g.dilation_h;
              const int64_t iw = ow * g.stride_w - g.pad_w + kj * g.dilation_w;
              if (ih < 0 || ih >= g.height || iw < 0 || iw >= g.width) continue;
              visit((o * g.out_h + oh) * g.out_w + ow, ((o * in_per_group + ci) * g.kernel_h + ki) * g.kernel_w + kj,
                    (c * g.height + ih) * g.width + iw);
            }
        }
}

// y = conv(x, w) + b (bias may be null).
inline std::vector<double> reference_conv_forward(const cpu::ConvGeometry& g, const float* weight, const float* image,
                                                  const float* bias = nullptr) {
  std::vector<double> output(static_cast<size_t>(g.output_numel()), 0.0);
  if (bias)
    for (int64_t o = 0; o < g.out_channels; ++o)
      for (int64_t i = 0; i < g.out_area(); ++i) output[o * g.out_area() + i] = bias[o];
  for_each_conv_term(g, [&](int64_t y, int64_t w, int64_t x) { output[y] += static_cast<double>(weight[w]) * image[x]; });
  return output;
}

// The gradients of <y, dy>: dx = sum dy * w, dw = sum dy * x.
inline void reference_conv_backward(const cpu::ConvGeometry& g, const float* weight, const float* image,
                                    const float* output_grad, std::vector<double>& image_grad,
                                    std::vector<double>& weight_grad) {
  image_grad.assign(static_cast<size_t>(g.image_numel()), 0.0);
  weight_grad.assign(static_cast<size_t>(g.out_channels * (g.channels / g.groups) * g.kernel_h * g.kernel_w), 0.0);
  for_each_conv_term(g, [&](int64_t y, int64_t w, int64_t x) {
    image_grad[x] += static_cast<double>(output_grad[y]) * weight[w];
    weight_grad[w] += static_cast<double>(output_grad[y]) * image[x];
  });
}

// n values drawn from N(0, scale^2).
inline std::vector<float> random_normal(size_t n, std::mt19937_64& rng, float scale = 1.f) {
  std::normal_distribution<float> normal(0.f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

// max |actual - expected| / max |expected| (every actual value finite).
inline double max_relative_error(const std::vector<float>& actual, const std::vector<double>& expected) {
  REQUIRE(actual.size() == expected.size());
  double err = 0, scale = 0;
  for (size_t i = 0; i < actual.size(); ++i) {
    REQUIRE(std::isfinite(actual[i]));
    err = std::max(err, std::fabs(actual[i] - expected[i]));
    scale = std::max(scale, std::fabs(expected[i]));
  }
  return err / std::max(scale, 1e-30);
}

}  // namespace fcn::testing
