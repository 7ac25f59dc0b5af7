// Dilated 3x3 convolutions, and batches, through their phase grid (src/cpu/phase_grid.cpp):
// forward (overwrite, accumulate, bias, fused ReLU), backward-data and
// backward-weight against the double-precision definition, for dilations
// 2 and 4 and unequal ones, sides that are no multiple of the dilation (phase
// images of unequal sizes), with F(2x2) and F(4x4) tiles; conv_forward /
// conv_backward_* taking the grid where it pays, with the same numbers; and
// batches in one grid (undilated and dilated) against the definition per image.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "fcn/cpu/convolution.hpp"
#include "fcn/cpu/phase_grid.hpp"
#include "fcn/cpu/winograd.hpp"
#include "reference_conv.hpp"

using namespace fcn;
using namespace fcn::cpu;

namespace {

ConvGeometry dilated(int64_t c, int64_t k, int64_t h, int64_t w, int64_t dilation_h, int64_t dilation_w) {
  ConvGeometry g;
  g.channels = c;
  g.out_channels = k;
  g.height = g.out_h = h;
  g.width = g.out_w = w;
  g.kernel_h = g.kernel_w = 3;
  g.dilation_h = g.pad_h = dilation_h;
  g.dilation_w = g.pad_w = dilation_w;
  return g;
}

struct Case {
  int64_t c, k, h, w, dilation_h, dilation_w;
};

}  // namespace

TEST_CASE("the phase grid takes stride-1 3x3 convs whose pad equals their dilation", "[phase_grid]") {
  CHECK(phase_grid_applies(dilated(64, 64, 30, 30, 2, 2)));
  CHECK(phase_grid_applies(dilated(64, 64, 30, 30, 4, 1)));
  CHECK_FALSE(phase_grid_applies(dilated(64, 64, 30, 30, 1, 1)));  // Winograd's own
  ConvGeometry pad = dilated(64, 64, 30, 30, 2, 2);
  pad.pad_h = pad.pad_w = 1;
  pad.out_h = pad.out_w = 28;
  CHECK_FALSE(phase_grid_applies(pad));
  ConvGeometry strided = dilated(64, 64, 30, 30, 2, 2);
  strided.stride_h = strided.stride_w = 2;
  strided.out_h = strided.out_w = 15;
  CHECK_FALSE(phase_grid_applies(strided));
  ConvGeometry grouped = dilated(64, 64, 30, 30, 2, 2);
  grouped.groups = 2;
  CHECK_FALSE(phase_grid_applies(grouped));
  // grid: one separator between neighbouring phase images, an undilated pad-1 conv
  const ConvGeometry grid = phase_grid_geometry(dilated(64, 64, 63, 63, 4, 2));
  CHECK(grid.height == 66);
  CHECK(grid.width == 64);
  CHECK(grid.dilation_h == 1);
  CHECK(grid.pad_h == 1);
  CHECK(winograd_applies(grid));
  // fcn_resnet50's layer4 at 500x500 pays; a 10x10 map does not (4x4 tiles)
  CHECK(phase_grid_pays(dilated(512, 512, 63, 63, 4, 4), 2));
  CHECK(phase_grid_pays(dilated(512, 512, 63, 63, 4, 4), 4));
  CHECK_FALSE(phase_grid_pays(dilated(512, 512, 10, 10, 4, 4), 4));
  CHECK_FALSE(phase_grid_pays(dilated(32, 512, 63, 63, 4, 4), 2));  // too narrow for Winograd
}

