#include <catch2/catch.hpp>

#include <cmath>
#include <map>

#include "fcn/graph/graph.hpp"
#include "fcn/layers/resize.hpp"
#include "gradcheck.hpp"
#include "layer_parity.hpp"

using namespace fcn;
using namespace fcn::testing;

namespace {

json resize_spec(json options, std::vector<std::string> inputs = {"x"}) {
  options["name"] = "up";
  options["type"] = "resize";
  options["inputs"] = inputs;
  return options;
}

// PyTorch's bilinear source mapping, written out in double from
// F.interpolate's definition (independently of src/cpu/resize.cpp): output
// pixel o reads i0 and i1 = min(i0 + 1, in - 1) with weights 1 - l and l.
struct Tap {
  int64_t i0, i1;
  double l;
};

Tap reference_tap(int64_t o, int64_t in, int64_t out, bool align_corners, double scale /* 0: none */) {
  double src;
  if (in == out) {
    src = static_cast<double>(o);
  } else if (align_corners) {
    src = out > 1 ? o * (in - 1.0) / (out - 1.0) : 0.0;
  } else {
    const double step = scale > 0 ? 1.0 / scale : static_cast<double>(in) / out;
    src = std::max((o + 0.5) * step - 0.5, 0.0);
  }
  const int64_t i0 = static_cast<int64_t>(std::floor(src));
  return {i0, std::min(i0 + 1, in - 1), src - i0};
}

struct Reference {
  std::vector<double> y, dx;
};

// Forward, and backward as the transpose of the same 2x2 taps, in double.
Reference reference_resize(const Tensor& x, int64_t out_h, int64_t out_w, bool align_corners, const Tensor& dy,
                           double scale_h = 0, double scale_w = 0) {
  const int64_t planes = x.n() * x.c(), in_h = x.h(), in_w = x.w();
  Reference r{std::vector<double>(planes * out_h * out_w), std::vector<double>(x.numel(), 0.0)};
  for (int64_t oh = 0; oh < out_h; ++oh) {
    const Tap th = reference_tap(oh, in_h, out_h, align_corners, scale_h);
    for (int64_t ow = 0; ow < out_w; ++ow) {
      const Tap tw = reference_tap(ow, in_w, out_w, align_corners, scale_w);
      const int64_t index[4] = {th.i0 * in_w + tw.i0, th.i0 * in_w + tw.i1, th.i1 * in_w + tw.i0,
                                th.i1 * in_w + tw.i1};
      const double weight[4] = {(1 - th.l) * (1 - tw.l), (1 - th.l) * tw.l, th.l * (1 - tw.l), th.l * tw.l};
      for (int64_t p = 0; p < planes; ++p) {
        const int64_t o = (p * out_h + oh) * out_w + ow;
        for (int k = 0; k < 4; ++k) {
          r.y[o] += weight[k] * x[p * in_h * in_w + index[k]];
          r.dx[p * in_h * in_w + index[k]] += weight[k] * dy[o];
        }
      }
    }
  }
  return r;
}

// max |actual - expected| / max |expected|
double relative_error(const Tensor& actual, const std::vector<double>& expected) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    diff = std::max(diff, std::fabs(actual[static_cast<int64_t>(i)] - expected[i]));
    scale = std::max(scale, std::fabs(expected[i]));
  }
  REQUIRE(scale > 0);
  return diff / scale;
}

// Records what a layer emits; `dynamic` and the blob shapes are given.
class RecordingEmitter : public OnnxEmitter {
 public:
  struct Node {
    std::string op, name;
    std::vector<std::string> inputs;
    std::string output;
    std::vector<OnnxAttribute> attributes;
  };
  RecordingEmitter(bool dynamic, std::map<std::string, Shape> shapes) : dynamic_(dynamic), shapes_(std::move(shapes)) {}
  bool dynamic() const override { return dynamic_; }
  const Shape& blob_shape(const std::string& blob) const override { return shapes_.at(blob); }
  void node(const std::string& op, const std::string& name, const std::vector<std::string>& inputs,
            const std::string& output, const std::vector<OnnxAttribute>& attributes) override {
    nodes.push_back({op, name, inputs, output, attributes});
  }
  std::string float_tensor(const std::string& name, const Shape& shape, const float* data) override {
    floats[name] = std::vector<float>(data, data + shape_numel(shape));
    return name;
  }
  std::string int64_tensor(const std::string& name, const std::vector<int64_t>& values) override {
    ints[name] = values;
    return name;
  }
  void alias(const std::string& output, const std::string& value) override {}

  std::vector<Node> nodes;
  std::map<std::string, std::vector<float>> floats;
  std::map<std::string, std::vector<int64_t>> ints;

