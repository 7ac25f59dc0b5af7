#include <catch2/catch.hpp>

#include <cmath>

#include "fcn/core/error.hpp"
#include "fcn/layers/avg_pool.hpp"
#include "gradcheck.hpp"
#include "layer_parity.hpp"
#include "recording_emitter.hpp"

using namespace fcn;
using namespace fcn::testing;

namespace {

json avg_spec(json options) {
  options["name"] = "avg";
  options["type"] = "avg_pool";
  options["inputs"] = {"x"};
  return options;
}

struct Window {
  int64_t kernel, stride, pad;
};

// Caffe's AVE pooling (pooling_layer.cpp, Forward_cpu), written out in
// double: the output size rounds up and drops a last window starting in the
// padding; pool_size is taken with hend = min(hstart + kernel, height + pad)
// before hstart and hend are clipped to the image.
std::vector<double> caffe_ave_pool(const Tensor& x, Window wh, Window ww, int64_t& pooled_h, int64_t& pooled_w) {
  const int64_t height = x.h(), width = x.w(), planes = x.n() * x.c();
  auto pooled = [](int64_t size, const Window& w) {
    int64_t out = static_cast<int64_t>(std::ceil(static_cast<double>(size + 2 * w.pad - w.kernel) / w.stride)) + 1;
    if (w.pad && (out - 1) * w.stride >= size + w.pad) --out;
    return out;
  };
  pooled_h = pooled(height, wh);
  pooled_w = pooled(width, ww);
  std::vector<double> top(static_cast<size_t>(planes * pooled_h * pooled_w));
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t ph = 0; ph < pooled_h; ++ph)
      for (int64_t pw = 0; pw < pooled_w; ++pw) {
        int64_t hstart = ph * wh.stride - wh.pad, wstart = pw * ww.stride - ww.pad;
        int64_t hend = std::min(hstart + wh.kernel, height + wh.pad);
        int64_t wend = std::min(wstart + ww.kernel, width + ww.pad);
        const int64_t pool_size = (hend - hstart) * (wend - wstart);
        hstart = std::max<int64_t>(hstart, 0);
        wstart = std::max<int64_t>(wstart, 0);
        hend = std::min(hend, height);
        wend = std::min(wend, width);
        double sum = 0;
        for (int64_t h = hstart; h < hend; ++h)
          for (int64_t w = wstart; w < wend; ++w) sum += x[(p * height + h) * width + w];
        top[(p * pooled_h + ph) * pooled_w + pw] = sum / pool_size;
      }
  return top;
}

// PyTorch's avg_pool2d without padding counted (aten's AvgPoolKernel, in
// double): the divisor is the number of input pixels in the clipped window.
std::vector<double> torch_avg_pool_exclude_pad(const Tensor& x, Window wh, Window ww, int64_t out_h, int64_t out_w) {
  const int64_t height = x.h(), width = x.w(), planes = x.n() * x.c();
  std::vector<double> y(static_cast<size_t>(planes * out_h * out_w));
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t oh = 0; oh < out_h; ++oh)
      for (int64_t ow = 0; ow < out_w; ++ow) {
        const int64_t h0 = std::max<int64_t>(oh * wh.stride - wh.pad, 0);
        const int64_t h1 = std::min(oh * wh.stride - wh.pad + wh.kernel, height);
        const int64_t w0 = std::max<int64_t>(ow * ww.stride - ww.pad, 0);
        const int64_t w1 = std::min(ow * ww.stride - ww.pad + ww.kernel, width);
        double sum = 0;
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t w = w0; w < w1; ++w) sum += x[(p * height + h) * width + w];
        y[(p * out_h + oh) * out_w + ow] = sum / static_cast<double>((h1 - h0) * (w1 - w0));
      }
  return y;
}

Tensor run_forward(Layer& layer, const Tensor& x) {
  Tensor y(layer.reshape({x.shape()}));
  layer.forward({&x}, y, Mode::test);
  return y;
}

void check_against(const Tensor& y, const std::vector<double>& expected, double tolerance) {
  REQUIRE(static_cast<size_t>(y.numel()) == expected.size());
  for (int64_t i = 0; i < y.numel(); ++i) {
    INFO("output " << i);
    REQUIRE(y[i] == Approx(expected[static_cast<size_t>(i)]).epsilon(tolerance).margin(1e-6));
  }
}

}  // namespace

