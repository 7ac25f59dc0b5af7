// Winograd F(2x2, 3x3) and F(4x4, 3x3) convolution (src/cpu/winograd.cpp)
// against a double-precision nested-loop reference, next to the im2col +
// GEMM path: forward (overwrite and accumulate), backward-data and
// backward-weight, odd sizes, partial edge tiles, pad 0, 1 and 2, channels
// that are not a multiple of anything; F(2x2, 3x3)'s exact equal outputs
// for constant windows; the tile an inference's forward takes.
#include <catch2/catch.hpp>

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <random>
#include <thread>
#include <vector>

#include "fcn/cpu/gemm.hpp"
#include "fcn/cpu/convolution.hpp"
#include "fcn/cpu/winograd.hpp"
#include "reference_conv.hpp"

using namespace fcn;
using namespace fcn::cpu;

namespace {

ConvGeometry geometry(int64_t c, int64_t k, int64_t h, int64_t w, int64_t pad) {
  ConvGeometry g;
  g.channels = c;
  g.height = h;
  g.width = w;
  g.out_channels = k;
  g.kernel_h = g.kernel_w = 3;
  g.pad_h = g.pad_w = pad;
  g.out_h = h + 2 * pad - 2;
  g.out_w = w + 2 * pad - 2;
  return g;
}

// The im2col + GEMM forward, for comparison.
std::vector<float> im2col_forward(const ConvGeometry& g, const std::vector<float>& w, const std::vector<float>& x) {
  std::vector<float> col(g.column_rows() * g.out_area()), y(g.output_numel());
  im2col(g, x.data(), col.data());
  gemm(false, false, g.out_channels, g.out_area(), g.column_rows(), 1.f, w.data(), col.data(), 0.f, y.data());
  return y;
}

struct Case {
  int64_t c, k, h, w, pad;
};

}  // namespace

TEST_CASE("winograd applies to 3x3 stride-1 convs with enough channels only", "[winograd]") {
  CHECK(winograd_applies(geometry(64, 64, 9, 9, 1)));
  CHECK(winograd_applies(geometry(64, 512, 9, 9, 0)));
  CHECK_FALSE(winograd_applies(geometry(3, 64, 9, 9, 1)));  // conv1_1
  CHECK_FALSE(winograd_applies(geometry(64, 32, 9, 9, 1)));
  CHECK_FALSE(winograd_applies(geometry(16, 16, 9, 9, 1)));
  CHECK_FALSE(winograd_applies(geometry(64, 64, 9, 9, 3)));  // backward-data would need a negative pad
  ConvGeometry strided = geometry(64, 64, 9, 9, 1);
  strided.stride_h = 2;
  CHECK_FALSE(winograd_applies(strided));
  ConvGeometry dilated = geometry(64, 64, 9, 9, 1);
  dilated.dilation_w = 2;
  CHECK_FALSE(winograd_applies(dilated));
  ConvGeometry grouped = geometry(64, 64, 9, 9, 1);
  grouped.groups = 2;
  CHECK_FALSE(winograd_applies(grouped));
}

