#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <vector>

#include "fcn/core/error.hpp"
#include "fcn/graph/graph.hpp"
#include "fcn/layers/relu.hpp"
#include "gradcheck.hpp"

using namespace fcn;
using fcn::testing::random_tensor;

namespace {

json spec_with(const json& layers) {
  return {{"inputs", {{"data", {{"channels", 2}}}, {"label", {{"channels", 1}}}}}, {"layers", layers}};
}

// Two train steps (the second on reused buffers) of `spec` on data and
// label with params from `seed`: the loss, the trainable params' gradients,
// the blob `scores`; `inspect` then sees the graph.
struct TrainedRun {
  double loss = 0;
  std::map<std::string, Tensor> grads;
  Tensor scores;
  int64_t bytes = 0;
};
TrainedRun train_two_steps(const json& spec, GraphOptions options, const Tensor& data, const Tensor& label,
                           uint64_t seed, const std::function<void(Graph&)>& inspect = {}) {
  Graph graph(spec, "graph", options);
  graph.reshape({{"data", data.shape()}, {"label", label.shape()}});
  graph.init_params(seed);
  graph.blob("data") = data;
  graph.blob("label") = label;
  for (int step = 0; step < 2; ++step) {
    graph.zero_param_grads();
    graph.forward(Mode::train);
    graph.backward();
  }
  TrainedRun r{graph.loss(), {}, graph.blob("up"), graph.blob_buffer_bytes()};
  for (Param* p : graph.params())
    if (!p->frozen()) r.grads[p->name] = p->grad;
  if (inspect) inspect(graph);
  return r;
}

// data -> a (relu) -> b = 2*a (scale) ; c = a + b (sum: `a` fans out)
json fan_out_spec() {
  return spec_with(json::parse(R"([
    {"name": "a", "type": "relu", "inputs": ["data"]},
    {"name": "b", "type": "scale", "inputs": ["a"], "value": 2.0},
    {"name": "c", "type": "sum", "inputs": ["a", "b"]}])"));
}

}  // namespace

TEST_CASE("fan-out gradients sum") {
  Graph graph(fan_out_spec(), "graph", GraphOptions{true});
  graph.reshape({{"data", {1, 2, 3, 3}}, {"label", {1, 1, 3, 3}}});
  std::mt19937_64 rng(1);
  graph.blob("data") = random_tensor({1, 2, 3, 3}, rng, -1, 1, 0.01f);
  graph.forward(Mode::test);
  graph.backward();  // no loss layer: d c = 1
  const Tensor& data = graph.blob("data");
  const Tensor* grad_a = graph.blob_grad("a");
  REQUIRE(grad_a != nullptr);
  // c = a + 2a, so dc/da = 3 everywhere
  for (int64_t i = 0; i < grad_a->numel(); ++i) CHECK((*grad_a)[i] == 3.f);
  CHECK(graph.blob_grad("data") == nullptr);  // graph inputs get no gradient
  const Tensor& c = graph.blob("c");
  for (int64_t i = 0; i < c.numel(); ++i) CHECK(c[i] == Approx(3 * std::max(0.f, data[i])));
}

TEST_CASE("only blobs between a trainable param and the loss carry gradients") {
  const json spec = spec_with(json::parse(R"([
    {"name": "pre", "type": "relu", "inputs": ["data"]},
    {"name": "w", "type": "scale", "inputs": ["pre"], "value": 1.5, "learnable": true},
    {"name": "loss", "type": "softmax_loss", "inputs": ["w", "label"], "normalize": "none"}])"));
  Graph graph(spec);
  graph.reshape({{"data", {1, 2, 2, 2}}, {"label", {1, 1, 2, 2}}});
  graph.init_params(1);
  CHECK(graph.blob_grad("pre") == nullptr);  // nothing trainable below it
  CHECK(graph.blob_grad("w") != nullptr);
  Tensor& label = graph.blob("label");
  label.zero();
  graph.blob("data").fill(0.5f);
  graph.zero_param_grads();
  graph.forward(Mode::train);
  graph.backward();
  // equal scores: loss = 4 * log 2, and d/dw = sum dscore * x = 0 (softmax of equal scores is symmetric)
  CHECK(graph.loss() == Approx(4 * std::log(2.0)));
  Param* w = graph.find_param("w.weight");
  REQUIRE(w != nullptr);
  CHECK(std::fabs(w->grad[0]) < 1e-6);
}

