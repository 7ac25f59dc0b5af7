// conv: gradients, a nested-loop reference, PyTorch parity, sizes, errors.
#include <catch2/catch.hpp>

#include <random>

#include "conv_parity.hpp"
#include "fcn/core/error.hpp"
#include "fcn/cpu/bf16_gemm.hpp"
#include "fcn/layers/conv.hpp"
#include "gradcheck.hpp"
#include "reference_conv.hpp"

using namespace fcn;
using namespace fcn::testing;
using Catch::Contains;

namespace {

struct Case {
  Shape x;
  json options;
};

// odd sizes, stride > kernel, padding, dilation, groups, 1x1, rectangular
// kernels, batch 2, no bias, frozen weight, depthwise
const std::vector<Case> kCases = {
    {{1, 3, 5, 5}, {{"num_output", 2}, {"kernel", 3}, {"pad", 1}}},
    {{2, 2, 7, 6}, {{"num_output", 3}, {"kernel", 3}, {"stride", 2}}},
    {{1, 2, 7, 7}, {{"num_output", 2}, {"kernel", 2}, {"stride", 3}, {"pad", 1}}},
    {{1, 2, 8, 7}, {{"num_output", 2}, {"kernel", 3}, {"pad", 2}, {"dilation", 2}}},
    {{1, 4, 5, 5}, {{"num_output", 6}, {"kernel", 3}, {"pad", 1}, {"groups", 2}}},
    {{2, 3, 4, 5}, {{"num_output", 2}, {"kernel", 1}}},
    {{1, 2, 6, 7}, {{"num_output", 2}, {"kernel", {3, 1}}, {"stride", {1, 2}}, {"pad", {1, 0}}}},
    {{1, 2, 9, 6}, {{"num_output", 3}, {"kernel", {2, 3}}, {"dilation", {3, 1}}, {"pad", {0, 2}}}},
    {{1, 2, 5, 5}, {{"num_output", 2}, {"kernel", 3}, {"bias", false}}},
    {{1, 2, 5, 5}, {{"num_output", 2}, {"kernel", 3}, {"pad", 1}, {"lr_mult", 0}}},
    {{2, 3, 5, 4}, {{"num_output", 3}, {"kernel", 3}, {"pad", 1}, {"groups", 3}, {"bias_init", "gaussian"}}},
    {{1, 2, 3, 3}, {{"num_output", 2}, {"kernel", 1}, {"stride", 2}}},  // 1x1 but strided: not pointwise
};

// The layer's geometry for one image of x.
cpu::ConvGeometry geometry_of(const Tensor& x, const ConvOptions& o) {
  cpu::ConvGeometry g;
  g.channels = x.c(), g.height = x.h(), g.width = x.w();
  g.out_channels = o.num_output;
  g.out_h = conv_output_size(x.h(), o.kernel[0], o.stride[0], o.pad[0], o.dilation[0]);
  g.out_w = conv_output_size(x.w(), o.kernel[1], o.stride[1], o.pad[1], o.dilation[1]);
  g.kernel_h = o.kernel[0], g.kernel_w = o.kernel[1];
  g.stride_h = o.stride[0], g.stride_w = o.stride[1];
  g.pad_h = o.pad[0], g.pad_w = o.pad[1];
  g.dilation_h = o.dilation[0], g.dilation_w = o.dilation[1];
  g.groups = o.groups;
  return g;
}

// The batch through testing::reference_conv_forward, image by image.
Tensor naive_conv(const Tensor& x, const Tensor& w, const Tensor* b, const ConvOptions& o) {
  const cpu::ConvGeometry g = geometry_of(x, o);
  Tensor y({x.n(), o.num_output, g.out_h, g.out_w});
  for (int64_t n = 0; n < x.n(); ++n) {
    const std::vector<double> image_output =
        testing::reference_conv_forward(g, w.data(), x.data() + n * g.image_numel(), b ? b->data() : nullptr);
    for (int64_t i = 0; i < g.output_numel(); ++i) y[n * g.output_numel() + i] = static_cast<float>(image_output[i]);
  }
  return y;
}

std::unique_ptr<Layer> build(const json& options) {
  return create_layer(layer_spec("conv", options, "conv3"), "layers[3]");
}

}  // namespace

TEST_CASE("conv gradients over a table of shapes", "[conv]") {
  std::mt19937_64 rng(11);
  for (const Case& c : kCases) {
    INFO("x " << shape_str(c.x) << " options " << c.options.dump());
    auto layer = make_test_layer(layer_spec("conv", c.options));
    std::vector<Tensor> inputs = {random_tensor(c.x, rng)};
    check_gradients(*layer, inputs);
  }
}