TEST_CASE("winograd matches a double-precision reference (forward, backward-data, backward-weight)", "[winograd]") {
  // odd sizes and partial edge tiles, 1-tile images, more tiles than a block
  const std::vector<Case> cases = {{16, 16, 5, 5, 1},  {17, 19, 7, 9, 1},   {16, 21, 13, 10, 0}, {24, 16, 6, 11, 2},
                                   {16, 16, 3, 3, 1},  {19, 16, 1, 1, 1},   {32, 48, 23, 17, 1}, {64, 16, 45, 38, 1},
                                   {16, 64, 44, 44, 1}};
  for (int tile : {2, 4}) {
    std::mt19937_64 rng(7);
    for (const Case& cs : cases) {
      const ConvGeometry g = geometry(cs.c, cs.k, cs.h, cs.w, cs.pad);
      INFO("F(" << tile << "x" << tile << ", 3x3), C=" << cs.c << " K=" << cs.k << " " << cs.h << "x" << cs.w
                << " pad " << cs.pad);
      // msra-scaled weights and unit-scale activations, as in a trained VGG
      const auto w = testing::random_normal(g.out_channels * g.channels * 9, rng, std::sqrt(2.f / (9 * cs.c)));
      const auto x = testing::random_normal(g.image_numel(), rng, 1.f);
      const auto dy = testing::random_normal(g.output_numel(), rng, 1.f);
      const auto y_ref = testing::reference_conv_forward(g, w.data(), x.data());
      std::vector<double> dx_ref, dw_ref;
      testing::reference_conv_backward(g, w.data(), x.data(), dy.data(), dx_ref, dw_ref);

      std::vector<float> y(g.output_numel(), 123.f);
      winograd_forward(g, w.data(), x.data(), 0.f, y.data(), nullptr, false, tile);
      const double forward_error = testing::max_relative_error(y, y_ref);
      const double im2col_error = testing::max_relative_error(im2col_forward(g, w, x), y_ref);
      INFO("forward error " << forward_error << " (im2col " << im2col_error << ")");
      // measured up to 8e-6 for F(4x4, 3x3), 1.5e-6 for F(2x2, 3x3), 6e-7
      // for im2col + GEMM: a bug shows as O(1)
      CHECK(forward_error < (tile == 2 ? 5e-6 : 2e-5));

      // beta = 1 accumulates, with a bias per output channel
      std::vector<float> y2(g.output_numel(), 0.5f), bias(g.out_channels);
      for (int64_t k = 0; k < g.out_channels; ++k) bias[k] = 0.1f * static_cast<float>(k % 7) - 0.3f;
      winograd_forward(g, w.data(), x.data(), 1.f, y2.data(), bias.data(), false, tile);
      std::vector<double> y2_ref(y_ref);
      for (size_t i = 0; i < y2_ref.size(); ++i) y2_ref[i] += 0.5 + bias[i / g.out_area()];
      CHECK(testing::max_relative_error(y2, y2_ref) < 2e-5);

      // rectify: the fused ReLU is max(., 0) of exactly the unfused numbers
      std::vector<float> y3(g.output_numel(), 0.5f);
      winograd_forward(g, w.data(), x.data(), 1.f, y3.data(), bias.data(), true, tile);
      for (size_t i = 0; i < y3.size(); ++i) REQUIRE(y3[i] == std::max(y2[i], 0.f));

      // the backward passes accumulate into what is there
      std::vector<float> dx(g.image_numel(), 0.25f), dw(w.size(), -0.5f);
      winograd_backward_data(g, w.data(), dy.data(), dx.data(), tile);
      winograd_backward_weight(g, x.data(), dy.data(), dw.data(), tile);
      for (double& v : dx_ref) v += 0.25;
      for (double& v : dw_ref) v -= 0.5;
      const double dx_error = testing::max_relative_error(dx, dx_ref), dw_error = testing::max_relative_error(dw, dw_ref);
      INFO("backward-data error " << dx_error << ", backward-weight error " << dw_error);
      CHECK(dx_error < 2e-5);
      CHECK(dw_error < 2e-5);
    }
  }
}

TEST_CASE("the weight gradient is the same number in every run, however the threads share its blocks",
          "[winograd]") {
  // 96x96 with F(4x4): 576 tiles, 9 blocks of 64 over 2 threads, which take
  // them first come first served while a third thread competes for the
  // cores (so the two run at uneven speeds); each partial must still add its
  // blocks in the same order
  const ConvGeometry g = geometry(16, 16, 96, 96, 1);
  std::mt19937_64 rng(11);
  const auto w = testing::random_normal(g.out_channels * g.channels * 9, rng, 0.1f);
  const auto x = testing::random_normal(g.image_numel(), rng, 1.f);
  const auto dy = testing::random_normal(g.output_numel(), rng, 1.f);
  const int saved_threads = omp_get_max_threads();
  omp_set_num_threads(2);
  auto weight_grad = [&] {
    std::vector<float> dw(w.size(), 0.f);
    winograd_backward_weight(g, x.data(), dy.data(), dw.data(), 4);
    return dw;
  };
  const std::vector<float> first = weight_grad();
  std::atomic<bool> stop{false};
  std::thread rival([&] {
    volatile double sink = 0;
    while (!stop.load(std::memory_order_relaxed)) sink = sink + 1.0;
  });
  int differing_runs = 0;
  for (int run = 0; run < 40; ++run) differing_runs += weight_grad() != first;
  stop = true;
  rival.join();
  omp_set_num_threads(saved_threads);
  CHECK(differing_runs == 0);
}

namespace {

// FCN's padded borders: a constant image (per channel) with a random patch
// at rows [20, 33), columns [27, 31).
std::vector<float> constant_with_patch(const ConvGeometry& g, std::mt19937_64& rng) {
  auto x = testing::random_normal(g.image_numel(), rng, 1.f);
  for (int64_t c = 0; c < g.channels; ++c)
    for (int64_t i = 0; i < g.height; ++i)
      for (int64_t j = 0; j < g.width; ++j)
        if (i < 20 || i >= 33 || j < 27 || j >= 31) x[(c * g.height + i) * g.width + j] = 0.37f * (c + 1);
  return x;
}

// Whether output (oy, ox) of a pad-1 conv of constant_with_patch has a
// constant 3x3 window: off the border, missing the patch.
bool constant_window(const ConvGeometry& g, int64_t oy, int64_t ox) {
  const bool inside = oy >= 1 && oy + 1 < g.out_h && ox >= 1 && ox + 1 < g.out_w;
  return inside && (oy + 1 < 20 || oy - 1 >= 33 || ox + 1 < 27 || ox - 1 >= 31);
}

}  // namespace

