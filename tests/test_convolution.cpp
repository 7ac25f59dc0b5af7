// im2col/col2im against the definition and against each other (adjointness).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>

#include "fcn/cpu/convolution.hpp"
#include "fcn/cpu/elementwise.hpp"
#include "equal_windows.hpp"
#include "gradcheck.hpp"
#include "reference_conv.hpp"

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

TEST_CASE("col2im_add_transposed adds what col2im_add adds from the columns untransposed", "[im2col]") {
  // whole numbers, so that every order of the sums gives the same floats; fc6's shape among the geometries
  std::vector<std::vector<int64_t>> geometries = kGeometries;
  geometries.push_back({512, 22, 22, 7, 7, 1, 1, 0, 0, 1, 1});
  std::mt19937_64 rng(3);
  std::uniform_int_distribution<int> whole(-64, 64);
  for (const auto& v : geometries) {
    const ConvGeometry g = make_geometry(v);
    INFO("geometry " << (&v - geometries.data()));
    const int64_t rows = g.column_rows(), pixels = g.out_area();
    Tensor col({rows, pixels}), col_t({pixels, rows}), image({g.channels, g.height, g.width});
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t p = 0; p < pixels; ++p) col_t[p * rows + r] = col[r * pixels + p] = static_cast<float>(whole(rng));
    for (int64_t i = 0; i < image.numel(); ++i) image[i] = static_cast<float>(whole(rng));
    Tensor expected = image, added = image;
    fcn::cpu::col2im_add(g, col.data(), expected.data());
    fcn::cpu::col2im_add_transposed(g, col_t.data(), added.data());
    REQUIRE(std::memcmp(added.data(), expected.data(), sizeof(float) * image.numel()) == 0);
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

namespace {

// conv_forward of an image that is constant per channel but for a random
// patch (FCN's 100-pixel zero padding around a photo, its constant
// activations), checked for the property max-pooling relies on: an output
// whose window (im2col column) equals its left or upper neighbour's is the
// same number as that neighbour, bit for bit, in every output channel (and
// so are runs of such outputs).
fcn::testing::EqualWindows check_equal_windows(ConvGeometry g, int64_t patch_h, int64_t patch_w, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.f, 0.2f);
  std::vector<float> w(g.out_channels * g.column_rows() / g.groups), bias(g.out_channels), x(g.image_numel());
  for (float& v : w) v = normal(rng);
  for (float& v : bias) v = normal(rng);
  const int64_t y0 = (g.height - patch_h) / 2, x0 = (g.width - patch_w) / 3;
  for (int64_t c = 0; c < g.channels; ++c)
    for (int64_t i = 0; i < g.height; ++i)
      for (int64_t j = 0; j < g.width; ++j) {
        const bool in_patch = i >= y0 && i < y0 + patch_h && j >= x0 && j < x0 + patch_w;
        x[(c * g.height + i) * g.width + j] = in_patch ? normal(rng) : 0.37f * static_cast<float>(c + 1);
      }
  std::vector<float> y(g.output_numel(), std::nanf(""));
  fcn::cpu::conv_forward(g, w.data(), x.data(), 0.f, y.data(), bias.data());
  return fcn::testing::equal_window_outputs(g, x, y);
}

ConvGeometry stride_two(ConvGeometry g) {
  g.stride_h = g.stride_w = 2;
  g.out_h = (g.height + 2 * g.pad_h - g.kernel_h) / 2 + 1;
  g.out_w = (g.width + 2 * g.pad_w - g.kernel_w) / 2 + 1;
  return g;
}

ConvGeometry conv_geometry(int64_t channels, int64_t height, int64_t width, int64_t out_channels, int64_t kernel,
                           int64_t pad, int64_t groups = 1) {
  ConvGeometry g = make_geometry({channels, height, width, kernel, kernel, 1, 1, pad, pad, 1, 1});
  g.out_channels = out_channels;
  g.groups = groups;
  return g;
}

}  // namespace