TEST_CASE("conv forward matches a nested-loop reference", "[conv]") {
  std::mt19937_64 rng(12);
  for (const Case& c : kCases) {
    INFO("x " << shape_str(c.x) << " options " << c.options.dump());
    auto layer = make_test_layer(layer_spec("conv", c.options));
    const auto& conv = dynamic_cast<ConvLayer&>(*layer);
    const Tensor x = random_tensor(c.x, rng);
    Tensor y(layer->reshape({x.shape()}));
    const auto params = layer->params();
    for (Param* p : params) p->data = random_tensor(p->data.shape(), rng);  // a nonzero bias too
    layer->forward({&x}, y, Mode::test);
    const Tensor expected = naive_conv(x, params[0]->data, params.size() > 1 ? &params[1]->data : nullptr,
                                       conv.options());
    REQUIRE(y.shape() == expected.shape());
    for (int64_t i = 0; i < y.numel(); ++i) REQUIRE(y[i] == Approx(expected[i]).epsilon(1e-5).margin(1e-5));
  }
}

TEST_CASE("a wide 3x3 conv (the Winograd path) matches the reference and its own gradient check", "[conv]") {
  // 64 channels in and out: src/cpu/winograd.cpp computes forward, backward-data and the
  // weight gradient; batch 2, odd sizes, pad 1 and 2, the fused bias
  std::mt19937_64 rng(13);
  for (const json& options : {json{{"num_output", 64}, {"kernel", 3}, {"pad", 1}},
                              json{{"num_output", 72}, {"kernel", 3}, {"pad", 2}}}) {
    INFO("options " << options.dump());
    auto layer = make_test_layer(layer_spec("conv", options));
    // 33x31: enough tiles for the Winograd path to pay (winograd_pays), forward and backward
    const Tensor x = random_tensor({2, 64, 33, 31}, rng);
    Tensor y(layer->reshape({x.shape()}));
    const auto params = layer->params();
    for (Param* p : params) p->data = random_tensor(p->data.shape(), rng, -0.1f, 0.1f);
    layer->forward({&x}, y, Mode::test);
    const Tensor expected = naive_conv(x, params[0]->data, &params[1]->data, dynamic_cast<ConvLayer&>(*layer).options());
    for (int64_t i = 0; i < y.numel(); ++i) REQUIRE(y[i] == Approx(expected[i]).epsilon(1e-4).margin(1e-4));
    std::vector<Tensor> inputs = {x};
    check_gradients(*layer, inputs);  // sampled positions of x, weight and bias
  }
}

TEST_CASE("a conv with a large column buffer (built a band of output rows at a time) matches the reference",
          "[conv]") {
  // conv1_1's shape: few channels, pad 100, a column buffer of millions of floats
  std::mt19937_64 rng(14);
  const json options = {{"num_output", 4}, {"kernel", 3}, {"pad", 100}, {"stride", {1, 2}}};
  auto layer = make_test_layer(layer_spec("conv", options));
  const Tensor x = random_tensor({1, 3, 310, 290}, rng);
  Tensor y(layer->reshape({x.shape()}));
  const auto params = layer->params();
  for (Param* p : params) p->data = random_tensor(p->data.shape(), rng);
  layer->forward({&x}, y, Mode::test);
  const ConvOptions& o = dynamic_cast<ConvLayer&>(*layer).options();
  const Tensor expected = naive_conv(x, params[0]->data, &params[1]->data, o);
  for (int64_t i = 0; i < y.numel(); ++i) REQUIRE(y[i] == Approx(expected[i]).epsilon(1e-5).margin(1e-5));
  // backward against the same sums: dW = sum dy * x, dx = sum dy * w
  const Tensor dy = random_tensor(y.shape(), rng);
  Tensor dx(x.shape());
  for (Param* p : params) p->grad.zero();
  layer->backward({&x}, y, dy, {&dx});
  std::vector<double> dw, dx_ref;
  const Tensor& w = params[0]->data;
  testing::reference_conv_backward(geometry_of(x, o), w.data(), x.data(), dy.data(), dx_ref, dw);
  for (int64_t i = 0; i < w.numel(); ++i) REQUIRE(params[0]->grad[i] == Approx(dw[i]).epsilon(1e-4).margin(1e-3));
  for (int64_t i = 0; i < x.numel(); ++i) REQUIRE(dx[i] == Approx(dx_ref[i]).epsilon(1e-4).margin(1e-4));
}

