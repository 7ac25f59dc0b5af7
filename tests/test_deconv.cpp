// deconv: gradients, adjointness with conv, transposed-conv facts, bilinear
// upsampling, PyTorch parity and output sizes, errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>

#include "conv_parity.hpp"
#include "fcn/core/error.hpp"
#include "fcn/layers/conv.hpp"
#include "fcn/layers/deconv.hpp"
#include "gradcheck.hpp"

using namespace fcn;
using namespace fcn::testing;
using Catch::Contains;

namespace {

struct Case {
  Shape x;
  json options;
};

const std::vector<Case> kCases = {
    {{1, 2, 3, 3}, {{"num_output", 3}, {"kernel", 3}, {"stride", 2}, {"pad", 1}}},
    {{2, 3, 3, 4}, {{"num_output", 2}, {"kernel", 4}, {"stride", 2}, {"pad", 1}}},
    {{1, 2, 3, 2}, {{"num_output", 2}, {"kernel", 3}, {"stride", 2}, {"pad", 1}, {"output_padding", 1}}},
    {{1, 2, 3, 3}, {{"num_output", 2}, {"kernel", 3}, {"pad", 1}, {"dilation", 2}, {"output_padding", {1, 0}}}},
    {{1, 4, 3, 3}, {{"num_output", 6}, {"kernel", 3}, {"stride", 2}, {"groups", 2}}},
    {{1, 3, 2, 3}, {{"num_output", 3}, {"kernel", 4}, {"stride", 2}, {"groups", 3}, {"bias", false}}},
    {{2, 3, 3, 3}, {{"num_output", 2}, {"kernel", 1}}},
    // 1x1 with an output_padding row: the columns no longer cover the output 1:1
    {{1, 2, 3, 3}, {{"num_output", 2}, {"kernel", 1}, {"dilation", 2}, {"output_padding", 1}}},
    {{1, 2, 3, 4}, {{"num_output", 2}, {"kernel", {2, 3}}, {"stride", {3, 1}}, {"pad", {0, 1}}}},
    {{1, 2, 2, 2}, {{"num_output", 2}, {"kernel", 2}, {"stride", 3}}},  // stride > kernel: gaps
    // a frozen bilinear upsampler: input gradient only
    {{1, 2, 3, 3}, {{"num_output", 2}, {"kernel", 4}, {"stride", 2}, {"bias", false}, {"weight_init", "bilinear"},
                    {"lr_mult", 0}}},
};

std::unique_ptr<Layer> build(const json& options) {
  return create_layer(layer_spec("deconv", options, "up"), "layers[5]");
}

Tensor run_forward(Layer& layer, const Tensor& x) {
  Tensor y(layer.reshape({x.shape()}));
  layer.forward({&x}, y, Mode::test);
  return y;
}

double dot(const Tensor& a, const Tensor& b) {
  double sum = 0;
  for (int64_t i = 0; i < a.numel(); ++i) sum += static_cast<double>(a[i]) * b[i];
  return sum;
}

}  // namespace

TEST_CASE("deconv gradients over a table of shapes", "[deconv]") {
  std::mt19937_64 rng(21);
  for (const Case& c : kCases) {
    INFO("x " << shape_str(c.x) << " options " << c.options.dump());
    auto layer = make_test_layer(layer_spec("deconv", c.options));
    std::vector<Tensor> inputs = {random_tensor(c.x, rng)};
    check_gradients(*layer, inputs);
  }
}

