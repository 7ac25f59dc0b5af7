// Constant frames (fcn/core/constant_frame.hpp): the geometry against
// per-channel-constant windows found by comparing values, and the conv
// forward with a frame against the same conv without one, on the im2col
// and Winograd paths.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "fcn/cpu/convolution.hpp"
#include "fcn/cpu/winograd.hpp"
#include "equal_windows.hpp"
#include "gradcheck.hpp"

using fcn::ConstantFrame;
using fcn::Tensor;
using fcn::WindowAxis;
using fcn::cpu::ConvGeometry;
using fcn::testing::random_tensor;

namespace {

ConvGeometry conv_geometry(int64_t channels, int64_t height, int64_t width, int64_t out_channels, int64_t kernel,
                           int64_t stride, int64_t pad) {
  ConvGeometry g;
  g.channels = channels, g.height = height, g.width = width, g.out_channels = out_channels;
  g.kernel_h = g.kernel_w = kernel, g.stride_h = g.stride_w = stride, g.pad_h = g.pad_w = pad;
  g.out_h = (height + 2 * pad - kernel) / stride + 1;
  g.out_w = (width + 2 * pad - kernel) / stride + 1;
  return g;
}

// A blob of one image: [channels, height, width].
struct Blob {
  int64_t channels, height, width;
  std::vector<float> data;
  float at(int64_t c, int64_t y, int64_t x) const { return data[(c * height + y) * width + x]; }
};

// Which outputs have a window whose taps hold one value per channel (taps
// outside the image read `outside`: 0 for a conv's padding, NaN for
// pooling's, which equals nothing), by comparing the values.
std::vector<bool> constant_windows(const Blob& in, int64_t kernel, int64_t stride, int64_t pad, int64_t out_h,
                                   int64_t out_w, float outside) {
  std::vector<bool> constant(out_h * out_w, true);
  for (int64_t oh = 0; oh < out_h; ++oh)
    for (int64_t ow = 0; ow < out_w; ++ow)
      for (int64_t c = 0; c < in.channels && constant[oh * out_w + ow]; ++c) {
        auto tap = [&](int64_t ki, int64_t kj) {
          const int64_t y = oh * stride - pad + ki, x = ow * stride - pad + kj;
          return y >= 0 && y < in.height && x >= 0 && x < in.width ? in.at(c, y, x) : outside;
        };
        const float first = tap(0, 0);
        for (int64_t ki = 0; ki < kernel; ++ki)
          for (int64_t kj = 0; kj < kernel; ++kj)
            if (!(tap(ki, kj) == first)) constant[oh * out_w + ow] = false;
      }
  return constant;
}

// '#' where set, one line per row: a readable failure message.
std::string drawn(const std::vector<bool>& pixels, int64_t width) {
  std::string out;
  for (size_t i = 0; i < pixels.size(); ++i) out += std::string(pixels[i] ? "#" : ".") + ((i + 1) % width ? "" : "\n");
  return out;
}

std::vector<bool> frame_pixels(const ConstantFrame& frame, int64_t height, int64_t width) {
  std::vector<bool> in(height * width);
  for (int64_t y = 0; y < height; ++y)
    for (int64_t x = 0; x < width; ++x) in[y * width + x] = frame.contains(y, x);
  return in;
}

// The weight gradient with the frame against the same without one
// (pre-filled, so that both must add to it).
void check_weight_grad(const ConvGeometry& g, const Blob& in, const ConstantFrame& in_frame, std::mt19937_64& rng) {
  const Tensor output_grad = random_tensor({g.out_channels, g.out_h, g.out_w}, rng);
  const Tensor prefill = random_tensor({g.out_channels, g.channels, g.kernel_h, g.kernel_w}, rng);
  Tensor with(prefill), without(prefill);
  fcn::cpu::conv_backward_weight(g, in.data.data(), output_grad.data(), with.data(), &in_frame);
  fcn::cpu::conv_backward_weight(g, in.data.data(), output_grad.data(), without.data());
  double diff = 0, norm = 0;
  for (int64_t i = 0; i < with.numel(); ++i) {
    diff += (double(with[i]) - without[i]) * (double(with[i]) - without[i]);
    norm += (double(without[i]) - prefill[i]) * (double(without[i]) - prefill[i]);
  }
  CHECK(std::sqrt(diff / norm) < 1e-5);
}

// conv + bias + ReLU with the frame, checked against the same without a
// frame (rounding) and its frame outputs against each other (bit for bit).
Blob conv_relu(const Blob& in, const ConstantFrame& in_frame, int64_t out_channels, int64_t kernel, int64_t stride,
               int64_t pad, std::mt19937_64& rng, ConstantFrame& out_frame) {
  const ConvGeometry g = conv_geometry(in.channels, in.height, in.width, out_channels, kernel, stride, pad);
  const double scale = std::sqrt(2.0 / (in.channels * kernel * kernel));
  const Tensor weight = random_tensor({out_channels, in.channels, kernel, kernel}, rng, -scale, scale);
  const Tensor bias = random_tensor({out_channels}, rng, 0.5f, 1.5f);  // few ReLUs dead everywhere
  Blob out{out_channels, g.out_h, g.out_w, std::vector<float>(g.output_numel())};
  std::vector<float> plain(g.output_numel());
  fcn::cpu::conv_forward(g, weight.data(), in.data.data(), 0.f, out.data.data(), bias.data(), true, &in_frame);
  fcn::cpu::conv_forward(g, weight.data(), in.data.data(), 0.f, plain.data(), bias.data(), true);
  out_frame = fcn::cpu::conv_output_frame(g, in_frame);
  const auto [fy, fx] = out_frame.first_pixel();
  for (int64_t o = 0; o < out_channels; ++o)
    for (int64_t y = 0; y < g.out_h; ++y)
      for (int64_t x = 0; x < g.out_w; ++x) {
        const float got = out.at(o, y, x), want = plain[(o * g.out_h + y) * g.out_w + x];
        REQUIRE(std::abs(got - want) <= 1e-5f * (1.f + std::abs(want)));
        if (out_frame.contains(y, x)) REQUIRE(std::memcmp(&got, &out.data[(o * g.out_h + fy) * g.out_w + fx], 4) == 0);
      }
  check_weight_grad(g, in, in_frame, rng);
  return out;
}

// Max pooling without padding, kernel = stride, floor mode.
Blob max_pool(const Blob& in, int64_t k) {
  Blob out{in.channels, in.height / k, in.width / k, {}};
  out.data.resize(out.channels * out.height * out.width);
  for (int64_t c = 0; c < in.channels; ++c)
    for (int64_t y = 0; y < out.height; ++y)
      for (int64_t x = 0; x < out.width; ++x) {
        float best = in.at(c, y * k, x * k);
        for (int64_t i = 0; i < k; ++i)
          for (int64_t j = 0; j < k; ++j) best = std::max(best, in.at(c, y * k + i, x * k + j));
        out.data[(c * out.height + y) * out.width + x] = best;
      }
  return out;
}

}  // namespace