TEST_CASE("avg_pool matches PyTorch avg_pool2d forward and backward") { check_parity("avg_pool_parity.safetensors"); }

TEST_CASE("avg_pool's defaults are Caffe's AVE pooling, partial ceil-mode windows included") {
  struct Row {
    Shape shape;
    Window h, w;
  };
  // each has a last window that reaches past the padded input (a divisor
  // clipped to height + pad), and the second a window Caffe and PyTorch drop
  const std::vector<Row> rows = {
      {{1, 2, 8, 10}, {3, 2, 1}, {3, 2, 1}},
      {{1, 2, 5, 6}, {2, 2, 1}, {3, 2, 1}},
      {{2, 3, 7, 9}, {2, 2, 0}, {3, 3, 0}},
      {{1, 1, 6, 7}, {3, 2, 1}, {2, 1, 1}},
  };
  for (const Row& row : rows) {
    INFO("input " << shape_str(row.shape) << " kernel " << row.h.kernel << "x" << row.w.kernel << " stride "
                  << row.h.stride << "x" << row.w.stride << " pad " << row.h.pad << "x" << row.w.pad);
    auto layer = make_test_layer(avg_spec({{"kernel", {row.h.kernel, row.w.kernel}},
                                           {"stride", {row.h.stride, row.w.stride}},
                                           {"pad", {row.h.pad, row.w.pad}}}));
    std::mt19937_64 rng(3);
    const Tensor x = random_tensor(row.shape, rng);
    const Tensor y = run_forward(*layer, x);
    int64_t pooled_h = 0, pooled_w = 0;
    const std::vector<double> expected = caffe_ave_pool(x, row.h, row.w, pooled_h, pooled_w);
    CHECK(y.shape() == Shape{row.shape[0], row.shape[1], pooled_h, pooled_w});
    check_against(y, expected, 1e-6);
  }
}

TEST_CASE("avg_pool at photo size against float64 references: Caffe's (padding counted), PyTorch's without, global") {
  std::mt19937_64 rng(21);
  const Tensor x = random_tensor({1, 21, 375, 500}, rng, -50.f, 150.f);
  {
    auto layer = make_test_layer(avg_spec({{"kernel", 3}, {"stride", 2}, {"pad", 1}}));
    const Tensor y = run_forward(*layer, x);
    int64_t pooled_h = 0, pooled_w = 0;
    const std::vector<double> expected = caffe_ave_pool(x, {3, 2, 1}, {3, 2, 1}, pooled_h, pooled_w);
    REQUIRE(y.shape() == Shape{1, 21, 188, 251});  // 375 + 2 - 3 = 374: every window whole; 499: the last partial
    check_against(y, expected, 1e-5);
  }
  {
    auto layer = make_test_layer(avg_spec({{"kernel", {4, 3}}, {"stride", {3, 2}}, {"pad", {2, 1}},
                                           {"count_include_pad", false}}));
    const Tensor y = run_forward(*layer, x);
    REQUIRE(y.shape() == Shape{1, 21, pool_output_size(375, 4, 3, 2, true), pool_output_size(500, 3, 2, 1, true)});
    check_against(y, torch_avg_pool_exclude_pad(x, {4, 3, 2}, {3, 2, 1}, y.h(), y.w()), 1e-5);
  }
  {
    auto layer = make_test_layer(avg_spec({{"global", true}}));
    const Tensor y = run_forward(*layer, x);
    REQUIRE(y.shape() == Shape{1, 21, 1, 1});
    std::vector<double> mean(21, 0.0);
    for (int64_t c = 0; c < 21; ++c) {
      for (int64_t i = 0; i < 375 * 500; ++i) mean[c] += x[c * 375 * 500 + i];
      mean[c] /= 375.0 * 500.0;
    }
    check_against(y, mean, 1e-5);
  }
}