TEST_CASE("deconv is the adjoint of conv with the same weight: <conv(x), y> = <x, deconv(y)>", "[deconv]") {
  std::mt19937_64 rng(22);
  // {x shape, num_output, kernel, stride, pad, dilation, groups}
  const std::vector<std::pair<Shape, std::vector<int64_t>>> table = {
      {{1, 2, 7, 7}, {3, 3, 1, 1, 1, 1}}, {{2, 3, 8, 9}, {2, 3, 2, 1, 1, 1}}, {{1, 2, 9, 8}, {2, 3, 3, 0, 1, 1}},
      {{1, 2, 9, 9}, {3, 3, 1, 2, 2, 1}}, {{1, 4, 10, 7}, {6, 3, 2, 2, 2, 2}}, {{1, 3, 6, 6}, {2, 1, 2, 0, 1, 1}},
      {{1, 2, 11, 11}, {2, 4, 4, 3, 1, 1}},
  };
  for (const auto& [x_shape, v] : table) {
    const int64_t num_output = v[0], kernel = v[1], stride = v[2], pad = v[3], dilation = v[4], groups = v[5];
    INFO("x " << shape_str(x_shape) << " out " << num_output << " k " << kernel << " s " << stride << " p " << pad
              << " d " << dilation << " g " << groups);
    const json common = {{"kernel", kernel}, {"stride", stride}, {"pad", pad}, {"dilation", dilation},
                         {"groups", groups}, {"bias", false}};
    json conv_options = common, deconv_options = common;
    conv_options["num_output"] = num_output;
    deconv_options["num_output"] = x_shape[1];
    auto conv = create_layer(layer_spec("conv", conv_options), "conv");
    const Tensor x = random_tensor(x_shape, rng);
    const Tensor conv_x = run_forward(*conv, x);
    // output_padding recovers the rows the conv's floor dropped
    const int64_t extra_h = (x_shape[2] + 2 * pad - dilation * (kernel - 1) - 1) % stride;
    const int64_t extra_w = (x_shape[3] + 2 * pad - dilation * (kernel - 1) - 1) % stride;
    deconv_options["output_padding"] = {extra_h, extra_w};
    auto deconv = create_layer(layer_spec("deconv", deconv_options), "deconv");
    const Tensor y = random_tensor(conv_x.shape(), rng);
    deconv->reshape({y.shape()});
    REQUIRE(deconv->params()[0]->data.shape() == conv->params()[0]->data.shape());
    conv->params()[0]->data = random_tensor(conv->params()[0]->data.shape(), rng);
    deconv->params()[0]->data = conv->params()[0]->data;  // the same W
    const Tensor conv_x2 = run_forward(*conv, x);
    const Tensor deconv_y = run_forward(*deconv, y);
    REQUIRE(deconv_y.shape() == x.shape());
    CHECK(dot(conv_x2, y) == Approx(dot(x, deconv_y)).epsilon(1e-5));
  }
}

TEST_CASE("transposed convolution of [[1,2],[3,4]] with a 3x3 ones kernel, stride 2", "[deconv]") {
  auto layer = make_test_layer(layer_spec(
      "deconv", {{"num_output", 1}, {"kernel", 3}, {"stride", 2}, {"bias", false}, {"weight_init", "constant"}}));
  layer->reshape({{1, 1, 2, 2}});
  layer->params()[0]->data.fill(1.f);
  Tensor x({1, 1, 2, 2});
  for (int i = 0; i < 4; ++i) x[i] = static_cast<float>(i + 1);
  const Tensor y = run_forward(*layer, x);
  REQUIRE(y.shape() == Shape{1, 1, 5, 5});
  const float expected[4][4] = {{1, 1, 3, 2}, {1, 1, 3, 2}, {4, 4, 10, 6}, {3, 3, 7, 4}};
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) CHECK(y[r * 5 + c] == expected[r][c]);
}

TEST_CASE("bilinear init: the 4x4 kernel is the outer product of [0.25, 0.75, 0.75, 0.25] on the diagonal",
          "[deconv]") {
  auto layer = make_test_layer(layer_spec(
      "deconv", {{"num_output", 3}, {"kernel", 4}, {"stride", 2}, {"bias", false}, {"weight_init", "bilinear"}}));
  layer->reshape({{1, 3, 5, 5}});
  const Tensor& w = layer->params()[0]->data;  // [3, 3, 4, 4]
  const float f[4] = {0.25f, 0.75f, 0.75f, 0.25f};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      for (int y = 0; y < 4; ++y)
        for (int x = 0; x < 4; ++x) CHECK(w[((i * 3 + j) * 4 + y) * 4 + x] == (i == j ? f[y] * f[x] : 0.f));
  CHECK(w[0] == 0.0625f);
  CHECK(w[1] == 0.1875f);
  CHECK(w[5] == 0.5625f);
}

TEST_CASE("a frozen bilinear deconv (kernel 2s, stride s) keeps a constant image constant inside", "[deconv]") {
  for (int64_t s : {2, 4, 8}) {
    INFO("stride " << s);
    auto layer = make_test_layer(layer_spec("deconv", {{"num_output", 3}, {"kernel", 2 * s}, {"stride", s},
                                                       {"bias", false}, {"weight_init", "bilinear"}, {"lr_mult", 0}}));
    Tensor x({1, 3, 5, 6});
    x.fill(1.5f);
    const Tensor y = run_forward(*layer, x);
    REQUIRE(y.shape() == Shape{1, 3, 6 * s, 7 * s});  // (in-1)*s + 2s
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t r = s; r < 5 * s; ++r)
        for (int64_t q = s; q < 6 * s; ++q) REQUIRE(y[(c * 6 * s + r) * 7 * s + q] == Approx(1.5f));
    CHECK(layer->params()[0]->grad.numel() == 0);
    CHECK_FALSE(layer->backward_needs_inputs());
  }
}