 private:
  bool dynamic_;
  std::map<std::string, Shape> shapes_;
};

std::string string_attribute(const RecordingEmitter::Node& node, const std::string& name) {
  for (const auto& a : node.attributes)
    if (a.name == name) return std::get<std::string>(a.value);
  return "";
}

}  // namespace

TEST_CASE("resize matches F.interpolate bilinear: x2, x8, 1.7, 0.45, [h, w] scales, ref, size, 1-pixel axes") {
  check_parity("resize_parity.safetensors");
}

TEST_CASE("resize output size is PyTorch's floor(in * scale) in double") {
  CHECK(resize_output_size(5, 1.7) == 8);
  CHECK(resize_output_size(11, 0.45) == 4);
  CHECK(resize_output_size(10, 0.7) == 7);  // 10 * 0.7 rounds to 7.0 in double
  CHECK(resize_output_size(47, 8) == 376);
  CHECK(resize_output_size(3, 0.3) == 0);
  auto layer = make_test_layer(resize_spec({{"scale", {1.7, 0.45}}}));
  CHECK(layer->reshape({{2, 3, 5, 11}}) == Shape{2, 3, 8, 4});
}

TEST_CASE("resize source steps: the given factor, not in / out; (in-1)/(out-1) with align_corners") {
  CHECK(cpu::resize_source_step(5, 8, false, 1.7) == Approx(1 / 1.7));
  CHECK(cpu::resize_source_step(5, 8, false, std::nullopt) == Approx(5.0 / 8));
  CHECK(cpu::resize_source_step(5, 8, true, 1.7) == Approx(4.0 / 7));
  CHECK(cpu::resize_source_step(5, 1, true, std::nullopt) == 0);
  const cpu::LinearAxis copied = cpu::linear_axis(10, 10, 1 / 1.05, false);
  for (int64_t o = 0; o < 10; ++o) CHECK((copied.index0[o] == o && copied.lambda[o] == 0.f));
}

TEST_CASE("resize gradient check over scales, sizes, ref and align_corners") {
  struct Row {
    json options;
    Shape x;
    Shape ref;  // empty: no ref input
  };
  const std::vector<Row> rows = {
      {{{"scale", 2}}, {2, 2, 3, 4}, {}},
      {{{"scale", 1.7}, {"align_corners", true}}, {1, 2, 4, 3}, {}},
      {{{"scale", [] { return json{0.45, 2.5}; }()}}, {1, 1, 9, 3}, {}},
      {{{"size", {1, 5}}}, {1, 2, 4, 3}, {}},
      {json::object(), {1, 2, 3, 5}, {1, 1, 7, 4}},
      {{{"align_corners", true}}, {2, 1, 6, 5}, {1, 3, 3, 9}},
  };
  for (const Row& row : rows) {
    INFO(row.options.dump() << (row.ref.empty() ? "" : " with ref"));
    auto layer = make_test_layer(resize_spec(row.options, row.ref.empty() ? std::vector<std::string>{"x"}
                                                                            : std::vector<std::string>{"x", "ref"}));
    std::mt19937_64 rng(4);
    std::vector<Tensor> inputs{random_tensor(row.x, rng)};
    GradCheckOptions options;
    if (!row.ref.empty()) {
      inputs.push_back(random_tensor(row.ref, rng));
      options.skip_inputs = {1};
    }
    check_gradients(*layer, inputs, options);
  }
}

TEST_CASE("resize gives ref no gradient, and adds into x's") {
  auto layer = make_test_layer(resize_spec(json::object(), {"x", "ref"}));
  Tensor x({1, 1, 2, 2}), ref({1, 1, 3, 3}), dx({1, 1, 2, 2}), dref({1, 1, 3, 3});
  Tensor y(layer->reshape({x.shape(), ref.shape()}));
  Tensor dy(y.shape());
  dy.fill(1.f);
  dx.fill(2.f);
  dref.fill(7.f);
  layer->backward({&x, &ref}, y, dy, {&dx, &dref});
  // each output pixel hands out weights summing to 1: 9 outputs over 4 inputs
  double total = 0;
  for (int64_t i = 0; i < dx.numel(); ++i) total += dx[i] - 2.0;
  CHECK(total == Approx(9.0));
  for (int64_t i = 0; i < dref.numel(); ++i) CHECK(dref[i] == 7.f);
}