TEST_CASE("graph construction errors name the layer and the problem") {
  CHECK_THROWS_WITH(Graph(spec_with(json::parse(R"([{"name": "a", "type": "relu", "inputs": ["dta"]}])"))),
                    Catch::Contains("graph.layers[0].inputs[0]: layer 'a' reads blob 'dta'") &&
                        Catch::Contains("did you mean 'data'?"));
  CHECK_THROWS_WITH(Graph(spec_with(json::parse(R"([{"name": "a", "type": "relu", "inputs": ["data"]},
                                                   {"name": "a", "type": "relu", "inputs": ["a"]}])"))),
                    Catch::Contains("graph.layers[1].name: duplicate name 'a'"));
  CHECK_THROWS_WITH(Graph(spec_with(json::parse(R"([{"name": "a", "type": "rleu", "inputs": ["data"]}])"))),
                    Catch::Contains("graph.layers[0].type: unknown layer type \"rleu\"") &&
                        Catch::Contains("did you mean \"relu\"?"));
  CHECK_THROWS_WITH(Graph(spec_with(json::parse(R"([{"name": "a", "type": "relu", "inputs": ["data"], "slope": 1}])"))),
                    Catch::Contains("graph.layers[0].slope: unknown key"));
  CHECK_THROWS_WITH(Graph(spec_with(json::array())), Catch::Contains("non-empty list"));
}

TEST_CASE("shape errors name the layer, its type and the shapes") {
  const json spec = spec_with(json::parse(R"([
    {"name": "half", "type": "max_pool", "inputs": ["data"], "kernel": 2, "stride": 2},
    {"name": "bad_sum", "type": "sum", "inputs": ["data", "half"]}])"));
  Graph graph(spec);
  CHECK_THROWS_WITH(graph.reshape({{"data", {1, 2, 6, 6}}, {"label", {1, 1, 6, 6}}}),
                    Catch::Contains("layer 'bad_sum' (sum)") && Catch::Contains("[1, 2, 6, 6]") &&
                        Catch::Contains("[1, 2, 3, 3]"));
  CHECK_THROWS_WITH(graph.reshape({{"data", {1, 3, 6, 6}}, {"label", {1, 1, 6, 6}}}),
                    Catch::Contains("graph input 'data': expected shape [N, 2, H, W]"));
}

TEST_CASE("reshaping to a new input size gives the same results as a fresh graph") {
  const json spec = spec_with(json::parse(R"([
    {"name": "pool", "type": "max_pool", "inputs": ["data"], "kernel": 3, "stride": 2},
    {"name": "act", "type": "relu", "inputs": ["pool"]},
    {"name": "s", "type": "scale", "inputs": ["act"], "value": 0.5}])"));
  std::mt19937_64 rng(5);
  const Tensor small = random_tensor({1, 2, 7, 9}, rng), large = random_tensor({1, 2, 13, 11}, rng);
  Graph reused(spec);
  reused.reshape({{"data", small.shape()}, {"label", {1, 1, 7, 9}}});
  reused.blob("data") = small;
  reused.forward(Mode::test);
  reused.reshape({{"data", large.shape()}, {"label", {1, 1, 13, 11}}});
  reused.blob("data") = large;
  reused.forward(Mode::test);
  Graph fresh(spec);
  fresh.reshape({{"data", large.shape()}, {"label", {1, 1, 13, 11}}});
  fresh.blob("data") = large;
  fresh.forward(Mode::test);
  const Tensor& a = reused.blob("s");
  const Tensor& b = fresh.blob("s");
  REQUIRE(a.shape() == b.shape());
  for (int64_t i = 0; i < a.numel(); ++i) CHECK(a[i] == b[i]);
}

TEST_CASE("the memory plan changes no number: losses, param grads and outputs match a graph without it") {
  // conv -> relu (in place) -> pool -> conv -> relu -> fan-out into a sum,
  // 1x1 conv and a deconv, then the loss: shared gradient buffers, in-place
  // ReLU fused into the conv before it (c1 on im2col, c2 with 64 channels on
  // Winograd), reused values
  const json spec = spec_with(json::parse(R"([
    {"name": "c1", "type": "conv", "inputs": ["data"], "num_output": 64, "kernel": 3, "pad": 1},
    {"name": "r1", "type": "relu", "inputs": ["c1"]},
    {"name": "p1", "type": "max_pool", "inputs": ["r1"], "kernel": 2, "stride": 2},
    {"name": "c2", "type": "conv", "inputs": ["p1"], "num_output": 64, "kernel": 3, "pad": 1},
    {"name": "r2", "type": "relu", "inputs": ["c2"]},
    {"name": "s", "type": "scale", "inputs": ["r2"], "value": 0.5},
    {"name": "f", "type": "sum", "inputs": ["r2", "s"]},
    {"name": "c3", "type": "conv", "inputs": ["f"], "num_output": 3, "kernel": 1},
    {"name": "up", "type": "deconv", "inputs": ["c3"], "num_output": 3, "kernel": 4, "stride": 2, "pad": 1,
     "bias": false, "weight_init": "bilinear", "lr_mult": 0},
    {"name": "loss", "type": "softmax_loss", "inputs": ["up", "label"], "normalize": "none"}])"));
  std::mt19937_64 rng(11);
  const Tensor data = random_tensor({1, 2, 8, 10}, rng, -1, 1, 0.01f);
  Tensor label({1, 1, 8, 10});
  for (int64_t i = 0; i < label.numel(); ++i) label[i] = static_cast<float>(i % 3);
  GraphOptions plain;
  plain.reuse_memory = false;
  GraphOptions values;
  values.reuse_values = true;
  const TrainedRun reference = train_two_steps(spec, plain, data, label, 3);
  for (const GraphOptions& options : {GraphOptions{}, values}) {
    const TrainedRun planned = train_two_steps(spec, options, data, label, 3);
    CHECK(planned.loss == reference.loss);
    CHECK(planned.bytes < reference.bytes);
    for (int64_t i = 0; i < reference.scores.numel(); ++i) REQUIRE(planned.scores[i] == reference.scores[i]);
    for (const auto& [name, grad] : reference.grads) {
      INFO(name);
      for (int64_t i = 0; i < grad.numel(); ++i) REQUIRE(planned.grads.at(name)[i] == grad[i]);
    }
  }
}

TEST_CASE("a ReLU's backward folds into the conv or pool that reads it, changing no number") {
  // r1 -> Winograd conv (64 -> 64 at 32x32: masks as it writes), r2 -> max pool, r3 -> 1x1 conv on
  // im2col (masks after), r4 read by two layers (not folded); a batch of two, so that the bits run on
  // across images. Folded ReLUs do nothing in backward; losses, parameter gradients and scores are those
  // of the graph without a memory plan (where nothing folds), bit for bit.
  const json spec = spec_with(json::parse(R"([
    {"name": "c1", "type": "conv", "inputs": ["data"], "num_output": 64, "kernel": 3, "pad": 1},
    {"name": "r1", "type": "relu", "inputs": ["c1"]},
    {"name": "c2", "type": "conv", "inputs": ["r1"], "num_output": 64, "kernel": 3, "pad": 1},
    {"name": "r2", "type": "relu", "inputs": ["c2"]},
    {"name": "p2", "type": "max_pool", "inputs": ["r2"], "kernel": 2, "stride": 2},
    {"name": "c3", "type": "conv", "inputs": ["p2"], "num_output": 8, "kernel": 3, "pad": 1},
    {"name": "r3", "type": "relu", "inputs": ["c3"]},
    {"name": "c4", "type": "conv", "inputs": ["r3"], "num_output": 6, "kernel": 1},
    {"name": "r4", "type": "relu", "inputs": ["c4"]},
    {"name": "s", "type": "scale", "inputs": ["r4"], "value": 0.5},
    {"name": "f", "type": "sum", "inputs": ["r4", "s"]},
    {"name": "c5", "type": "conv", "inputs": ["f"], "num_output": 3, "kernel": 1},
    {"name": "up", "type": "deconv", "inputs": ["c5"], "num_output": 3, "kernel": 4, "stride": 2, "pad": 1,
     "bias": false, "weight_init": "bilinear", "lr_mult": 0},
    {"name": "loss", "type": "softmax_loss", "inputs": ["up", "label"], "normalize": "none"}])"));
  std::mt19937_64 rng(17);
  const Tensor data = random_tensor({2, 2, 32, 32}, rng, -1, 1, 0.01f);
  Tensor label({2, 1, 32, 32});
  for (int64_t i = 0; i < label.numel(); ++i) label[i] = static_cast<float>(i % 3);
  const auto run = [&](GraphOptions options, std::vector<bool>& folded) {
    return train_two_steps(spec, options, data, label, 5, [&](Graph& graph) {
      for (const char* relu : {"r1", "r2", "r3", "r4"})
        folded.push_back(dynamic_cast<ReluLayer&>(*graph.find_layer(relu)).backward_folded());
    });
  };
  GraphOptions plain;
  plain.reuse_memory = false;
  std::vector<bool> folded_without_plan, folded;
  const TrainedRun reference = run(plain, folded_without_plan);
  const TrainedRun planned = run(GraphOptions{}, folded);
  CHECK(folded_without_plan == std::vector<bool>{false, false, false, false});
  CHECK(folded == std::vector<bool>{true, true, true, false});
  CHECK(planned.loss == reference.loss);
  for (int64_t i = 0; i < reference.scores.numel(); ++i) REQUIRE(planned.scores[i] == reference.scores[i]);
  for (const auto& [name, grad] : reference.grads) {
    INFO(name);
    REQUIRE(std::memcmp(planned.grads.at(name).data(), grad.data(), grad.numel() * sizeof(float)) == 0);
  }
}

TEST_CASE("a plan-only graph knows every blob's shape and the input shapes for a size") {
  const json spec = {{"inputs", {{"data", {{"channels", 3}}}, {"label", {{"channels", 1}}}}},
                     {"layers",
                      {{{"name", "c"}, {"type", "conv"}, {"inputs", {"data"}}, {"num_output", 4}, {"kernel", 3}},
                       {{"name", "p"}, {"type", "max_pool"}, {"inputs", {"c"}}, {"kernel", 2}, {"stride", 2}}}}};
  GraphOptions options;
  options.plan_only = true;
  Graph graph(spec, "graph", options);
  const auto shapes = graph.input_shapes(6000, 8000);
  CHECK(shapes.at("data") == Shape{1, 3, 6000, 8000});
  CHECK(shapes.at("label") == Shape{1, 1, 6000, 8000});
  CHECK(graph.image_input() == "data");
  graph.reshape(shapes);
  CHECK(graph.blob_shape("c") == Shape{1, 4, 5998, 7998});
  CHECK(graph.blob_shape("p") == Shape{1, 4, 2999, 3999});
  CHECK(graph.blob_shape("data") == Shape{1, 3, 6000, 8000});
}

TEST_CASE("forward_inference computes as an inference-only graph does, and the graph trains as before after it") {
  // a 64-channel 3x3 conv on a 40x44 map: Winograd, F(4x4, 3x3) in inference, F(2x2, 3x3) in training
  const json spec = {{"inputs", {{"data", {{"channels", 64}}}, {"label", {{"channels", 1}}}}},
                     {"layers", json::parse(R"([
    {"name": "conv", "type": "conv", "inputs": ["data"], "num_output": 64, "kernel": 3, "pad": 1},
    {"name": "relu", "type": "relu", "inputs": ["conv"]},
    {"name": "score", "type": "conv", "inputs": ["relu"], "num_output": 3, "kernel": 1},
    {"name": "loss", "type": "softmax_loss", "inputs": ["score", "label"]}])")}};
  const std::map<std::string, Shape> shapes = {{"data", {1, 64, 40, 44}}, {"label", {1, 1, 40, 44}}};
  GraphOptions training_options;
  training_options.reuse_values = true;
  Graph training(spec, "graph", training_options);
  GraphOptions inference_options;
  inference_options.inference_only = true;
  inference_options.skip_loss_in_test = true;
  Graph inference(spec, "graph", inference_options);
  training.reshape(shapes);
  inference.reshape(shapes);
  training.init_params(5);
  for (size_t i = 0; i < training.params().size(); ++i) inference.params()[i]->data = training.params()[i]->data;
  std::mt19937_64 rng(6);
  const Tensor data = random_tensor({1, 64, 40, 44}, rng);
  for (Graph* g : {&training, &inference}) g->blob("data") = data;
  training.blob("label").zero();
  auto scores = [&](Graph& g) { return std::vector<float>(g.blob("score").data(), g.blob("score").data() + g.blob("score").numel()); };

  training.forward(Mode::train);
  const std::vector<float> trained_before = scores(training);
  training.forward(Mode::test);
  const std::vector<float> tested = scores(training);
  training.forward_inference();
  const std::vector<float> inferred = scores(training);
  inference.forward(Mode::test);
  CHECK(inferred == scores(inference));  // bit for bit: the same tile, the same passes
  CHECK(inferred != tested);             // and not the training forward's F(2x2) rounding
  double worst = 0, largest = 0;
  for (size_t i = 0; i < tested.size(); ++i) {
    worst = std::max(worst, static_cast<double>(std::fabs(inferred[i] - tested[i])));
    largest = std::max(largest, static_cast<double>(std::fabs(tested[i])));
  }
  CHECK(worst <= 1e-5 * largest);  // the same scores to float rounding
  training.forward(Mode::train);
  CHECK(scores(training) == trained_before);  // the layers are back on training's forward
}

TEST_CASE("deferred zeroing of the parameter gradients changes no number, and a gradient no backward writes is zero") {
  // convs on every weight-gradient path: im2col (2 channels), Winograd (64), a 7x7 over a map with a
  // constant frame (the padded input), 1x1; "dead" feeds nothing the loss reads; two images, two steps
  // (the second on stale gradients), and two backward passes that add (iter_size) without zeroing between
  const json spec = spec_with(json::parse(R"([
    {"name": "c1", "type": "conv", "inputs": ["data"], "num_output": 64, "kernel": 3, "pad": 4},
    {"name": "r1", "type": "relu", "inputs": ["c1"]},
    {"name": "c2", "type": "conv", "inputs": ["r1"], "num_output": 64, "kernel": 3, "pad": 1},
    {"name": "r2", "type": "relu", "inputs": ["c2"]},
    {"name": "c3", "type": "conv", "inputs": ["r2"], "num_output": 8, "kernel": 7},
    {"name": "c4", "type": "conv", "inputs": ["c3"], "num_output": 3, "kernel": 1},
    {"name": "dead", "type": "conv", "inputs": ["r2"], "num_output": 2, "kernel": 1},
    {"name": "loss", "type": "softmax_loss", "inputs": ["c4", "label"], "normalize": "none"}])"));
  std::mt19937_64 rng(37);
  const Tensor data = random_tensor({2, 2, 12, 14}, rng, -1, 1, 0.01f);
  Tensor label({2, 1, 12, 14});
  for (int64_t i = 0; i < label.numel(); ++i) label[i] = static_cast<float>(i % 3);
  auto run = [&](bool deferred, int passes) {
    Graph graph(spec, "graph", GraphOptions{});
    graph.reshape({{"data", data.shape()}, {"label", label.shape()}});
    graph.init_params(5);
    graph.blob("data") = data;
    graph.blob("label") = label;
    for (const Param* p : graph.params()) CHECK_FALSE(p->grad_deferred);
    std::map<std::string, Tensor> grads;
    for (int step = 0; step < 2; ++step) {
      for (Param* p : graph.params())
        if (!p->frozen()) p->grad.fill(std::numeric_limits<float>::quiet_NaN());  // stale values
      graph.zero_param_grads(deferred);
      for (int pass = 0; pass < passes; ++pass) {
        graph.forward(Mode::train);
        graph.backward();
      }
    }
    for (Param* p : graph.params()) {
      CHECK_FALSE(p->grad_deferred);
      if (!p->frozen()) grads[p->name] = p->grad;
    }
    return grads;
  };
  for (int passes : {1, 2}) {
    INFO("passes " << passes);
    const auto eager = run(false, passes), deferred = run(true, passes);
    for (const auto& [name, grad] : eager) {
      INFO(name);
      for (int64_t i = 0; i < grad.numel(); ++i) REQUIRE(deferred.at(name)[i] == grad[i]);
    }
    for (int64_t i = 0; i < eager.at("dead.weight").numel(); ++i) REQUIRE(deferred.at("dead.weight")[i] == 0.f);
    double c1 = 0;
    for (int64_t i = 0; i < eager.at("c1.weight").numel(); ++i) c1 += std::fabs(eager.at("c1.weight")[i]);
    CHECK(c1 > 0);
  }
}