TEST_CASE("conv_forward gives bit-equal outputs for equal windows, wherever they lie (max-pooling ties)",
          "[im2col]") {
  // The GEMMs do not promise it: OpenBLAS rounds a column by where it lies
  // in the call (its micro-kernels accumulate edge and interior tiles, even
  // the two halves of one tile, in different orders), and so Winograd's
  // tiles too. FCN's constant padded regions then held broken max-pooling
  // ties, and the pooling gradients went to other pixels than PyTorch's
  // (FCN-32s at 338x500: grad/pool3 off by 0.26).
  struct Row {
    const char* what;
    ConvGeometry g;
    int64_t patch_h, patch_w;
  };
  const std::vector<Row> rows = {
      // 39 x 51 outputs: 1989 columns, one GEMM (1989 mod 16 = 5)
      {"one GEMM, a ragged last block", conv_geometry(4, 41, 53, 4, 3, 0), 9, 13},
      // 298 x 398 outputs, 36 x 118604 columns: bands of 146 output rows, blocks for the threads
      {"bands of output rows", conv_geometry(4, 200, 300, 8, 3, 50), 60, 90},
      {"16 channels", conv_geometry(16, 60, 70, 16, 3, 20), 20, 20},
      // fc-like: 1x1, more rows than columns, 63 columns
      {"pointwise", conv_geometry(96, 7, 9, 200, 1, 0), 2, 3},
      // a 7x7 conv (fc6) on a small map with padding: 13 x 15 outputs
      {"7x7 with padding", conv_geometry(8, 9, 11, 40, 7, 5), 3, 3},
      {"groups", conv_geometry(4, 23, 29, 6, 3, 3, 2), 5, 7},
      {"stride 2", stride_two(conv_geometry(8, 40, 51, 24, 3, 4)), 6, 6},
      // wide enough for Winograd F(2x2, 3x3), whose GEMMs over the tiles round equal tiles differently too
      {"Winograd", conv_geometry(64, 30, 41, 64, 3, 1), 6, 8},
  };
  for (const Row& row : rows) {
    const fcn::testing::EqualWindows result = check_equal_windows(row.g, row.patch_h, row.patch_w, 17);
    INFO(row.what << ": " << result.shared << " outputs share their neighbour's window; first unequal: "
                  << result.first);
    CHECK(result.shared > 0);
    CHECK(result.unequal == 0);
  }
}

namespace {

// A depthwise geometry (groups == channels == out_channels) of square kernel, stride, padding and
// dilation; the caller sets the image and output sizes.
ConvGeometry square_depthwise(int64_t channels, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation) {
  ConvGeometry g;
  g.channels = g.out_channels = g.groups = channels;
  g.kernel_h = g.kernel_w = kernel;
  g.stride_h = g.stride_w = stride;
  g.pad_h = g.pad_w = pad;
  g.dilation_h = g.dilation_w = dilation;
  return g;
}

}  // namespace

TEST_CASE("depthwise_backward_data (the bilinear upsampling deconv) gives conv_backward_data's numbers per channel") {
  // FCN's upscore8 (16x16, stride 8, pad 0; also at its size for a 500x500 image, 71x71 -> 568x568) and
  // upscore2 (4x4, stride 2), a padded one, odd sizes: the row-at-a-time path (kernel a multiple of the
  // stride); a padded dilated one and a kernel of 3 at stride 2: the scatter of each tap
  struct Row {
    int64_t kernel, stride, pad, dilation, out_h, out_w;
  };
  for (const Row& r : {Row{16, 8, 0, 1, 9, 7}, Row{16, 8, 0, 1, 71, 71}, Row{4, 2, 0, 1, 13, 10},
                       Row{4, 2, 1, 1, 7, 6}, Row{6, 3, 2, 1, 5, 8}, Row{3, 2, 1, 2, 6, 5}, Row{3, 2, 0, 1, 4, 5}}) {
    INFO("kernel " << r.kernel << " stride " << r.stride << " pad " << r.pad << " dilation " << r.dilation);
    ConvGeometry g = square_depthwise(5, r.kernel, r.stride, r.pad, r.dilation);
    g.out_h = r.out_h;
    g.out_w = r.out_w;
    // the image side a transposed conv of these outputs fills: (out - 1) * s - 2p + d(k - 1) + 1
    g.height = (r.out_h - 1) * r.stride - 2 * r.pad + r.dilation * (r.kernel - 1) + 1;
    g.width = (r.out_w - 1) * r.stride - 2 * r.pad + r.dilation * (r.kernel - 1) + 1;
    std::mt19937_64 rng(17);
    const auto w = fcn::testing::random_normal(g.channels * r.kernel * r.kernel, rng);
    const auto dy = fcn::testing::random_normal(g.output_numel(), rng);
    const auto start = fcn::testing::random_normal(g.image_numel(), rng);
    std::vector<float> dx = start, expected = start;
    fcn::cpu::depthwise_backward_data(g, w.data(), dy.data(), dx.data());
    ConvGeometry one = g;
    one.channels = one.out_channels = one.groups = 1;
    const int64_t kernel = r.kernel * r.kernel;
    for (int64_t c = 0; c < g.channels; ++c)
      fcn::cpu::conv_backward_data(one, w.data() + c * kernel, dy.data() + c * g.out_area(), expected.data() + c * g.height * g.width);
    // bit for bit (memcmp: a -0 against a +0 counts), counted so that a failure does not print 1.6 M floats
    size_t differing = 0;
    for (size_t i = 0; i < dx.size(); ++i) differing += std::memcmp(&dx[i], &expected[i], sizeof(float)) != 0;
    CHECK(differing == 0);
  }
}

