#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <random>

#include "fcn/core/error.hpp"
#include "fcn/layers/conv.hpp"
#include "fcn/layers/softmax_loss.hpp"
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

TEST_CASE("crop \"auto\" offsets come out as the reference nets' 19, then 5 and 27, then 5, 9 and 31") {
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

// ---- ResNet backbones and torchvision's fcn_resnet50/101 ----

namespace {

Graph resnet_model(const std::string& arch, const std::string& backbone, int64_t h, int64_t w, double width,
                   GraphOptions options = {}) {
  ModelSpec spec;
  spec.arch = arch;
  spec.backbone = backbone;
  spec.width = width;
  Graph graph(build_fcn_graph(spec), "model", options);
  graph.reshape({{"data", {1, 3, h, w}}, {"label", {1, 1, h, w}}});
  return graph;
}

// tests/fixtures/zoo/torchvision_keys.json (tools/zoo_torchvision_keys.py): net -> [[key, shape], ...]
const json& torchvision_keys() {
  static const json keys = [] {
    std::ifstream in(std::string(FCN_SOURCE_DIR) + "/tests/fixtures/zoo/torchvision_keys.json");
    REQUIRE(in.good());
    return json::parse(in);
  }();
  return keys;
}

std::vector<std::pair<std::string, Shape>> param_keys(Graph& graph, const std::string& prefix = "") {
  std::vector<std::pair<std::string, Shape>> out;
  for (Param* p : graph.params())
    if (p->name.rfind(prefix, 0) == 0) out.push_back({p->name, p->data.shape()});
  return out;
}

std::vector<std::pair<std::string, Shape>> expected_keys(const std::string& net) {
  std::vector<std::pair<std::string, Shape>> out;
  for (const json& entry : torchvision_keys().at(net)) out.push_back({entry[0], entry[1].get<Shape>()});
  return out;
}

const std::vector<std::string> kSkipArchs = {"fcn32s", "fcn16s", "fcn8s"};
const std::vector<std::string> kResnets = {"resnet18", "resnet34", "resnet50", "resnet101"};

}  // namespace

TEST_CASE("every arch and backbone builds, and its scores have the input's size, odd sides too") {
  for (auto size : {std::pair<int64_t, int64_t>{37, 53}, {64, 48}, {1, 1}}) {
    INFO(size.first << "x" << size.second);
    for (const auto& arch : kSkipArchs)
      for (const auto& backbone : kResnets) {
        INFO(arch << " on " << backbone);
        auto graph = resnet_model(arch, backbone, size.first, size.second, 0.0625);
        CHECK(graph.blob_shape("score") == Shape{1, 21, size.first, size.second});
      }
    for (const std::string arch : {"fcn_resnet50", "fcn_resnet101"}) {
      INFO(arch);
      auto graph = resnet_model(arch, "", size.first, size.second, 0.0625);
      CHECK(graph.blob_shape("score") == Shape{1, 21, size.first, size.second});
      CHECK(graph.blob_shape("aux_score") == Shape{1, 21, size.first, size.second});
    }
  }
}

TEST_CASE("ResNet skip nets: every stage sits on the image grid, crops of 31, 1 and 15, 1, 1 and 7") {
  // feature i of a stride-S map at image pixel S*i; a kernel 2f-1 deconv shifts by f-1
  for (auto size : {std::pair<int64_t, int64_t>{37, 53}, {500, 375}, {1, 1}}) {
    auto g32 = resnet_model("fcn32s", "resnet18", size.first, size.second, 0.0625);
    CHECK(crop_offsets(g32) == std::vector<int64_t>{31});
    auto g16 = resnet_model("fcn16s", "resnet34", size.first, size.second, 0.0625);
    CHECK(crop_offsets(g16) == std::vector<int64_t>{1, 15});
    auto g8 = resnet_model("fcn8s", "resnet50", size.first, size.second, 0.0625);
    CHECK(crop_offsets(g8) == std::vector<int64_t>{1, 1, 7});
    for (const std::string blob : {"backbone.layer2.3.relu", "backbone.layer3.5.relu", "backbone.layer4.2.relu"}) {
      const CoordMap map = g8.blob_coord_map(blob);
      CHECK(map.shift[0] == 0);
      CHECK(map.shift[1] == 0);
    }
    // sizes ceil(H / S): nothing is lost at the bottom and right
    CHECK(g8.blob_shape("score_pool3")[2] == (size.first + 7) / 8);
    CHECK(g8.blob_shape("score_fr")[3] == (size.second + 31) / 32);
  }
  auto g8 = resnet_model("fcn8s", "resnet18", 64, 64, 0.0625);
  CHECK(g8.find_layer("upscore2c") != nullptr);
  CHECK(g8.find_layer("upscore_pool4c") != nullptr);
  const auto& deconv = dynamic_cast<const ConvolutionBase&>(*g8.find_layer("upscore8"));
  CHECK(deconv.options().kernel[0] == 15);
  CHECK(deconv.options().stride[0] == 8);
}

TEST_CASE("fcn_resnet: stride 8 by dilation, with _make_layer's dilation bookkeeping") {
  auto graph = resnet_model("fcn_resnet50", "", 64, 64, 0.0625);
  CHECK(graph.blob_shape("backbone.layer4.2.relu")[2] == 8);
  CHECK(graph.blob_shape("backbone.layer3.5.relu")[2] == 8);
  const auto conv = [&](const std::string& name) {
    return dynamic_cast<const ConvolutionBase&>(*graph.find_layer(name)).options();
  };
  // the first block of a dilated layer keeps the previous dilation
  CHECK(conv("backbone.layer3.0.conv2").dilation[0] == 1);
  CHECK(conv("backbone.layer3.1.conv2").dilation[0] == 2);
  CHECK(conv("backbone.layer3.1.conv2").pad[0] == 2);
  CHECK(conv("backbone.layer4.0.conv2").dilation[0] == 2);
  CHECK(conv("backbone.layer4.2.conv2").dilation[0] == 4);
  CHECK(conv("backbone.layer4.0.conv2").stride[0] == 1);
  CHECK(conv("backbone.layer4.0.downsample.0").stride[0] == 1);
  CHECK(conv("backbone.layer2.0.conv2").stride[0] == 2);  // V1.5: the stride on the 3x3
  CHECK(conv("backbone.layer2.0.conv1").stride[0] == 1);
}

TEST_CASE("param names and shapes are torchvision's state-dict keys") {
  GraphOptions plan;
  plan.plan_only = true;
  for (const auto& backbone : kResnets) {
    INFO(backbone);
    auto graph = resnet_model("fcn8s", backbone, 32, 32, 1.0, plan);
    CHECK(param_keys(graph, "backbone.") == expected_keys(backbone));
  }
  for (const std::string arch : {"fcn_resnet50", "fcn_resnet101"}) {
    INFO(arch);
    auto graph = resnet_model(arch, "", 16, 16, 1.0, plan);
    CHECK(param_keys(graph) == expected_keys(arch));
  }
}

TEST_CASE("fcn_resnet: the aux head's loss has weight model.aux_weight, and inference does not run it") {
  auto graph = resnet_model("fcn_resnet50", "", 33, 47, 0.0625);
  const auto& aux = dynamic_cast<const SoftmaxLossLayer&>(*graph.find_layer("aux_loss"));
  CHECK(aux.loss_weight() == 0.5);
  CHECK(graph.find_layer("classifier.3") != nullptr);
  size_t skipped = 0;
  for (size_t i = 0; i < graph.layers().size(); ++i) {
    const std::string& name = graph.layers()[i]->name();
    const bool aux_part = name.rfind("aux_", 0) == 0 || name == "loss";
    CHECK(graph.inference_layer(i) == !aux_part);
    skipped += aux_part;
  }
  CHECK(skipped == 8);  // aux_classifier.0-4, aux_score, loss, aux_loss
  CHECK(graph.inference_flops() < graph.forward_flops());
  ModelSpec spec;
  spec.arch = "fcn_resnet101";
  spec.width = 0.0625;
  spec.aux_weight = 0.0;
  Graph no_aux(build_fcn_graph(spec), "model");
  CHECK(no_aux.find_layer("aux_classifier.0") == nullptr);
  CHECK(no_aux.find_layer("aux_loss") == nullptr);
}

TEST_CASE("model spec combinations no net has are errors naming the key") {
  const auto fails = [](ModelSpec spec, const std::string& key) {
    try {
      build_fcn_graph(spec);
      FAIL("no error for " << key);
    } catch (const Error& e) {
      CHECK_THAT(e.what(), Catch::Contains(key));
    }
  };
  ModelSpec atonce;
  atonce.arch = "fcn8s-atonce";
  atonce.backbone = "resnet18";
  fails(atonce, "model.backbone");
  ModelSpec implied;
  implied.arch = "fcn_resnet50";
  implied.backbone = "resnet101";
  fails(implied, "model.backbone");
  implied.backbone = "resnet50";
  CHECK_NOTHROW(build_fcn_graph(implied));
  ModelSpec dropout;
  dropout.backbone = "resnet34";
  dropout.dropout = 0.5;
  fails(dropout, "model.dropout");
  ModelSpec aux;
  aux.aux_weight = 0.4;
  fails(aux, "model.aux_weight");
  ModelSpec bn;
  bn.batch_norm = "frozen";
  fails(bn, "model.batch_norm");
  bn.backbone = "resnet18";
  const json spec = build_fcn_graph(bn);
  for (const json& layer : spec["layers"])
    if (layer["type"] == "batch_norm") CHECK(layer["mode"] == "frozen");
}

TEST_CASE("a tiny ResNet-18 FCN-8s and fcn_resnet50 run forward and backward") {
  for (const std::string arch : {"fcn8s", "fcn_resnet50"}) {
    INFO(arch);
    ModelSpec spec;
    spec.arch = arch;
    spec.backbone = arch == "fcn8s" ? "resnet18" : "";
    spec.width = 0.125;
    spec.num_classes = 3;
    spec.normalize = "valid";
    spec.score_init = {{"type", "gaussian"}, {"std", 0.1}};
    Graph graph(build_fcn_graph(spec), "model");
    graph.reshape({{"data", {2, 3, 35, 29}}, {"label", {2, 1, 35, 29}}});
    graph.init_params(7);
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> uniform(-1.f, 1.f);
    Tensor& data = graph.blob("data");
    for (int64_t i = 0; i < data.numel(); ++i) data[i] = uniform(rng);
    Tensor& label = graph.blob("label");
    for (int64_t i = 0; i < label.numel(); ++i) label[i] = static_cast<float>(i % 3);
    graph.zero_param_grads();
    graph.forward(Mode::train);
    CHECK(std::isfinite(graph.loss()));
    CHECK(graph.loss() > 0.5);  // about log 3 at the start
    graph.backward();
    for (const std::string name : {"backbone.conv1.weight", "backbone.bn1.weight", "backbone.layer1.0.conv1.weight"}) {
      INFO(name);
      const Param* p = graph.find_param(name);
      REQUIRE(p != nullptr);
      double norm = 0;
      for (int64_t i = 0; i < p->grad.numel(); ++i) norm += std::fabs(p->grad[i]);
      CHECK(norm > 0);
      CHECK(std::isfinite(norm));
    }
  }
}

TEST_CASE("an inference forward (skip_loss_in_test) runs no layer of the aux head, a training forward all") {
  GraphOptions options;
  options.skip_loss_in_test = true;
  auto graph = resnet_model("fcn_resnet50", "", 19, 23, 0.0625, options);
  graph.init_params(1);
  Tensor& data = graph.blob("data");
  for (int64_t i = 0; i < data.numel(); ++i) data[i] = static_cast<float>(i % 7);
  graph.blob("label").zero();
  std::vector<std::string> ran;
  graph.set_forward_hook([&](size_t index, const Tensor&) { ran.push_back(graph.layers()[index]->name()); });
  graph.forward(Mode::test);
  CHECK(std::find(ran.begin(), ran.end(), "score") != ran.end());
  for (const auto& name : ran) CHECK(name.rfind("aux_", 0) != 0);
  CHECK(ran.size() + 8 == graph.layers().size());
  ran.clear();
  graph.forward(Mode::train);
  CHECK(ran.size() == graph.layers().size());
}

TEST_CASE("an inference-only graph gives the aux head no memory") {
  GraphOptions inference;
  inference.skip_loss_in_test = inference.inference_only = true;
  inference.reuse_values = true;
  ModelSpec spec;
  spec.arch = "fcn_resnet50";
  spec.width = 0.125;
  auto planned = [&](double aux_weight, GraphOptions options) {
    spec.aux_weight = aux_weight;
    Graph graph(build_fcn_graph(spec), "model", options);
    graph.reshape({{"data", {1, 3, 97, 131}}, {"label", {1, 1, 97, 131}}});
    return graph.blob_buffer_bytes();
  };
  GraphOptions both_modes = inference;
  both_modes.inference_only = false;  // the graph may train: the aux head's blobs are planned
  const int64_t aux_planned = planned(0.5, both_modes), aux_skipped = planned(0.5, inference);
  CHECK(aux_planned > planned(0.0, both_modes));
  CHECK(aux_skipped < aux_planned);
  // within one layer3 output of the net without the head (the packing's order differs)
  CHECK(aux_skipped - planned(0.0, inference) <= int64_t{128} * 13 * 17 * 4);

  spec.aux_weight = 0.5;
  Graph graph(build_fcn_graph(spec), "model", inference);
  graph.reshape({{"data", {1, 3, 33, 41}}, {"label", {1, 1, 33, 41}}});
  graph.init_params(1);
  graph.blob("data").fill(1.f);
  graph.forward(Mode::test);
  CHECK(graph.blob("score").shape() == Shape{1, 21, 33, 41});
  CHECK_THROWS_WITH(graph.forward(Mode::train), Catch::Contains("inference only"));
}

TEST_CASE("ResNet block-output ReLUs fuse into their sums, and an inference-only graph skips them: the same scores") {
  // the training graph in test mode runs every ReLU (over rectified values);
  // the inference-only one never needs their bits for a backward
  GraphOptions profiled;
  profiled.skip_loss_in_test = profiled.profile = true;
  GraphOptions inference = profiled;
  inference.inference_only = true;
  GraphOptions apart = profiled;
  apart.reuse_memory = false;  // no ReLU runs in place: none fuses
  std::vector<Graph> graphs;
  for (const GraphOptions& options : {profiled, inference, apart}) {
    graphs.push_back(resnet_model("fcn8s", "resnet18", 67, 75, 0.125, options));
    graphs.back().init_params(3);
    Tensor& data = graphs.back().blob("data");
    std::mt19937_64 rng(4);
    std::normal_distribution<float> normal;
    for (int64_t i = 0; i < data.numel(); ++i) data[i] = normal(rng);
    graphs.back().forward(Mode::test);
  }
  const Tensor& score = graphs[2].blob("score");
  for (const Graph* graph : {&graphs[0], &graphs[1]})
    for (int64_t i = 0; i < score.numel(); ++i) REQUIRE(graph->blob("score")[i] == score[i]);
  auto calls = [](const Graph& graph, const std::string& name) {
    for (size_t i = 0; i < graph.layers().size(); ++i)
      if (graph.layers()[i]->name() == name) return graph.layer_timings()[i].forward_calls;
    return int64_t{-1};
  };
  CHECK(calls(graphs[0], "backbone.layer2.1.relu") == 1);
  CHECK(calls(graphs[1], "backbone.layer2.1.relu") == 0);
  CHECK(calls(graphs[1], "backbone.layer2.1.add") == 1);
  CHECK(calls(graphs[2], "backbone.layer2.1.relu") == 1);
}
