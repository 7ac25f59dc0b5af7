#include <catch2/catch.hpp>

#include "fcn/model/describe.hpp"
#include "fcn/graph/graph.hpp"
#include "fcn/model/model_zoo.hpp"

using namespace fcn;

namespace {

Graph reshaped_model(const std::string& arch, int64_t classes, int64_t h, int64_t w, double width = 1.0) {
  ModelSpec spec;
  spec.arch = arch;
  spec.num_classes = classes;
  spec.width = width;
  Graph graph(build_fcn_graph(spec), "model");
  graph.reshape({{"data", {1, 3, h, w}}, {"label", {1, 1, h, w}}});
  return graph;
}

std::vector<int64_t> crop_offsets(Graph& graph) {
  std::vector<int64_t> offsets;
  for (const auto& layer : graph.layers())
    if (layer->type() == "crop") {
      const CoordMap map = layer->coord_map();
      CHECK(map.shift[0] == map.shift[1]);
      offsets.push_back(static_cast<int64_t>(-map.shift[0]));
    }
  return offsets;
}

}  // namespace

TEST_CASE("crop \"auto\" offsets come out as the reference nets' 19; 5, 27; 5, 9, 31") {
  // the offsets follow from the geometry alone: any input size, any width
  for (auto size : {std::pair<int64_t, int64_t>{500, 500}, {37, 53}, {1, 1}}) {
    auto g32 = reshaped_model("fcn32s", 21, size.first, size.second, 0.0625);
    CHECK(crop_offsets(g32) == std::vector<int64_t>{19});
    auto g16 = reshaped_model("fcn16s", 21, size.first, size.second, 0.0625);
    CHECK(crop_offsets(g16) == std::vector<int64_t>{5, 27});
    auto g8 = reshaped_model("fcn8s", 21, size.first, size.second, 0.0625);
    CHECK(crop_offsets(g8) == std::vector<int64_t>{5, 9, 31});
    auto at_once = reshaped_model("fcn8s-atonce", 21, size.first, size.second, 0.0625);
    CHECK(crop_offsets(at_once) == std::vector<int64_t>{5, 9, 31});
    CHECK(g8.blob_shape("score") == Shape{1, 21, size.first, size.second});
  }
}

TEST_CASE("layer names follow the reference nets") {
  auto graph = reshaped_model("fcn8s", 21, 64, 64, 0.0625);
  std::vector<std::string> names;
  for (const auto& layer : graph.layers()) names.push_back(layer->name());
  const std::vector<std::string> expected = {
      "conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1", "conv2_1", "relu2_1", "conv2_2", "relu2_2", "pool2",
      "conv3_1", "relu3_1", "conv3_2", "relu3_2", "conv3_3", "relu3_3", "pool3", "conv4_1", "relu4_1", "conv4_2",
      "relu4_2", "conv4_3", "relu4_3", "pool4", "conv5_1", "relu5_1", "conv5_2", "relu5_2", "conv5_3", "relu5_3",
      "pool5", "fc6", "relu6", "drop6", "fc7", "relu7", "drop7", "score_fr", "upscore2", "score_pool4",
      "score_pool4c", "fuse_pool4", "upscore_pool4", "score_pool3", "score_pool3c", "fuse_pool3", "upscore8",
      "score", "loss"};
  CHECK(names == expected);
  auto at_once = reshaped_model("fcn8s-atonce", 21, 64, 64, 0.0625);
  CHECK(at_once.find_layer("scale_pool4") != nullptr);
  CHECK(at_once.find_layer("scale_pool3") != nullptr);
  auto g16 = reshaped_model("fcn16s", 21, 64, 64, 0.0625);
  CHECK(g16.find_layer("upscore16") != nullptr);
  auto g32 = reshaped_model("fcn32s", 21, 64, 64, 0.0625);
  CHECK(g32.find_layer("upscore") != nullptr);
}

TEST_CASE("FCN-8s has the reference parameter count and forward FLOPs") {
  // figures of the PyTorch reference (shared bench torch_fcn.py): 21 classes, 500x500
  auto graph = reshaped_model("fcn8s", 21, 500, 500);
  const GraphSummary summary = describe_graph(graph);
  CHECK(summary.params == 134489759);
  CHECK(summary.trainable_params == 134362751);
  CHECK(summary.flops / 1e9 == Approx(363.1).margin(0.05));
}

TEST_CASE("parameter multipliers: weights 1x with decay, biases 2x without, upsampling frozen") {
  auto graph = reshaped_model("fcn16s", 5, 64, 64, 0.0625);
  for (Param* p : graph.params()) {
    INFO(p->name);
    const bool upsampling = p->name.rfind("upscore", 0) == 0;
    const bool bias = p->name.size() > 5 && p->name.substr(p->name.size() - 5) == ".bias";
    if (upsampling) {
      CHECK(p->frozen());
      CHECK_FALSE(bias);  // bias-free
    } else if (bias) {
      CHECK(p->lr_mult == 2.f);
      CHECK(p->decay_mult == 0.f);
    } else {
      CHECK(p->lr_mult == 1.f);
      CHECK(p->decay_mult == 1.f);
    }
  }
}

TEST_CASE("the width multiplier scales every trunk layer") {
  auto graph = reshaped_model("fcn32s", 3, 64, 64, 0.25);
  CHECK(graph.blob_shape("conv1_1")[1] == 16);
  CHECK(graph.blob_shape("pool5")[1] == 128);
  CHECK(graph.blob_shape("fc7")[1] == 1024);
  CHECK(graph.blob_shape("score")[1] == 3);
}