TEST_CASE("depthwise_forward (the upsampling deconv's backward) matches a float64 sum of each window") {
  // upscore8's backward at its 500x500 size (568x568 -> 71x71), FCN-32s's upscore (64x64, stride 32), a
  // padded dilated 16-wide one, upscore2's (4x4) and a 3x3; beta 1 (the deconv adds into its input
  // gradient) and beta 0
  struct Row {
    int64_t kernel, stride, pad, dilation, height, width;
  };
  for (const Row& r : {Row{16, 8, 0, 1, 568, 568}, Row{64, 32, 0, 1, 200, 130}, Row{16, 4, 3, 2, 60, 53},
                       Row{4, 2, 0, 1, 26, 21}, Row{3, 2, 1, 2, 13, 11}}) {
    for (const float beta : {1.f, 0.f}) {
      INFO("kernel " << r.kernel << " stride " << r.stride << " pad " << r.pad << " dilation " << r.dilation
                     << " beta " << beta);
      ConvGeometry g = square_depthwise(3, r.kernel, r.stride, r.pad, r.dilation);
      g.height = r.height;
      g.width = r.width;
      // out = (in + 2p - d(k - 1) - 1) / s + 1
      g.out_h = (r.height + 2 * r.pad - r.dilation * (r.kernel - 1) - 1) / r.stride + 1;
      g.out_w = (r.width + 2 * r.pad - r.dilation * (r.kernel - 1) - 1) / r.stride + 1;
      std::mt19937_64 rng(23);
      const auto w = fcn::testing::random_normal(g.channels * r.kernel * r.kernel, rng);
      const auto x = fcn::testing::random_normal(g.image_numel(), rng);
      const auto start = fcn::testing::random_normal(g.output_numel(), rng);
      std::vector<float> y = start;
      fcn::cpu::depthwise_forward(g, w.data(), x.data(), beta, y.data());
      double worst = 0, largest = 0;
      for (int64_t c = 0; c < g.channels; ++c)
        for (int64_t oh = 0; oh < g.out_h; ++oh)
          for (int64_t ow = 0; ow < g.out_w; ++ow) {
            const int64_t at = (c * g.out_h + oh) * g.out_w + ow;
            double sum = beta * static_cast<double>(start[at]);
            for (int64_t ki = 0; ki < r.kernel; ++ki)
              for (int64_t kj = 0; kj < r.kernel; ++kj) {
                const int64_t ih = oh * r.stride - r.pad + ki * r.dilation, iw = ow * r.stride - r.pad + kj * r.dilation;
                if (ih < 0 || ih >= g.height || iw < 0 || iw >= g.width) continue;
                sum += static_cast<double>(w[(c * r.kernel + ki) * r.kernel + kj]) * x[(c * g.height + ih) * g.width + iw];
              }
            worst = std::max(worst, std::abs(y[at] - sum));
            largest = std::max(largest, std::abs(sum));
          }
      // 256 float products summed: a few ulps of the window's magnitude
      CHECK(worst <= 1e-5 * std::max(1.0, largest));
    }
  }
}

// A conv of square kernel, padding and image, stride 1, over `batch` images.
struct SquareConv {
  int64_t channels, out_channels, kernel, pad, size, batch;
  ConvGeometry geometry() const {
    ConvGeometry g;
    g.channels = channels;
    g.out_channels = out_channels;
    g.kernel_h = g.kernel_w = kernel;
    g.pad_h = g.pad_w = pad;
    g.height = g.width = size;
    g.out_h = g.out_w = size + 2 * pad - kernel + 1;  // out = in + 2p - k + 1
    return g;
  }
};