TEST_CASE("in bf16 a conv too shallow for it (3 channels x 3x3) computes in fp32, a deeper one in bf16", "[conv]") {
  // conv.cpp's kMinBf16Depth: 27 products an output stay fp32, 36 go bf16
  for (int64_t channels : {3, 4}) {
    INFO(channels << " channels");
    const bool in_bf16 = channels * 9 >= 32;
    if (in_bf16 && !cpu::bf16_support().available) continue;  // the deeper conv needs the hardware
    std::mt19937_64 rng(21);
    const Tensor x = random_tensor({1, channels, 40, 36}, rng);
    const json options = {{"num_output", 8}, {"kernel", 3}, {"pad", 1}};
    Tensor outputs[2], weight_grads[2];
    const Tensor dy = random_tensor({1, 8, 40, 36}, rng);
    for (Precision precision : {Precision::fp32, Precision::bf16}) {
      auto layer = make_test_layer(layer_spec("conv", options));
      layer->set_precision(precision);
      Tensor y(layer->reshape({x.shape()}));
      layer->forward({&x}, y, Mode::train);
      Tensor dx(x.shape());
      for (Param* p : layer->params()) p->grad.zero();
      layer->backward({&x}, y, dy, {&dx});
      outputs[precision == Precision::bf16] = y;
      weight_grads[precision == Precision::bf16] = layer->params()[0]->grad;
    }
    int64_t output_differ = 0, grad_differ = 0;
    for (int64_t i = 0; i < outputs[0].numel(); ++i) output_differ += outputs[0][i] != outputs[1][i];
    for (int64_t i = 0; i < weight_grads[0].numel(); ++i) grad_differ += weight_grads[0][i] != weight_grads[1][i];
    if (in_bf16) {
      CHECK(output_differ > 0);
      CHECK(grad_differ > 0);
    } else {
      CHECK(output_differ == 0);
      CHECK(grad_differ == 0);
    }
  }
}

TEST_CASE("conv matches PyTorch Conv2d (forward, grad input, weight, bias)", "[conv][parity]") {
  for (const char* name : {"basic", "rect_stride", "dilation", "groups", "pointwise", "stride_gt_kernel"})
    check_conv_parity(std::string("conv_") + name + ".safetensors");
}

TEST_CASE("conv_output_size matches PyTorch", "[conv]") {
  check_size_table("conv_sizes.safetensors", [](int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, int64_t) {
    return conv_output_size(in, k, s, p, d);
  });
  // a kernel that does not fit gives < 1 (floor, not truncation toward zero)
  CHECK(conv_output_size(2, 3, 2, 0, 1) < 1);
  CHECK(conv_output_size(5, 3, 1, 0, 3) < 1);
  CHECK(conv_output_size(1, 3, 1, 1, 1) == 1);
}

TEST_CASE("conv weights are allocated at reshape and initialised from one seed", "[conv]") {
  const json spec =
      layer_spec("conv", {{"num_output", 4}, {"kernel", 3}, {"bias_init", {{"type", "constant"}, {"value", 0.5}}}});
  auto early = create_layer(spec, "early");
  auto late = create_layer(spec, "late");
  CHECK(early->params()[0]->data.numel() == 0);  // in-channels unknown before reshape
  std::mt19937_64 rng_early(5), rng_late(5);
  early->init_params(rng_early);  // before reshape: initialised when allocated
  early->reshape({{1, 3, 6, 6}});
  late->reshape({{1, 3, 6, 6}});
  late->init_params(rng_late);
  const Tensor& w = early->params()[0]->data;
  REQUIRE(w.shape() == Shape{4, 3, 3, 3});
  REQUIRE(late->params()[0]->data.shape() == w.shape());
  double sum_sq = 0;
  for (int64_t i = 0; i < w.numel(); ++i) {
    REQUIRE(w[i] == late->params()[0]->data[i]);
    sum_sq += static_cast<double>(w[i]) * w[i];
  }
  CHECK(sum_sq > 0);  // msra, not zeros
  CHECK(early->params()[1]->data[3] == 0.5f);
  CHECK(early->params()[0]->name == "c.weight");
  CHECK(early->params()[1]->name == "c.bias");
  CHECK(early->params()[1]->lr_mult == 2.f);
  CHECK(early->params()[1]->decay_mult == 0.f);

  // a new spatial size keeps the (possibly loaded) weight; new channels reallocate it
  early->params()[0]->data[0] = 42.f;
  early->reshape({{2, 3, 9, 7}});
  CHECK(early->params()[0]->data[0] == 42.f);
  early->reshape({{1, 5, 6, 6}});
  CHECK(early->params()[0]->data.shape() == Shape{4, 5, 3, 3});
  CHECK(early->params()[0]->grad.shape() == Shape{4, 5, 3, 3});
}