TEST_CASE("avg_pool backward spreads each output gradient over its window by the forward's divisor") {
  // dx = sum over windows of dy / divisor: check it against the forward's own
  // linear map, column by column, for both divisors with partial windows
  for (bool include_pad : {true, false}) {
    INFO("count_include_pad " << include_pad);
    auto layer = make_test_layer(
        avg_spec({{"kernel", 3}, {"stride", 2}, {"pad", 1}, {"count_include_pad", include_pad}}));
    Tensor x({1, 1, 4, 6});
    Tensor y(layer->reshape({x.shape()}));
    std::mt19937_64 rng(9);
    const Tensor dy = random_tensor(y.shape(), rng);
    Tensor dx(x.shape());
    layer->backward({&x}, y, dy, {&dx});
    for (int64_t i = 0; i < x.numel(); ++i) {
      x.zero();
      x[i] = 1.f;
      layer->forward({&x}, y, Mode::test);
      double expected = 0;  // (J^T dy)_i with J's column i = forward(e_i)
      for (int64_t o = 0; o < y.numel(); ++o) expected += static_cast<double>(y[o]) * dy[o];
      CHECK(dx[i] == Approx(expected).margin(1e-6));
    }
  }
}

TEST_CASE("avg_pool gradient check") {
  struct Row {
    json options;
    Shape shape;
  };
  const std::vector<Row> rows = {
      {{{"kernel", 2}}, {1, 2, 5, 7}},  // ceil keeps partial edge windows
      {{{"kernel", 3}, {"stride", 2}, {"pad", 1}}, {2, 2, 8, 9}},
      {{{"kernel", 3}, {"stride", 2}, {"pad", 1}, {"count_include_pad", false}}, {1, 2, 8, 9}},
      {{{"kernel", 2}, {"stride", 2}, {"pad", 1}}, {1, 2, 5, 5}},  // dropped last window
      {{{"kernel", 2}, {"stride", 3}}, {1, 3, 8, 7}},              // stride > kernel: gaps
      {{{"kernel", 3}, {"stride", 2}, {"ceil_mode", false}}, {1, 2, 8, 9}},
      {{{"kernel", {3, 2}}, {"stride", {1, 2}}, {"pad", {1, 1}}}, {1, 2, 5, 6}},  // rectangular, overlapping
      {{{"global", true}}, {2, 3, 4, 5}},
  };
  for (const Row& row : rows) {
    INFO(row.options.dump() << " on " << shape_str(row.shape));
    auto layer = make_test_layer(avg_spec(row.options));
    std::mt19937_64 rng(11);
    std::vector<Tensor> inputs{random_tensor(row.shape, rng)};
    check_gradients(*layer, inputs);
  }
}

TEST_CASE("avg_pool global: the whole plane, whatever its size; coord_map, input extent and FLOPs") {
  auto layer = make_test_layer(avg_spec({{"global", true}}));
  CHECK(layer->reshape({{2, 3, 7, 9}}) == Shape{2, 3, 1, 1});
  CHECK(layer->input_extent() == std::array<double, 2>{7, 9});
  CHECK(layer->forward_flops() == 2.0 * 3 * (7 * 9 + 1));
  CHECK(layer->reshape({{1, 3, 4, 2}}) == Shape{1, 3, 1, 1});
  CHECK(layer->input_extent() == std::array<double, 2>{4, 2});

  auto windowed = make_test_layer(avg_spec({{"kernel", {3, 2}}, {"stride", {2, 4}}, {"pad", {1, 0}}}));
  const Shape out = windowed->reshape({{2, 5, 9, 11}});
  CHECK(out == Shape{2, 5, pool_output_size(9, 3, 2, 1, true), pool_output_size(11, 2, 4, 0, true)});
  CHECK(windowed->input_extent() == std::array<double, 2>{3, 2});
  // one add per window element and one multiply per output
  CHECK(windowed->forward_flops() == static_cast<double>(shape_numel(out)) * (3 * 2 + 1));
  const CoordMap map = windowed->coord_map();
  CHECK(map.scale[0] == Approx(0.5));
  CHECK(map.shift[0] == Approx(0.0));  // (1 - 1) / 2
  CHECK(map.scale[1] == Approx(0.25));
  CHECK(map.shift[1] == Approx(-0.125));  // (0 - 0.5) / 4
  CHECK(!windowed->backward_needs_inputs());
  CHECK(!windowed->backward_needs_output());
  CHECK(windowed->in_place_input() == -1);
}