TEST_CASE("resize at photo size: 21 channels 47x63 -> 375x500 against a float64 reference, forward and backward") {
  std::mt19937_64 rng(21);
  const Tensor x = random_tensor({1, 21, 47, 63}, rng);
  const Tensor ref({1, 1, 375, 500});
  const Tensor dy = random_tensor({1, 21, 375, 500}, rng);
  for (const bool align_corners : {false, true}) {
    INFO("align_corners " << align_corners);
    auto layer = make_test_layer(resize_spec({{"align_corners", align_corners}}, {"x", "ref"}));
    Tensor y(layer->reshape({x.shape(), ref.shape()}));
    REQUIRE(y.shape() == Shape{1, 21, 375, 500});
    layer->forward({&x, &ref}, y, Mode::test);
    Tensor dx(x.shape());
    layer->backward({&x, &ref}, y, dy, {&dx, nullptr});
    const Reference expected = reference_resize(x, 375, 500, align_corners, dy);
    CHECK(relative_error(y, expected.y) < 1e-6);
    CHECK(relative_error(dx, expected.dx) < 1e-5);
  }
  // a non-integer factor, mapped by 1 / scale: 47x63 * 7.97 -> 374x502
  auto layer = make_test_layer(resize_spec({{"scale", 7.97}}));
  Tensor y(layer->reshape({x.shape()}));
  REQUIRE(y.shape() == Shape{1, 21, 374, 502});
  layer->forward({&x}, y, Mode::test);
  const Tensor grad = random_tensor(y.shape(), rng);
  Tensor dx(x.shape());
  layer->backward({&x}, y, grad, {&dx});
  const Reference expected = reference_resize(x, 374, 502, false, grad, 7.97, 7.97);
  CHECK(relative_error(y, expected.y) < 1e-6);
  CHECK(relative_error(dx, expected.dx) < 1e-5);
}

TEST_CASE("resize coord_map inverts the source mapping, and crop \"auto\" finds pool + resize aligned") {
  auto half_pixel = make_test_layer(resize_spec({{"scale", 1.7}}));
  half_pixel->reshape({{1, 1, 5, 5}});
  CoordMap map = half_pixel->coord_map();
  // dst = src * scale + 0.5 * scale - 0.5 with the factor PyTorch maps by
  CHECK(map.scale[0] == Approx(1.7));
  CHECK(map.shift[0] == Approx(0.35));
  auto to_ref = make_test_layer(resize_spec(json::object(), {"x", "ref"}));
  to_ref->reshape({{1, 1, 4, 6}, {1, 1, 10, 9}});
  map = to_ref->coord_map();
  CHECK(map.scale == std::array<double, 2>{2.5, 1.5});
  CHECK(map.shift[0] == Approx(0.75));
  CHECK(map.shift[1] == Approx(0.25));
  auto corners = make_test_layer(resize_spec({{"size", {9, 1}}, {"align_corners", true}}));
  corners->reshape({{1, 1, 4, 6}});
  map = corners->coord_map();
  CHECK(map.scale[0] == Approx(8.0 / 3));
  CHECK(map.shift[0] == 0);
  CHECK(map.scale[1] == Approx(1.0 / 6));  // a 1-pixel output: no defined map, out / in
  auto copied = make_test_layer(resize_spec({{"scale", {1.05, 1}}}));
  copied->reshape({{1, 1, 10, 4}});
  CHECK(copied->coord_map().scale == std::array<double, 2>{1, 1});
  CHECK(copied->coord_map().shift == std::array<double, 2>{0, 0});

  // pool 2x2/2 maps p -> p/2 - 1/4, a x2 half-pixel resize q -> 2q + 1/2: together the identity
  const json spec = {{"inputs", {{"data", {{"channels", 1}}}}},
                     {"layers",
                      {{{"name", "pool"}, {"type", "max_pool"}, {"inputs", {"data"}}, {"kernel", 2}, {"stride", 2}},
                       {{"name", "up"}, {"type", "resize"}, {"inputs", {"pool"}}, {"scale", 2}},
                       {{"name", "crop"}, {"type", "crop"}, {"inputs", {"up", "data"}}}}}};
  Graph graph(spec);
  graph.reshape({{"data", {1, 1, 8, 12}}});
  const CoordMap up = graph.blob_coord_map("up");
  CHECK(up.scale[0] == Approx(1.0));
  CHECK(up.shift[0] == Approx(0.0).margin(1e-12));
  CHECK(graph.blob_shape("crop") == Shape{1, 1, 8, 12});
}