TEST_CASE("the phase grid matches the dilated convolution's definition (forward, backward-data, backward-weight)",
          "[phase_grid]") {
  // sides that the dilation does not divide: phase images of two sizes
  const std::vector<Case> cases = {{64, 64, 21, 19, 2, 2}, {64, 80, 29, 35, 4, 4}, {72, 64, 17, 26, 3, 1},
                                   {64, 64, 13, 11, 2, 4}, {64, 64, 4, 5, 4, 4}};
  for (int tile : {2, 4}) {
    std::mt19937_64 rng(11);
    for (const Case& cs : cases) {
      const ConvGeometry g = dilated(cs.c, cs.k, cs.h, cs.w, cs.dilation_h, cs.dilation_w);
      INFO("F(" << tile << "x" << tile << "), C=" << cs.c << " K=" << cs.k << " " << cs.h << "x" << cs.w
                << " dilation " << cs.dilation_h << "x" << cs.dilation_w);
      const auto w = testing::random_normal(g.weight_numel(), rng, std::sqrt(2.f / (9 * cs.c)));
      const auto x = testing::random_normal(g.image_numel(), rng, 1.f);
      const auto dy = testing::random_normal(g.output_numel(), rng, 1.f);
      std::vector<float> bias(g.out_channels);
      for (int64_t k = 0; k < g.out_channels; ++k) bias[k] = 0.1f * static_cast<float>(k % 7) - 0.3f;
      const auto y_ref = testing::reference_conv_forward(g, w.data(), x.data(), bias.data());
      std::vector<double> dx_ref, dw_ref;
      testing::reference_conv_backward(g, w.data(), x.data(), dy.data(), dx_ref, dw_ref);

      std::vector<float> y(g.output_numel(), 123.f);
      phase_grid_forward(g, 1, w.data(), x.data(), 0.f, y.data(), bias.data(), false, tile);
      // Winograd's own bounds (test_winograd.cpp): a wrong phase or separator shows as O(1)
      CHECK(testing::max_relative_error(y, y_ref) < 2e-5);

      // beta 1 adds to what is there; the fused ReLU is max(., 0) of exactly those numbers
      std::vector<float> y2(g.output_numel(), 0.5f), y3(g.output_numel(), 0.5f);
      phase_grid_forward(g, 1, w.data(), x.data(), 1.f, y2.data(), bias.data(), false, tile);
      phase_grid_forward(g, 1, w.data(), x.data(), 1.f, y3.data(), bias.data(), true, tile);
      std::vector<double> y2_ref(y_ref);
      for (double& v : y2_ref) v += 0.5;
      CHECK(testing::max_relative_error(y2, y2_ref) < 2e-5);
      for (size_t i = 0; i < y3.size(); ++i) REQUIRE(y3[i] == std::max(y2[i], 0.f));

      // the backward passes accumulate into what is there
      std::vector<float> dx(g.image_numel(), 0.25f), dw(w.size(), -0.5f);
      phase_grid_backward_data(g, 1, w.data(), dy.data(), dx.data(), tile);
      phase_grid_backward_weight(g, 1, x.data(), dy.data(), dw.data(), tile);
      for (double& v : dx_ref) v += 0.25;
      for (double& v : dw_ref) v -= 0.5;
      CHECK(testing::max_relative_error(dx, dx_ref) < 2e-5);
      CHECK(testing::max_relative_error(dw, dw_ref) < 2e-5);
    }
  }
}

TEST_CASE("conv_forward and conv_backward take the phase grid where it pays, with the definition's numbers",
          "[phase_grid]") {
  // fcn_resnet50's layer4 conv2 at a 288x288 input (36x36, dilation 4), narrowed to 64 channels
  const ConvGeometry g = dilated(64, 64, 36, 36, 4, 4);
  REQUIRE(phase_grid_pays(g, winograd_forward_tile()));
  REQUIRE(phase_grid_pays(g, winograd_backward_tile()));
  std::mt19937_64 rng(5);
  const auto w = testing::random_normal(g.weight_numel(), rng, std::sqrt(2.f / (9 * 64)));
  const auto x = testing::random_normal(g.image_numel(), rng, 1.f);
  const auto dy = testing::random_normal(g.output_numel(), rng, 1.f);
  const auto y_ref = testing::reference_conv_forward(g, w.data(), x.data());
  std::vector<double> dx_ref, dw_ref;
  testing::reference_conv_backward(g, w.data(), x.data(), dy.data(), dx_ref, dw_ref);
  std::vector<float> y(g.output_numel()), on_grid(g.output_numel());
  conv_forward(g, w.data(), x.data(), 0.f, y.data());
  phase_grid_forward(g, 1, w.data(), x.data(), 0.f, on_grid.data(), nullptr, false);
  CHECK(y == on_grid);  // random windows: the equal-window pass changes nothing
  CHECK(testing::max_relative_error(y, y_ref) < 5e-6);
  std::vector<float> dx(g.image_numel(), 0.f), dw(w.size(), 0.f);
  conv_backward_data(g, w.data(), dy.data(), dx.data());
  conv_backward_weight(g, x.data(), dy.data(), dw.data());
  CHECK(testing::max_relative_error(dx, dx_ref) < 2e-5);
  CHECK(testing::max_relative_error(dw, dw_ref) < 2e-5);
}