TEST_CASE("F(2x2, 3x3) gives the outputs of a tile with constant windows exactly equal numbers", "[winograd]") {
  // Every output of an F(2x2, 3x3) tile reads only the transformed rows and
  // columns of its own window: outputs with constant windows in one tile
  // are equal whatever surrounds them (F(4x4, 3x3) does not do this). Across
  // tiles it is the GEMMs' rounding: see the conv_forward case below.
  const ConvGeometry g = geometry(32, 24, 61, 70, 1);
  std::mt19937_64 rng(9);
  const auto w = testing::random_normal(g.out_channels * g.channels * 9, rng, 0.1f);
  const auto x = constant_with_patch(g, rng);
  std::vector<float> y(g.output_numel());
  winograd_forward(g, w.data(), x.data(), 0.f, y.data(), nullptr, false, 2);
  for (int64_t k = 0; k < g.out_channels; ++k) {
    const float* plane = y.data() + k * g.out_area();
    for (int64_t ty = 0; ty < g.out_h; ty += 2)
      for (int64_t tx = 0; tx < g.out_w; tx += 2) {
        const float* first = nullptr;
        for (int64_t oy = ty; oy < std::min(ty + 2, g.out_h); ++oy)
          for (int64_t ox = tx; ox < std::min(tx + 2, g.out_w); ++ox) {
            if (!constant_window(g, oy, ox)) continue;
            if (!first) first = &plane[oy * g.out_w + ox];
            INFO("channel " << k << ", output " << oy << ", " << ox);
            REQUIRE(plane[oy * g.out_w + ox] == *first);
          }
      }
  }
}

TEST_CASE("conv_forward on the Winograd path gives exactly equal outputs for constant windows, wherever they lie",
          "[winograd]") {
  // Every output whose 3x3 window misses the patch must be the same number,
  // or max-pooling ties break differently from PyTorch. OpenBLAS rounds a
  // tile's column of the per-tile GEMMs by its place in the block, so it
  // takes conv_forward's equal-window pass (convolution.hpp).
  const ConvGeometry g = geometry(64, 64, 61, 70, 1);
  REQUIRE((winograd_applies(g) || winograd_forward_tile() == 0));
  std::mt19937_64 rng(9);
  const auto w = testing::random_normal(g.out_channels * g.channels * 9, rng, 0.1f);
  const auto bias = testing::random_normal(g.out_channels, rng, 0.1f);
  const auto x = constant_with_patch(g, rng);
  std::vector<float> y(g.output_numel());
  conv_forward(g, w.data(), x.data(), 0.f, y.data(), bias.data());
  for (int64_t k = 0; k < g.out_channels; ++k) {
    const float* plane = y.data() + k * g.out_area();
    const float interior = plane[5 * g.out_w + 5];  // a window well inside the constant part
    for (int64_t oy = 0; oy < g.out_h; ++oy)
      for (int64_t ox = 0; ox < g.out_w; ++ox) {
        INFO("channel " << k << ", output " << oy << ", " << ox);
        if (constant_window(g, oy, ox)) REQUIRE(plane[oy * g.out_w + ox] == interior);
      }
  }
}

TEST_CASE("an inference forward takes F(4x4, 3x3) where it pays and F(2x2, 3x3) where only that one does",
          "[winograd]") {
  if (winograd_forward_tile() != 2) return;  // FCN_WINOGRAD forces one tile for every pass
  ConvGeometry g = geometry(64, 64, 61, 70, 1);  // 16 x 18 F(4x4) tiles
  ConvGeometry small = geometry(64, 64, 24, 24, 1);  // 6 x 6 F(4x4) tiles: too few; 12 x 12 F(2x2) tiles
  REQUIRE(forward_tile(g) == 2);  // a training forward: a backward will route gradients by its decisions
  g.inference = small.inference = true;
  CHECK(forward_tile(g) == 4);
  CHECK(forward_tile(small) == 2);
  std::mt19937_64 rng(11);
  for (const ConvGeometry& shape : {g, small}) {
    INFO(shape.height << "x" << shape.width);
    const auto w = testing::random_normal(shape.out_channels * shape.channels * 9, rng, std::sqrt(2.f / (9 * 64)));
    const auto x = testing::random_normal(shape.image_numel(), rng, 1.f);
    const auto bias = testing::random_normal(shape.out_channels, rng, 0.1f);
    std::vector<float> y(shape.output_numel()), y_tile(shape.output_numel());
    conv_forward(shape, w.data(), x.data(), 0.f, y.data(), bias.data());
    // the same numbers as the Winograd pass of that tile: it is the path taken
    winograd_forward(shape, w.data(), x.data(), 0.f, y_tile.data(), bias.data(), false, forward_tile(shape));
    CHECK(y == y_tile);
    auto y_ref = testing::reference_conv_forward(shape, w.data(), x.data());
    for (size_t i = 0; i < y_ref.size(); ++i) y_ref[i] += bias[i / shape.out_area()];
    CHECK(testing::max_relative_error(y, y_ref) < 2e-5);
  }
}