TEST_CASE("resize contract: extent 2 per resized axis, 8 FLOPs per output, backward without input values") {
  auto layer = make_test_layer(resize_spec({{"scale", {1.05, 0.45}}}));
  const Shape out = layer->reshape({{2, 3, 10, 20}});
  REQUIRE(out == Shape{2, 3, 10, 9});
  CHECK(layer->input_extent() == std::array<double, 2>{1, 2});  // h is copied (10 * 1.05 floors to 10)
  CHECK(layer->forward_flops() == 8.0 * 2 * 3 * 10 * 9);
  CHECK_FALSE(layer->backward_needs_inputs());
  CHECK_FALSE(layer->backward_needs_output());
  CHECK(layer->in_place_input() == -1);
  const auto& options = dynamic_cast<ResizeLayer&>(*layer).options();
  CHECK((options.scale && (*options.scale)[0] == 1.05 && !options.size && !options.align_corners));
}

TEST_CASE("concat and resize under the memory plan: the same numbers as without it") {
  // resize and concat backward read no input values, so the plan may reuse them
  const json spec = json::parse(R"({"inputs": {"data": {"channels": 2}, "label": {"channels": 1}}, "layers": [
    {"name": "c1", "type": "conv", "inputs": ["data"], "num_output": 4, "kernel": 3, "pad": 1},
    {"name": "r1", "type": "relu", "inputs": ["c1"]},
    {"name": "down", "type": "resize", "inputs": ["r1"], "scale": 0.45},
    {"name": "c2", "type": "conv", "inputs": ["down"], "num_output": 3, "kernel": 3, "pad": 1},
    {"name": "up", "type": "resize", "inputs": ["c2", "r1"], "align_corners": true},
    {"name": "cat", "type": "concat", "inputs": ["r1", "up", "c1"]},
    {"name": "c3", "type": "conv", "inputs": ["cat"], "num_output": 3, "kernel": 1},
    {"name": "wide", "type": "concat", "inputs": ["c3", "c3"], "axis": -1},
    {"name": "score", "type": "resize", "inputs": ["wide", "label"]},
    {"name": "loss", "type": "softmax_loss", "inputs": ["score", "label"], "normalize": "none"}]})");
  std::mt19937_64 rng(11);
  const Tensor data = random_tensor({2, 2, 11, 14}, rng);
  Tensor label({2, 1, 9, 17});
  for (int64_t i = 0; i < label.numel(); ++i) label[i] = static_cast<float>(i % 3);
  auto run = [&](GraphOptions options) {
    Graph graph(spec, "graph", options);
    graph.reshape({{"data", data.shape()}, {"label", label.shape()}});
    graph.init_params(3);
    graph.blob("data") = data;
    graph.blob("label") = label;
    std::map<std::string, Tensor> grads;
    for (int step = 0; step < 2; ++step) {  // the second step runs on reused buffers
      graph.zero_param_grads();
      graph.forward(Mode::train);
      graph.backward();
    }
    for (Param* p : graph.params()) grads[p->name] = p->grad;
    return std::make_pair(graph.loss(), grads);
  };
  GraphOptions plain;
  plain.reuse_memory = false;
  GraphOptions values;
  values.reuse_values = true;
  const auto reference = run(plain);
  for (const GraphOptions& options : {GraphOptions{}, values}) {
    const auto planned = run(options);
    CHECK(planned.first == reference.first);
    for (const auto& [name, grad] : reference.second) {
      INFO(name);
      for (int64_t i = 0; i < grad.numel(); ++i) REQUIRE(planned.second.at(name)[i] == grad[i]);
    }
  }
}

