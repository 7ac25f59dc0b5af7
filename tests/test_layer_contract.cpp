// The layer contract, for every registered type: a type answers every
// question that describe, export-onnx, the graph's memory plan and the
// importer ask of it (include/fcn/core/layer.hpp). A new type that is not
// in `examples()` below fails the first test case: add an example of it.
#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <set>

#include "fcn/core/onnx_emitter.hpp"
#include "fcn/layers/registry.hpp"
#include "gradcheck.hpp"
#include "recording_emitter.hpp"

using namespace fcn;
using namespace fcn::testing;

namespace {

struct Example {
  json options;               // the spec without name/type/inputs
  std::vector<Shape> inputs;  // input shapes, named in0, in1, ...
};

// One working example per registered type (the first input is the one
// receptive fields are measured on).
const std::map<std::string, Example>& examples() {
  static const std::map<std::string, Example> table = {
      {"conv", {{{"num_output", 4}, {"kernel", 3}, {"dilation", 2}}, {{1, 3, 9, 9}}}},
      {"deconv", {{{"num_output", 2}, {"kernel", 4}, {"stride", 2}, {"weight_init", "bilinear"}}, {{1, 2, 5, 5}}}},
      {"max_pool", {{{"kernel", 2}, {"stride", 2}}, {{1, 3, 8, 8}}}},
      {"relu", {json::object(), {{1, 3, 4, 4}}}},
      {"dropout", {json::object(), {{1, 3, 4, 4}}}},
      {"crop", {{{"offset", 1}}, {{1, 3, 8, 8}, {1, 3, 5, 5}}}},
      {"sum", {{{"coeffs", {1.0, 0.5}}}, {{1, 3, 4, 4}, {1, 3, 4, 4}}}},
      {"scale", {{{"value", 2.0}}, {{1, 3, 4, 4}}}},
      {"softmax_loss", {json::object(), {{1, 3, 4, 4}, {1, 1, 4, 4}}}},
      {"concat", {{{"axis", 1}}, {{1, 3, 4, 4}, {1, 2, 4, 4}}}},
      {"resize", {json::object(), {{1, 3, 4, 5}, {1, 1, 9, 7}}}},
      {"batch_norm", {{{"momentum", 0.2}}, {{2, 3, 4, 4}}}},
      {"avg_pool", {{{"kernel", 3}, {"stride", 2}, {"pad", 1}}, {{1, 3, 8, 9}}}},
  };
  return table;
}

std::unique_ptr<Layer> build_example(const std::string& type, const Example& example) {
  json spec = example.options;
  spec["name"] = "l";
  spec["type"] = type;
  spec["inputs"] = json::array();
  for (size_t i = 0; i < example.inputs.size(); ++i) spec["inputs"].push_back("in" + std::to_string(i));
  return make_test_layer(spec);
}

}  // namespace

TEST_CASE("every registered layer type has a contract example") {
  for (const auto& type : layer_types()) {
    INFO("layer type '" << type << "': add an example to tests/test_layer_contract.cpp");
    CHECK(examples().count(type));
  }
  for (const auto& entry : examples()) {
    INFO("example for an unregistered type '" << entry.first << "'");
    const auto types = layer_types();
    CHECK(std::find(types.begin(), types.end(), entry.first) != types.end());
  }
}

TEST_CASE("every layer type answers the contract: shapes, extent, FLOPs, scratch, in-place, ONNX") {
  for (const auto& [type, example] : examples()) {
    INFO("layer type " << type);
    auto layer = build_example(type, example);
    CHECK(layer->type() == type);
    const Shape out = layer->reshape(example.inputs);
    REQUIRE((!out.empty() || layer->is_loss()));  // a loss may be a 0-d scalar
    for (int64_t d : out) CHECK(d >= 1);

    const auto extent = layer->input_extent();
    for (double e : extent) CHECK((std::isfinite(e) && e >= 1));
    CHECK((std::isfinite(layer->forward_flops()) && layer->forward_flops() >= 0));
    CHECK(layer->scratch_bytes() >= 0);
    const int in_place = layer->in_place_input();
    CHECK((in_place == -1 || (in_place >= 0 && in_place < static_cast<int>(example.inputs.size()))));
    const CoordMap map = layer->coord_map();
    for (double a : map.scale) CHECK(a > 0);

    for (const bool dynamic : {false, true}) {
      std::map<std::string, Shape> shapes;
      std::vector<std::string> values;
      for (size_t i = 0; i < example.inputs.size(); ++i) {
        shapes["in" + std::to_string(i)] = example.inputs[i];
        values.push_back("in" + std::to_string(i));
      }
      RecordingEmitter onnx(shapes, dynamic);
      try {
        layer->emit_onnx(onnx, values, "out");
        CHECK(onnx.defined.count("out"));  // produced by a node or aliased
      } catch (const OnnxUnsupported& e) {
        // an explicit refusal, which export-onnx prints as it is
        CHECK(std::string(e.what()).rfind("cannot export to ONNX: layer 'l': ", 0) == 0);
        CHECK(std::string(e.what()).size() > std::string("cannot export to ONNX: layer 'l': ").size());
      }
    }
  }
}

TEST_CASE("the receptive-field extent and FLOPs follow the options") {
  auto conv = build_example("conv", examples().at("conv"));
  conv->reshape({{1, 3, 9, 9}});
  CHECK(conv->input_extent() == std::array<double, 2>{5, 5});  // d(k-1)+1 = 2*2+1
  // 4 outputs x 5x5 positions x 3*3*3 multiply-adds x 2
  CHECK(conv->forward_flops() == Approx(2.0 * 4 * 5 * 5 * 27));
  auto deconv = build_example("deconv", examples().at("deconv"));
  deconv->reshape({{1, 2, 5, 5}});
  CHECK(deconv->input_extent() == std::array<double, 2>{2, 2});  // ceil(4/2)
  auto pool = build_example("max_pool", {{{"kernel", json::array({3, 2})}}, {}});
  CHECK(pool->input_extent() == std::array<double, 2>{3, 2});
}

TEST_CASE("only a ReLU of slope 0 offers to fuse with its producer") {
  CHECK(make_test_layer({{"name", "r"}, {"type", "relu"}, {"inputs", {"x"}}})->is_rectifier());
  CHECK_FALSE(make_test_layer({{"name", "r"}, {"type", "relu"}, {"inputs", {"x"}}, {"negative_slope", 0.1}})
                  ->is_rectifier());
  for (const auto& [type, example] : examples()) {
    if (type == "relu") continue;
    INFO(type);
    CHECK_FALSE(build_example(type, example)->is_rectifier());
  }
}

TEST_CASE("every layer type names the Caffe types it imports, or says why Caffe has no counterpart") {
  std::map<std::string, CaffeMapper> by_caffe_type;
  for (const auto& entry : layer_registry()) {
    INFO("layer type '" << entry.type << "' (src/layers/registry.cpp)");
    CHECK((entry.caffe.empty() != entry.no_caffe_counterpart.empty()));
    for (const auto& [caffe_type, mapper] : entry.caffe) {
      CHECK(mapper != nullptr);
      CHECK(find_caffe_mapper(caffe_type) != nullptr);
      // a Caffe type listed by several fcn types (Pooling) has one mapping, which picks the type
      auto it = by_caffe_type.emplace(caffe_type, mapper).first;
      CHECK(it->second == mapper);
    }
  }
  CHECK(find_caffe_mapper("LRN") == nullptr);
}