TEST_CASE("conv coordinate map and FLOPs", "[conv]") {
  auto map_of = [](const json& options) {
    auto layer = build(options);
    layer->reshape({{1, 2, 40, 40}});
    return layer->coord_map();
  };
  const CoordMap same = map_of({{"num_output", 1}, {"kernel", 3}, {"pad", 1}});
  CHECK(same.scale[0] == 1.0);
  CHECK(same.shift[0] == 0.0);
  CHECK(map_of({{"num_output", 1}, {"kernel", 3}, {"pad", 100}}).shift[1] == 99.0);  // conv1_1
  const CoordMap strided = map_of({{"num_output", 1}, {"kernel", {2, 5}}, {"stride", 2}, {"dilation", {1, 2}}});
  CHECK(strided.scale[0] == 0.5);
  CHECK(strided.shift[0] == -0.25);  // (0 - (2-1)/2) / 2
  CHECK(strided.shift[1] == -2.0);   // (0 - 2*(5-1)/2) / 2

  auto layer = build({{"num_output", 6}, {"kernel", 3}, {"pad", 1}, {"groups", 2}});
  layer->reshape({{2, 4, 6, 6}});
  CHECK(layer->forward_flops() == 2.0 * 2 * 6 * 36 * 2 * 9);  // 2 * N*Cout*OH*OW*(Cin/g)*kh*kw
}

TEST_CASE("conv option errors name the JSON path", "[conv][errors]") {
  CHECK_THROWS_WITH(build({{"num_output", 2}, {"kernel", -1}}),
                    Contains("layers[3].kernel: expected positive integer, got -1"));
  CHECK_THROWS_WITH(build({{"num_output", 0}, {"kernel", 3}}),
                    Contains("layers[3].num_output: expected positive integer, got 0"));
  CHECK_THROWS_WITH(build({{"kernel", 3}}), Contains("layers[3].num_output: missing required key"));
  CHECK_THROWS_WITH(build({{"num_output", 2}}), Contains("layers[3].kernel: missing required key"));
  CHECK_THROWS_WITH(build({{"num_output", 2}, {"kernel", 3}, {"stride", 0}}), Contains("layers[3].stride"));
  CHECK_THROWS_WITH(build({{"num_output", 2}, {"kernel", 3}, {"pad", {1, -1}}}),
                    Contains("layers[3].pad: expected non-negative integer, got -1"));
  CHECK_THROWS_WITH(build({{"num_output", 2}, {"kernel", {3, 3, 3}}}),
                    Contains("layers[3].kernel: expected an integer or [h, w]"));
  CHECK_THROWS_WITH(build({{"num_output", 2}, {"kernel", 3}, {"groups", 0}}), Contains("layers[3].groups"));
  CHECK_THROWS_WITH(build({{"num_output", 2}, {"kernel", 3}, {"bias", 1}}), Contains("layers[3].bias"));
  CHECK_THROWS_WITH(build({{"num_output", 2}, {"kernel", 3}, {"lr_mult", -1}}), Contains("layers[3].lr_mult"));
  CHECK_THROWS_WITH(build({{"num_output", 2}, {"kernel", 3}, {"weight_init", "bilinear"}}),
                    Contains("layers[3].weight_init.type: unknown value \"bilinear\""));
  CHECK_THROWS_WITH(build({{"num_output", 2}, {"kernel", 3}, {"strde", 2}}),
                    Contains("layers[3].strde: unknown key") && Contains("did you mean \"stride\"?"));
  CHECK_THROWS_WITH(build({{"num_output", 2}, {"kernel", 3}, {"weight_int", "xavier"}}),
                    Contains("did you mean \"weight_init\"?"));
}

TEST_CASE("conv shape errors name the layer and the shapes", "[conv][errors]") {
  CHECK_THROWS_WITH(build({{"num_output", 4}, {"kernel", 3}, {"groups", 2}})->reshape({{1, 3, 5, 5}}),
                    Contains("layer 'conv3' (conv)") && Contains("groups = 2 must divide") &&
                        Contains("x [1, 3, 5, 5]"));
  CHECK_THROWS_WITH(build({{"num_output", 3}, {"kernel", 3}, {"groups", 2}})->reshape({{1, 4, 5, 5}}),
                    Contains("num_output (3)"));
  CHECK_THROWS_WITH(build({{"num_output", 2}, {"kernel", 7}, {"pad", 1}})->reshape({{1, 1, 4, 9}}),
                    Contains("layer 'conv3' (conv): the dilated kernel does not fit the padded input") &&
                        Contains("kernel 7x7") && Contains("x [1, 1, 4, 9]"));
  CHECK_THROWS_WITH(build({{"num_output", 2}, {"kernel", 3}, {"dilation", 3}})->reshape({{1, 1, 6, 6}}),
                    Contains("dilation 3x3"));
  CHECK_THROWS_WITH(build({{"num_output", 2}, {"kernel", 3}})->reshape({{1, 5, 5}}), Contains("4-d"));
  CHECK_THROWS_AS(build({{"num_output", 2}, {"kernel", 3}})->reshape({{1, 1, 5, 5}, {1, 1, 5, 5}}), Error);
}