TEST_CASE("a frozen channel-diagonal deconv upsamples channel by channel with the full deconv's results",
          "[deconv]") {
  // FCN's upsamplers: 21 classes, kernel 2s, stride s; the trainable twin takes the full path
  for (int64_t s : {2, 8}) {
    INFO("stride " << s);
    const json options = {{"num_output", 21}, {"kernel", 2 * s}, {"stride", s}, {"bias", false},
                          {"weight_init", "bilinear"}};
    json frozen_options = options;
    frozen_options["lr_mult"] = 0;
    auto frozen = make_test_layer(layer_spec("deconv", frozen_options));
    auto full = make_test_layer(layer_spec("deconv", options));
    std::mt19937_64 rng(4);
    const Tensor x = random_tensor({2, 21, 7, 5}, rng);
    const Tensor y = run_forward(*frozen, x), y_full = run_forward(*full, x);
    REQUIRE(frozen->params()[0]->data.numel() == full->params()[0]->data.numel());
    for (int64_t i = 0; i < y.numel(); ++i) REQUIRE(y[i] == y_full[i]);
    const Tensor dy = random_tensor(y.shape(), rng);
    Tensor dx(x.shape()), dx_full(x.shape());
    dx.fill(0.5f);
    dx_full.fill(0.5f);
    frozen->backward({&x}, y, dy, {&dx});
    full->backward({&x}, y_full, dy, {&dx_full});
    // the GEMMs sum the same non-zero products in another order: rounding apart
    double err = 0, scale = 0;
    for (int64_t i = 0; i < dx.numel(); ++i) {
      err = std::max(err, std::fabs(static_cast<double>(dx[i]) - dx_full[i]));
      scale = std::max(scale, std::fabs(static_cast<double>(dx_full[i])));
    }
    CHECK(err <= 1e-6 * scale);
  }
}

TEST_CASE("deconv matches PyTorch ConvTranspose2d (forward, grad input, weight, bias)", "[deconv][parity]") {
  for (const char* name : {"basic", "output_padding", "groups", "dilation", "rect_nobias", "pointwise",
                           "pointwise_output_padding"})
    check_conv_parity(std::string("deconv_") + name + ".safetensors");
}

TEST_CASE("deconv_output_size matches PyTorch, including the FCN upsamplers", "[deconv]") {
  check_size_table("deconv_sizes.safetensors", deconv_output_size);
  CHECK(deconv_output_size(16, 64, 32, 0, 1, 0) == 544);  // fcn32s upscore
  CHECK(deconv_output_size(2, 3, 2, 0, 1, 0) == 5);
}

TEST_CASE("deconv coordinate map and FLOPs", "[deconv]") {
  auto layer = build({{"num_output", 21}, {"kernel", 64}, {"stride", 32}, {"bias", false}});
  layer->reshape({{1, 21, 16, 16}});
  const CoordMap map = layer->coord_map();
  CHECK(map.scale[0] == 32.0);
  CHECK(map.shift[1] == 31.5);  // (64-1)/2 - 0
  auto small = build({{"num_output", 4}, {"kernel", 3}, {"stride", 2}, {"pad", 1}, {"dilation", 2}, {"groups", 2}});
  small->reshape({{2, 6, 5, 4}});
  CHECK(small->coord_map().shift[0] == 1.0);  // 2*(3-1)/2 - 1
  CHECK(small->forward_flops() == 2.0 * 2 * 6 * 5 * 4 * 2 * 9);  // 2 * N*Cin*IH*IW*(Cout/g)*kh*kw
}

TEST_CASE("deconv errors", "[deconv][errors]") {
  CHECK_THROWS_WITH(build({{"num_output", 2}, {"kernel", 4}, {"stride", 2}, {"output_padding", 2}}),
                    Contains("layers[5].output_padding: must be smaller than the stride or the dilation"));
  CHECK_THROWS_WITH(build({{"num_output", 2}, {"kernel", 4}, {"output_padding", -1}}),
                    Contains("layers[5].output_padding"));
  CHECK_THROWS_WITH(build({{"num_output", 2}, {"kernel", 4}, {"weight_init", "bilinar"}}),
                    Contains("layers[5].weight_init.type") && Contains("did you mean \"bilinear\"?"));
  CHECK_THROWS_WITH(build({{"num_output", 2}, {"kernel", 4}, {"outptu_padding", 1}}),
                    Contains("did you mean \"output_padding\"?"));
  CHECK_THROWS_WITH(build({{"num_output", 4}, {"kernel", 4}, {"groups", 2}})->reshape({{1, 3, 5, 5}}),
                    Contains("layer 'up' (deconv)") && Contains("groups = 2") && Contains("x [1, 3, 5, 5]"));
  CHECK_THROWS_WITH(build({{"num_output", 2}, {"kernel", 3}, {"pad", 3}})->reshape({{1, 1, 2, 2}}),
                    Contains("layer 'up' (deconv): the padding removes the whole output"));
}