TEST_CASE("avg_pool spec errors name the key; too-small inputs name the layer") {
  CHECK_THROWS_WITH(make_test_layer(avg_spec({{"stride", 2}})), Catch::Contains("test.kernel"));
  CHECK_THROWS_WITH(make_test_layer(avg_spec({{"kernel", 3}, {"pad", 2}})),
                    Catch::Contains("test.pad") && Catch::Contains("kernel/2"));
  for (const char* key : {"kernel", "stride", "pad", "ceil_mode"})
    CHECK_THROWS_WITH(make_test_layer(avg_spec({{"global", true}, {key, key == std::string("ceil_mode") ? json(true) : json(2)}})),
                      Catch::Contains(std::string("test.") + key) && Catch::Contains("global"));
  CHECK_THROWS_WITH(make_test_layer(avg_spec({{"kernel", 2}, {"count_include_pads", true}})),
                    Catch::Contains("did you mean \"count_include_pad\""));
  CHECK_THROWS_WITH(make_test_layer(avg_spec({{"kernel", 2}, {"count_include_pad", 1}})),
                    Catch::Contains("test.count_include_pad"));
  auto big = make_test_layer(avg_spec({{"kernel", 5}}));
  CHECK_THROWS_WITH(big->reshape({{1, 1, 3, 8}}),
                    Catch::Contains("'avg' (avg_pool)") && Catch::Contains("[1, 1, 3, 8]"));
}

TEST_CASE("ceil_mode_drops_window and ceil_mode_may_drop_window agree with the ceil-mode rule, input by input") {
  for (int64_t kernel = 1; kernel <= 6; ++kernel)
    for (int64_t stride = 1; stride <= 6; ++stride)
      for (int64_t pad = 0; pad <= kernel / 2; ++pad) {
        INFO("kernel " << kernel << " stride " << stride << " pad " << pad);
        bool some = false;
        for (int64_t in = std::max<int64_t>(1, kernel - 2 * pad); in < 60; ++in) {
          // ONNX's (and Caffe's, before its drop) ceil count against PyTorch's
          const auto kept = static_cast<int64_t>(std::ceil(static_cast<double>(in + 2 * pad - kernel) / stride)) + 1;
          const bool drops = pool_output_size(in, kernel, stride, pad, true) < kept;
          INFO("input " << in);
          CHECK(ceil_mode_drops_window(in, kernel, stride, pad) == drops);
          some = some || drops;
        }
        CHECK(ceil_mode_may_drop_window(kernel, stride, pad) == some);
      }
}

namespace {

RecordingEmitter emitted(const json& options, bool dynamic, const Shape& input) {
  auto layer = make_test_layer(avg_spec(options));
  layer->reshape({input});
  RecordingEmitter onnx({{"x", input}}, dynamic);
  layer->emit_onnx(onnx, {"x"}, "avg");
  return onnx;
}

}  // namespace