TEST_CASE("constant frames follow a padded conv chain where windows are constant", "[constant_frame]") {
  std::mt19937_64 rng(3);
  Blob x{3, 14, 11, {}};
  const Tensor image = random_tensor({3, 14, 11}, rng, -2.f, 2.f);
  bool after_pool = false;
  x.data.assign(image.data(), image.data() + image.numel());
  ConstantFrame frame;  // the image has none
  struct Step {
    int64_t out_channels, kernel, stride, pad;  // pool: out_channels 0, kernel = stride
  };
  // max pooling last: downstream of it the max of a frame value and a
  // smaller neighbour is the frame value again, a constant window by value
  // that the geometry cannot know (so there the frame is checked to lie
  // within the constant windows only)
  const std::vector<Step> chain = {{4, 3, 1, 40}, {5, 3, 1, 1}, {6, 3, 2, 1}, {4, 3, 1, 0},
                                   {5, 3, 1, 0},  {4, 3, 1, 2}, {0, 2, 2, 0}, {5, 3, 1, 1}};
  for (size_t i = 0; i < chain.size(); ++i) {
    INFO("step " << i);
    const Step& s = chain[i];
    Blob next;
    ConstantFrame next_frame;
    if (s.out_channels == 0) {
      next = max_pool(x, s.kernel);
      next_frame = fcn::windows_inside(frame, WindowAxis{s.kernel, s.stride, 0, next.height},
                                       WindowAxis{s.kernel, s.stride, 0, next.width});
    } else {
      next = conv_relu(x, frame, s.out_channels, s.kernel, s.stride, s.pad, rng, next_frame);
    }
    const float outside = s.out_channels == 0 ? NAN : 0.f;
    const std::vector<bool> brute = constant_windows(x, s.kernel, s.stride, s.pad, next.height, next.width, outside);
    const std::vector<bool> predicted = frame_pixels(next_frame, next.height, next.width);
    if (!after_pool) CHECK(next_frame.count() > 0);
    if (after_pool) {
      for (size_t p = 0; p < predicted.size(); ++p) CHECK((!predicted[p] || brute[p]));
    } else {
      CHECK(drawn(predicted, next.width) == drawn(brute, next.width));
    }
    after_pool = after_pool || s.out_channels == 0;
    x = std::move(next);
    frame = next_frame;
  }
}