TEST_CASE("conv_backward_data_images without accumulate writes the image gradients whole, on every path") {
  // Winograd (64 channels, 3x3: backward_data_writes_whole), im2col (3 channels, 3x3; 7x7) and a batch on
  // the phase grid (small maps): stale values (NaN) are never read, and the numbers are those of adding to zeros
  for (const SquareConv& r : {SquareConv{64, 32, 3, 1, 21, 1}, SquareConv{3, 32, 3, 1, 17, 2},
                              SquareConv{16, 32, 7, 0, 12, 1}, SquareConv{64, 32, 3, 1, 6, 4}}) {
    const ConvGeometry g = r.geometry();
    INFO("channels " << r.channels << " kernel " << r.kernel << " batch " << r.batch << " writes whole "
                     << fcn::cpu::backward_data_writes_whole(g, r.batch));
    std::mt19937_64 rng(29);
    const auto w = fcn::testing::random_normal(g.weight_numel(), rng);
    const auto dy = fcn::testing::random_normal(r.batch * g.output_numel(), rng);
    std::vector<float> added(r.batch * g.image_numel(), 0.f);
    std::vector<float> written(added.size(), std::numeric_limits<float>::quiet_NaN());
    fcn::cpu::conv_backward_data_images(g, r.batch, w.data(), dy.data(), added.data());
    fcn::cpu::conv_backward_data_images(g, r.batch, w.data(), dy.data(), written.data(), false);
    CHECK(written == added);  // bit for bit (no NaN survives)
  }
  ConvGeometry winograd;
  winograd.channels = winograd.out_channels = 64;
  winograd.kernel_h = winograd.kernel_w = 3;
  winograd.pad_h = winograd.pad_w = 1;
  winograd.height = winograd.width = winograd.out_h = winograd.out_w = 40;
  CHECK(fcn::cpu::backward_data_writes_whole(winograd, 1));
  winograd.channels = 3;
  CHECK_FALSE(fcn::cpu::backward_data_writes_whole(winograd, 1));
}

TEST_CASE("conv_backward_data_images with a rectifier's bits gives relu_backward of its gradients, on every path") {
  // what a folded ReLU backward relies on (Graph::fold_rectifier_backwards): Winograd masks as it writes
  // (image by image, bit offsets running on across the batch), the other paths mask after; bit for bit
  // what the ReLU's own pass makes of the unmasked gradient, written whole or added to zeros
  int winograd_rows = 0;
  for (const SquareConv& r : {SquareConv{64, 64, 3, 1, 128, 2}, SquareConv{64, 64, 3, 1, 37, 1},
                              SquareConv{3, 32, 3, 1, 17, 2}, SquareConv{16, 32, 7, 0, 12, 1},
                              SquareConv{64, 64, 3, 1, 6, 4}}) {
    const ConvGeometry g = r.geometry();
    INFO("channels " << r.channels << " size " << r.size << " batch " << r.batch << " Winograd "
                     << fcn::cpu::backward_data_writes_whole(g, r.batch));
    std::mt19937_64 rng(41);
    const auto w = fcn::testing::random_normal(g.weight_numel(), rng);
    auto dy = fcn::testing::random_normal(r.batch * g.output_numel(), rng);
    const int64_t n = r.batch * g.image_numel();
    std::vector<uint16_t> kept(fcn::cpu::relu_mask_words(n));
    for (uint16_t& word : kept) word = static_cast<uint16_t>(rng());
    std::vector<float> unmasked(n, 0.f), expected(n);
    fcn::cpu::conv_backward_data_images(g, r.batch, w.data(), dy.data(), unmasked.data());
    fcn::cpu::relu_backward(kept.data(), unmasked.data(), expected.data(), n, 0.f, false);
    std::vector<float> added(n, 0.f), written(n, std::numeric_limits<float>::quiet_NaN());
    fcn::cpu::conv_backward_data_images(g, r.batch, w.data(), dy.data(), added.data(), true, kept.data());
    fcn::cpu::conv_backward_data_images(g, r.batch, w.data(), dy.data(), written.data(), false, kept.data());
    CHECK(std::memcmp(added.data(), expected.data(), n * sizeof(float)) == 0);
    CHECK(std::memcmp(written.data(), expected.data(), n * sizeof(float)) == 0);
    int64_t zeroed = 0;
    for (int64_t i = 0; i < n; ++i) zeroed += expected[i] == 0.f;
    CHECK(zeroed > n / 4);  // the bits did mask (about half of them are clear)
    winograd_rows += fcn::cpu::backward_data_writes_whole(g, r.batch);
  }
  CHECK(winograd_rows == 2);
}