TEST_CASE("a batch in one grid: each image's outputs and gradients as the definition gives them, the weight "
          "gradient summed over the batch", "[phase_grid]") {
  // ResNet's small maps (undilated, 20x20 and odd sides) and a dilated one; batch 3
  const std::vector<Case> cases = {{64, 64, 20, 20, 1, 1}, {64, 72, 11, 13, 1, 1}, {64, 64, 15, 18, 2, 2}};
  const int64_t batch = 3;
  for (int tile : {2, 4}) {
    std::mt19937_64 rng(21);
    for (const Case& cs : cases) {
      const ConvGeometry g = dilated(cs.c, cs.k, cs.h, cs.w, cs.dilation_h, cs.dilation_w);
      INFO("F(" << tile << "x" << tile << "), batch " << batch << ", C=" << cs.c << " K=" << cs.k << " " << cs.h
                << "x" << cs.w << " dilation " << cs.dilation_h);
      REQUIRE(phase_grid_applies(g, batch));
      const auto w = testing::random_normal(g.weight_numel(), rng, std::sqrt(2.f / (9 * cs.c)));
      const auto x = testing::random_normal(batch * g.image_numel(), rng, 1.f);
      const auto dy = testing::random_normal(batch * g.output_numel(), rng, 1.f);
      std::vector<float> bias(g.out_channels, 0.2f);
      std::vector<float> y(batch * g.output_numel(), 7.f), dx(batch * g.image_numel(), 0.5f), dw(w.size(), 0.f);
      phase_grid_forward(g, batch, w.data(), x.data(), 0.f, y.data(), bias.data(), true, tile);
      phase_grid_backward_data(g, batch, w.data(), dy.data(), dx.data(), tile);
      phase_grid_backward_weight(g, batch, x.data(), dy.data(), dw.data(), tile);
      std::vector<double> dw_ref(w.size(), 0.0);
      for (int64_t n = 0; n < batch; ++n) {
        INFO("image " << n);
        auto y_ref = testing::reference_conv_forward(g, w.data(), x.data() + n * g.image_numel(), bias.data());
        for (double& v : y_ref) v = std::max(v, 0.0);
        std::vector<double> dx_ref, dw_n;
        testing::reference_conv_backward(g, w.data(), x.data() + n * g.image_numel(), dy.data() + n * g.output_numel(),
                                         dx_ref, dw_n);
        for (double& v : dx_ref) v += 0.5;
        for (size_t i = 0; i < dw_ref.size(); ++i) dw_ref[i] += dw_n[i];
        const std::vector<float> y_n(y.begin() + n * g.output_numel(), y.begin() + (n + 1) * g.output_numel());
        const std::vector<float> dx_n(dx.begin() + n * g.image_numel(), dx.begin() + (n + 1) * g.image_numel());
        CHECK(testing::max_relative_error(y_n, y_ref) < 2e-5);
        CHECK(testing::max_relative_error(dx_n, dx_ref) < 2e-5);
      }
      CHECK(testing::max_relative_error(dw, dw_ref) < 2e-5);
    }
  }
}

TEST_CASE("conv_*_images run a batch of small maps as one grid, with the per-image passes' numbers", "[phase_grid]") {
  // ResNet-50's layer3 conv2 at a 320x320 input (20x20), narrowed to 64 channels, batch 4
  const ConvGeometry g = dilated(64, 64, 20, 20, 1, 1);
  const int64_t batch = 4;
  REQUIRE(batch_on_grid(g, batch, winograd_forward_tile()));
  REQUIRE_FALSE(batch_on_grid(g, 1, winograd_forward_tile()));
  REQUIRE_FALSE(batch_on_grid(dilated(64, 64, 200, 200, 1, 1), batch, 2));  // large maps: image by image
  std::mt19937_64 rng(13);
  const auto w = testing::random_normal(g.weight_numel(), rng, std::sqrt(2.f / (9 * 64)));
  const auto x = testing::random_normal(batch * g.image_numel(), rng, 1.f);
  const auto dy = testing::random_normal(batch * g.output_numel(), rng, 1.f);
  std::vector<float> y(batch * g.output_numel()), dx(batch * g.image_numel(), 0.f), dw(w.size(), 0.f);
  conv_forward_images(g, batch, w.data(), x.data(), y.data());
  conv_backward_data_images(g, batch, w.data(), dy.data(), dx.data());
  conv_backward_weight_images(g, batch, x.data(), dy.data(), dw.data());
  std::vector<float> y1(y.size()), dx1(dx.size(), 0.f), dw1(w.size(), 0.f);
  for (int64_t n = 0; n < batch; ++n) {
    conv_forward(g, w.data(), x.data() + n * g.image_numel(), 0.f, y1.data() + n * g.output_numel());
    conv_backward_data(g, w.data(), dy.data() + n * g.output_numel(), dx1.data() + n * g.image_numel());
    conv_backward_weight(g, x.data() + n * g.image_numel(), dy.data() + n * g.output_numel(), dw1.data());
  }
  const std::vector<double> y1d(y1.begin(), y1.end()), dx1d(dx1.begin(), dx1.end()), dw1d(dw1.begin(), dw1.end());
  CHECK(testing::max_relative_error(y, y1d) < 1e-5);
  CHECK(testing::max_relative_error(dx, dx1d) < 1e-5);
  CHECK(testing::max_relative_error(dw, dw1d) < 1e-5);
  CHECK(y != y1);  // a different path (the grid's Winograd), not the per-image one
}