TEST_CASE("conv forward with a frame at a realistic size, both paths", "[constant_frame]") {
  std::mt19937_64 rng(5);
  // 64 channels at 100x130 take the Winograd path, 8 channels im2col + GEMM
  for (int64_t channels : {8, 64}) {
    INFO("channels " << channels);
    Blob x{channels, 100, 130, {}};
    const Tensor values = random_tensor({channels, 100, 130}, rng);
    x.data.assign(values.data(), values.data() + values.numel());
    const ConstantFrame frame{{0, 3, 97, 130}, {20, 25, 70, 111}};
    const Tensor v = random_tensor({channels}, rng);
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t y = 0; y < x.height; ++y)
        for (int64_t w = 0; w < x.width; ++w)
          if (frame.contains(y, w)) x.data[(c * x.height + y) * x.width + w] = v[c];
    const ConvGeometry g = conv_geometry(channels, 100, 130, 64, 3, 1, 1);
    CHECK(fcn::cpu::winograd_pays(g, fcn::cpu::winograd_forward_tile()) == (channels == 64));
    ConstantFrame out_frame;
    conv_relu(x, frame, 64, 3, 1, 1, rng, out_frame);
    CHECK(out_frame == ConstantFrame{{1, 4, 96, 129}, {19, 24, 71, 112}});
  }
}

TEST_CASE("conv forward with a frame: equal windows give bit-equal outputs, at the frame's edges and in flat regions",
          "[constant_frame]") {
  // The equal-window pass decides pairs of frame and padding elements from
  // the frame's values without reading them; the image around holds what it
  // must still read: columns just inside the hole that equal the frame's
  // values (as a pooled frame's edge does), a flat patch, random pixels.
  struct Row {
    const char* what;
    int64_t channels, stride;
    bool zero_frame;  // a frame of zeros equals the padding
  };
  const std::vector<Row> rows = {{"im2col", 8, 1, false},
                                 {"im2col, a frame of zeros", 8, 1, true},
                                 {"Winograd", 64, 1, false},
                                 {"Winograd, a frame of zeros", 64, 1, true},
                                 {"stride 2", 8, 2, false}};
  std::mt19937_64 rng(11);
  for (const Row& r : rows) {
    INFO(r.what);
    const int64_t h = 60, w = 90;
    const ConstantFrame frame{{0, 0, h, w}, {12, 15, 48, 75}};
    const Tensor frame_values = random_tensor({r.channels}, rng);
    const Tensor pixels = random_tensor({r.channels, h, w}, rng);
    std::vector<float> x(pixels.data(), pixels.data() + pixels.numel());
    for (int64_t c = 0; c < r.channels; ++c)
      for (int64_t y = 0; y < h; ++y)
        for (int64_t col = 0; col < w; ++col) {
          const float v = r.zero_frame ? 0.f : frame_values[c];
          float& at = x[(c * h + y) * w + col];
          if (frame.contains(y, col) || col == 15 || col == 74 || y == 12) at = v;
          if (y >= 20 && y < 30 && col >= 20 && col < 40) at = 0.5f * static_cast<float>(c + 1);
        }
    const ConvGeometry g = conv_geometry(r.channels, h, w, 16, 3, r.stride, 1);
    const Tensor weight = random_tensor({16, r.channels, 3, 3}, rng, -0.2f, 0.2f);
    const Tensor bias = random_tensor({16}, rng);
    std::vector<float> y(g.output_numel());
    fcn::cpu::conv_forward(g, weight.data(), x.data(), 0.f, y.data(), bias.data(), true, &frame);
    REQUIRE_FALSE(fcn::cpu::conv_output_frame(g, frame).empty());
    std::vector<float> plain(g.output_numel());
    fcn::cpu::conv_forward(g, weight.data(), x.data(), 0.f, plain.data(), bias.data(), true);
    for (size_t i = 0; i < y.size(); ++i) REQUIRE(std::abs(y[i] - plain[i]) <= 1e-5f * (1.f + std::abs(plain[i])));
    const fcn::testing::EqualWindows result = fcn::testing::equal_window_outputs(g, x, y);
    INFO(result.shared << " outputs share their neighbour's window; first unequal: " << result.first);
    CHECK(result.shared > 0);
    CHECK(result.unequal == 0);
  }
}