TEST_CASE("resize emits ONNX Resize: half_pixel or align_corners, scales, constant or Shape-computed sizes") {
  const std::map<std::string, Shape> shapes = {{"x", {1, 3, 10, 20}}, {"ref", {1, 1, 37, 41}}};
  auto scaled = make_test_layer(resize_spec({{"scale", {1.05, 2}}}));
  scaled->reshape({shapes.at("x")});
  RecordingEmitter fixed(false, shapes);
  scaled->emit_onnx(fixed, {"X"}, "Y");
  REQUIRE(fixed.nodes.size() == 1);
  CHECK(fixed.nodes[0].op == "Resize");
  CHECK(fixed.nodes[0].inputs == std::vector<std::string>{"X", "", "up/scales"});
  CHECK(string_attribute(fixed.nodes[0], "mode") == "linear");
  CHECK(string_attribute(fixed.nodes[0], "coordinate_transformation_mode") == "half_pixel");
  // h: 10 * 1.05 floors to 10, which PyTorch copies: scale 1 says that to ONNX
  CHECK(fixed.floats.at("up/scales") == std::vector<float>{1, 1, 1, 2});
  // a dynamic export cannot know the size: 1.05 copies some sizes and not others
  RecordingEmitter dynamic(true, shapes);
  CHECK_THROWS_WITH(scaled->emit_onnx(dynamic, {"X"}, "Y"),
                    Catch::Contains("'up'") && Catch::Contains("scale 1.05 on h") && Catch::Contains("--size"));
  for (const bool align_corners : {false, true})
    for (const double scale : {2.0, 8.0, 0.5, 1.7, 0.45}) {
      INFO("scale " << scale << ", align_corners " << align_corners);
      auto layer = make_test_layer(resize_spec({{"scale", scale}, {"align_corners", align_corners}}));
      RecordingEmitter any_size(true, shapes);
      layer->emit_onnx(any_size, {"X"}, "Y");
      CHECK(string_attribute(any_size.nodes.back(), "coordinate_transformation_mode") ==
            (align_corners ? "align_corners" : "half_pixel"));
      // the nearest float32 or a neighbour: 0.45f gives 8 at size 20 in exact arithmetic, PyTorch 9
      CHECK(any_size.floats.at("up/scales")[2] == Approx(scale).epsilon(1e-7));
    }

  auto to_ref = make_test_layer(resize_spec(json::object(), {"x", "ref"}));
  RecordingEmitter constant(false, shapes);
  to_ref->emit_onnx(constant, {"X", "R"}, "Y");
  REQUIRE(constant.nodes.size() == 1);
  CHECK(constant.nodes[0].inputs == std::vector<std::string>{"X", "", "", "up/sizes"});
  CHECK(constant.ints.at("up/sizes") == std::vector<int64_t>{1, 3, 37, 41});
  RecordingEmitter computed(true, shapes);
  to_ref->emit_onnx(computed, {"X", "R"}, "Y");
  std::vector<std::string> ops;
  for (const auto& n : computed.nodes) ops.push_back(n.op);
  CHECK(ops == std::vector<std::string>{"Shape", "Slice", "Shape", "Slice", "Concat", "Resize"});
  CHECK(computed.nodes[2].inputs == std::vector<std::string>{"R"});

  auto sized = make_test_layer(resize_spec({{"size", {5, 7}}}));
  RecordingEmitter sized_dynamic(true, shapes);
  sized->emit_onnx(sized_dynamic, {"X"}, "Y");
  CHECK(sized_dynamic.ints.at("up/hw") == std::vector<int64_t>{5, 7});
}

TEST_CASE("resize errors: exactly one of scale, size, ref; positive scales; empty outputs") {
  const std::vector<std::string> two = {"x", "ref"};
  CHECK_THROWS_WITH(make_test_layer(resize_spec(json::object())), Catch::Contains("test.inputs") &&
                                                                      Catch::Contains("exactly one of scale, size"));
  CHECK_THROWS_WITH(make_test_layer(resize_spec({{"scale", 2}}, two)), Catch::Contains("test.scale"));
  CHECK_THROWS_WITH(make_test_layer(resize_spec({{"scale", 2}, {"size", 4}})), Catch::Contains("test.scale"));
  CHECK_THROWS_WITH(make_test_layer(resize_spec({{"size", 4}}, two)), Catch::Contains("test.size"));
  CHECK_THROWS_WITH(make_test_layer(resize_spec({{"scale", 0}})), Catch::Contains("positive"));
  CHECK_THROWS_WITH(make_test_layer(resize_spec({{"scale", {2, -1}}})), Catch::Contains("positive"));
  CHECK_THROWS_WITH(make_test_layer(resize_spec({{"scale", {2, 2, 2}}})), Catch::Contains("[h, w]"));
  CHECK_THROWS_WITH(make_test_layer(resize_spec({{"scale", "2"}})), Catch::Contains("test.scale"));
  CHECK_THROWS_WITH(make_test_layer(resize_spec({{"size", {4, 0}}})), Catch::Contains("test.size"));
  CHECK_THROWS_WITH(make_test_layer(resize_spec({{"size", 4}, {"align_corner", true}})),
                    Catch::Contains("test.align_corner"));
  CHECK_THROWS_WITH(make_test_layer(resize_spec({{"size", 4}}, {"x", "ref", "more"})), Catch::Contains("test.inputs"));
  auto layer = make_test_layer(resize_spec({{"scale", 0.3}}));
  CHECK_THROWS_WITH(layer->reshape({{1, 21, 5, 3}}), Catch::Contains("'up' (resize)") &&
                                                         Catch::Contains("output size 1x0") &&
                                                         Catch::Contains("x [1, 21, 5, 3]"));
  auto huge = make_test_layer(resize_spec({{"scale", 1e300}}));
  CHECK_THROWS_WITH(huge->reshape({{1, 1, 5, 5}}), Catch::Contains("impossibly large"));
}