TEST_CASE("avg_pool's ONNX form: AveragePool without padding counted, a mean Conv or a divisor map with it") {
  SECTION("padding counted, no partial window: a depthwise Conv with weights 1/(kh*kw)") {
    // 9 + 2 - 3 = 8 is even: ceil and floor agree at this size; floor mode everywhere
    for (const json& options : {json{{"kernel", 3}, {"stride", 2}, {"pad", 1}},
                                json{{"kernel", {3, 2}}, {"stride", 2}, {"pad", 1}, {"ceil_mode", false}}}) {
      INFO(options.dump());
      const bool dynamic = options.contains("ceil_mode");
      const auto onnx = emitted(options, dynamic, {1, 2, 9, 9});
      REQUIRE(onnx.nodes.size() == 1);
      const auto& conv = onnx.nodes[0];
      CHECK(conv.op == "Conv");
      CHECK(conv.get("group") == 2);
      CHECK(conv.ints("pads") == std::vector<int64_t>{1, 1, 1, 1});
      CHECK(conv.ints("strides") == std::vector<int64_t>{2, 2});
      const auto kernel = conv.ints("kernel_shape");
      const std::vector<float>& weights = onnx.floats.at(conv.inputs[1]);
      CHECK(weights.size() == static_cast<size_t>(2 * kernel[0] * kernel[1]));
      for (float w : weights) CHECK(w == Approx(1.0 / static_cast<double>(kernel[0] * kernel[1])));
    }
  }
  SECTION("padding counted with partial windows: the unpadded average times pixels / padded divisor, fixed size only") {
    const json options = {{"kernel", 3}, {"stride", 2}, {"pad", 1}};
    const auto onnx = emitted(options, false, {1, 2, 8, 9});
    REQUIRE(onnx.nodes.size() == 2);
    CHECK(onnx.nodes[0].op == "AveragePool");
    CHECK(onnx.nodes[0].get("ceil_mode") == 1);
    CHECK(onnx.nodes[0].get("count_include_pad") == 0);
    CHECK(onnx.nodes[0].ints("pads") == std::vector<int64_t>{1, 1, 1, 1});
    CHECK(onnx.nodes[1].op == "Mul");
    // output 5x5; rows: window 4 is [7, 10) over rows 0..7 padded to -1..8: 1 pixel, divisor 2;
    // columns: window 4 is [7, 10) over 0..8 padded to -1..9: 2 pixels, divisor 3; window 0: 2 of 3
    const std::vector<float>& ratio = onnx.floats.at(onnx.nodes[1].inputs[1]);
    REQUIRE(ratio.size() == 2 * 5 * 5);
    CHECK(ratio[0] == Approx(4.0 / 9));
    CHECK(ratio[6] == Approx(1.0));
    CHECK(ratio[1 * 5 + 4] == Approx(3.0 * 2 / (3 * 3)));
    CHECK(ratio[4 * 5 + 2] == Approx(1.0 * 3 / (2 * 3)));
    CHECK(ratio[25 + 4 * 5 + 4] == Approx(1.0 * 2 / (2 * 3)));
    CHECK_THROWS_WITH(emitted(options, true, {1, 2, 8, 9}),
                      Catch::Contains("cannot export to ONNX: layer 'avg'") && Catch::Contains("--size"));
  }
  SECTION("padding not counted, or no padding: AveragePool itself, ceil mode where windows are partial") {
    const auto excluded = emitted({{"kernel", 3}, {"stride", 2}, {"pad", 1}, {"count_include_pad", false}}, true,
                                  {1, 2, 8, 9});
    REQUIRE(excluded.nodes.size() == 1);
    CHECK(excluded.nodes[0].op == "AveragePool");
    CHECK(excluded.nodes[0].get("ceil_mode") == 1);
    CHECK(excluded.nodes[0].get("count_include_pad") == 0);
    CHECK(excluded.nodes[0].ints("pads") == std::vector<int64_t>{1, 1, 1, 1});
    const auto unpadded = emitted({{"kernel", 2}}, false, {1, 2, 7, 7});
    REQUIRE(unpadded.nodes.size() == 1);
    CHECK(unpadded.nodes[0].get("ceil_mode") == 1);
    CHECK(unpadded.nodes[0].get("count_include_pad") == 0);  // the same divisor without padding
    CHECK(emitted({{"kernel", 2}}, false, {1, 2, 8, 8}).nodes[0].get("ceil_mode") == 0);
  }
  SECTION("a window PyTorch drops: refused where it can happen, exported where it does not") {
    const json dropping = {{"kernel", 2}, {"stride", 2}, {"pad", 1}, {"count_include_pad", false}};
    CHECK_THROWS_WITH(emitted(dropping, false, {1, 2, 5, 5}),
                      Catch::Contains("cannot export to ONNX: layer 'avg'") && Catch::Contains("drops a last window"));
    CHECK_THROWS_WITH(emitted(dropping, true, {1, 2, 6, 6}), Catch::Contains("at some input sizes"));
    CHECK(emitted(dropping, false, {1, 2, 6, 6}).nodes.back().op == "AveragePool");
    json floor = dropping;
    floor["ceil_mode"] = false;
    CHECK(emitted(floor, true, {1, 2, 5, 5}).nodes.back().get("ceil_mode") == 0);
  }
  SECTION("global: GlobalAveragePool") {
    const auto onnx = emitted({{"global", true}}, true, {1, 2, 5, 7});
    REQUIRE(onnx.nodes.size() == 1);
    CHECK(onnx.nodes[0].op == "GlobalAveragePool");
  }
}
