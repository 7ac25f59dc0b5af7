// im2col/col2im against the definition and against each other (adjointness).
#include <catch2/catch.hpp>

#include <random>

#include "fcn/cpu/convolution.hpp"
#include "gradcheck.hpp"

using fcn::Tensor;
using fcn::cpu::ConvGeometry;
using fcn::testing::random_tensor;

namespace {

// {channels, height, width, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w}
ConvGeometry make_geometry(const std::vector<int64_t>& v) {
  ConvGeometry g;
  g.channels = v[0], g.height = v[1], g.width = v[2];
  g.kernel_h = v[3], g.kernel_w = v[4], g.stride_h = v[5], g.stride_w = v[6];
  g.pad_h = v[7], g.pad_w = v[8], g.dilation_h = v[9], g.dilation_w = v[10];
  // out = (in + 2p - d(k-1) - 1)/s + 1
  g.out_h = (g.height + 2 * g.pad_h - g.dilation_h * (g.kernel_h - 1) - 1) / g.stride_h + 1;
  g.out_w = (g.width + 2 * g.pad_w - g.dilation_w * (g.kernel_w - 1) - 1) / g.stride_w + 1;
  g.out_channels = 1;
  return g;
}

const std::vector<std::vector<int64_t>> kGeometries = {
    {1, 5, 5, 3, 3, 1, 1, 1, 1, 1, 1},   // same-size 3x3
    {2, 7, 6, 3, 3, 2, 2, 0, 0, 1, 1},   // odd sizes, stride 2
    {3, 8, 9, 3, 3, 1, 1, 2, 2, 2, 2},   // dilation 2
    {2, 9, 7, 2, 2, 3, 3, 1, 0, 1, 1},   // stride > kernel
    {1, 6, 10, 3, 1, 1, 2, 1, 0, 1, 3},  // rectangular kernel, stride, dilation
    {4, 4, 3, 1, 1, 1, 1, 0, 0, 1, 1},   // pointwise
    {2, 3, 3, 5, 5, 1, 1, 3, 3, 1, 1},   // padding wider than the kernel reach
    {1, 12, 11, 3, 4, 2, 3, 2, 1, 2, 2}, // everything at once
};

}  // namespace

TEST_CASE("im2col matches its definition", "[im2col]") {
  std::mt19937_64 rng(1);
  for (const auto& v : kGeometries) {
    const ConvGeometry g = make_geometry(v);
    INFO("geometry index " << (&v - kGeometries.data()));
    const Tensor image = random_tensor({g.channels, g.height, g.width}, rng);
    Tensor col({g.column_rows(), g.out_area()});  // [C*KH*KW, OH*OW]
    fcn::cpu::im2col(g, image.data(), col.data());
    for (int64_t c = 0; c < g.channels; ++c)
      for (int64_t ki = 0; ki < g.kernel_h; ++ki)
        for (int64_t kj = 0; kj < g.kernel_w; ++kj)
          for (int64_t oh = 0; oh < g.out_h; ++oh)
            for (int64_t ow = 0; ow < g.out_w; ++ow) {
              const int64_t ih = oh * g.stride_h - g.pad_h + ki * g.dilation_h;
              const int64_t iw = ow * g.stride_w - g.pad_w + kj * g.dilation_w;
              const bool inside = ih >= 0 && ih < g.height && iw >= 0 && iw < g.width;
              const float expected = inside ? image[(c * g.height + ih) * g.width + iw] : 0.f;
              const int64_t row = (c * g.kernel_h + ki) * g.kernel_w + kj;
              REQUIRE(col[row * g.out_area() + oh * g.out_w + ow] == expected);
            }
  }
}

TEST_CASE("col2im is the adjoint of im2col: <im2col(x), c> = <x, col2im(c)>", "[im2col]") {
  std::mt19937_64 rng(2);
  for (const auto& v : kGeometries) {
    const ConvGeometry g = make_geometry(v);
    INFO("geometry index " << (&v - kGeometries.data()));
    const Tensor x = random_tensor({g.channels, g.height, g.width}, rng);
    const Tensor c = random_tensor({g.column_rows(), g.out_area()}, rng);
    Tensor col_x({g.column_rows(), g.out_area()});
    fcn::cpu::im2col(g, x.data(), col_x.data());
    // col2im accumulates: start from an offset image and subtract it again
    const Tensor offset = random_tensor(x.shape(), rng);
    Tensor back = offset;
    fcn::cpu::col2im_add(g, c.data(), back.data());
    double lhs = 0, rhs = 0;
    for (int64_t i = 0; i < c.numel(); ++i) lhs += static_cast<double>(col_x[i]) * c[i];
    for (int64_t i = 0; i < x.numel(); ++i) rhs += static_cast<double>(x[i]) * (back[i] - offset[i]);
    REQUIRE(lhs == Approx(rhs).epsilon(1e-5).margin(1e-5));
  }
}

TEST_CASE("a pointwise geometry needs matching image and column sizes", "[im2col]") {
  ConvGeometry g = make_geometry({2, 4, 4, 1, 1, 1, 1, 0, 0, 1, 1});
  CHECK(g.is_pointwise());
  g.out_h = 5;  // a deconv with output_padding: its columns do not cover the image 1:1
  CHECK_FALSE(g.is_pointwise());
  CHECK_FALSE(make_geometry({2, 4, 4, 1, 1, 2, 2, 0, 0, 1, 1}).is_pointwise());
  CHECK_FALSE(make_geometry({2, 4, 4, 1, 1, 1, 1, 1, 1, 1, 1}).is_pointwise());
}
