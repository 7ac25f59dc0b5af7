// Batches (solver.batch_size): stacking and padding, batch N against
// iter_size N (the same update), padding that changes nothing of the real
// pixels' loss and gradients, batch norm with batches, and per-image dropout.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "fcn/core/error.hpp"
#include "fcn/data/batch.hpp"
#include "data_fixtures.hpp"
#include "fcn/data/synthetic.hpp"
#include "fcn/io/image_io.hpp"
#include "fcn/io/safetensors.hpp"
#include "fcn/train/trainer.hpp"

using namespace fcn;
namespace fs = std::filesystem;

namespace {

// one directory for every test of this file, removed at exit
const fs::path& work_dir() {
  static const fcn::testing::ScratchDir dir("batch");
  static const fs::path path = dir.path();
  return path;
}

// Equal-size images: a synthetic VOC-layout dataset.
std::string equal_size_data() {
  static const std::string dir = [] {
    SyntheticSpec spec;
    spec.out = (work_dir() / "equal").string();
    spec.train = 6;
    spec.val = 1;
    spec.height = 36;
    spec.width = 44;
    spec.classes = 3;
    spec.seed = 11;
    write_synthetic_dataset(spec);
    return spec.out;
  }();
  return dir;
}

// Three images of different (even) sizes in the folder layout, random
// pixels and labels with some void.
std::string mixed_size_data() {
  static const std::string dir = [] {
    const fs::path root = work_dir() / "mixed";
    fs::create_directories(root / "images");
    fs::create_directories(root / "labels");
    std::mt19937_64 rng(5);
    std::uniform_int_distribution<int> byte(0, 255), label(0, 3);
    const int sizes[3][2] = {{10, 14}, {16, 8}, {12, 12}};
    std::ofstream list(root / "train.txt");
    for (int i = 0; i < 3; ++i) {
      Image image(sizes[i][0], sizes[i][1], 3), labels(sizes[i][0], sizes[i][1], 1);
      for (auto& p : image.pixels) p = static_cast<uint8_t>(byte(rng));
      for (auto& p : labels.pixels) {
        const int l = label(rng);
        p = static_cast<uint8_t>(l == 3 ? 255 : l);
      }
      const std::string id = "m" + std::to_string(i);
      write_image((root / "images" / (id + ".png")).string(), image);
      write_label_png((root / "labels" / (id + ".png")).string(), labels);
      list << id << "\n";
    }
    return root.string();
  }();
  return dir;
}

json solver_section(int64_t batch_size, int64_t iter_size) {
  return {{"base_lr", 0.01},      {"momentum", 0.9},   {"weight_decay", 0.0005}, {"batch_size", batch_size},
          {"iter_size", iter_size}, {"max_iter", 2},   {"snapshot_every", 0},   {"test_every", 0},
          {"display_every", 0},   {"threads", 1},      {"seed", 3}};
}

TrainOptions options_for(const std::string& run, json config) {
  TrainOptions options;
  options.config = parse_config(config, "test config");
  options.out_dir = (work_dir() / run).string();
  options.handle_signals = false;
  fs::remove_all(options.out_dir);
  return options;
}

// The zoo's FCN-8s (VGG16 at width 1/16, dropout 0.5) on equal-size images.
json fcn8s_config(int64_t batch_size, int64_t iter_size) {
  // score_init msra: the reference's zero score layers would leave every other gradient 0
  return {{"model", {{"arch", "fcn8s"}, {"num_classes", 3}, {"width", 0.0625}, {"score_init", "msra"}}},
          {"data", {{"format", "voc"}, {"root", equal_size_data()}, {"seed", 9}, {"input_scale", 0.017}}},
          {"solver", solver_section(batch_size, iter_size)}};
}

// Pointwise convs, a 2x2/2 max pool and a 2x2/2 deconv: on even-size images
// every output pixel depends only on its own 2x2 block of input pixels, so
// the bottom/right padding of a batch cannot reach a real pixel's output,
// whatever the biases; the padded pixels carry the ignore label, so they
// add nothing to the loss or, through these local layers, to any gradient.
json local_graph_config(int64_t batch_size, int64_t iter_size) {
  const json graph = json::parse(R"({
    "inputs": {"data": {"channels": 3}, "label": {"channels": 1}},
    "layers": [
      {"name": "conv1", "type": "conv", "inputs": ["data"], "num_output": 6, "kernel": 1,
       "bias_init": {"type": "constant", "value": 0.3}},
      {"name": "relu1", "type": "relu", "inputs": ["conv1"]},
      {"name": "pool1", "type": "max_pool", "inputs": ["relu1"], "kernel": 2, "stride": 2},
      {"name": "coarse", "type": "conv", "inputs": ["pool1"], "num_output": 3, "kernel": 1,
       "bias_init": {"type": "constant", "value": -0.2}},
      {"name": "up", "type": "deconv", "inputs": ["coarse"], "num_output": 3, "kernel": 2, "stride": 2,
       "weight_init": {"type": "gaussian", "std": 0.3}},
      {"name": "skip", "type": "conv", "inputs": ["relu1"], "num_output": 3, "kernel": 1},
      {"name": "score", "type": "sum", "inputs": ["up", "skip"]},
      {"name": "loss", "type": "softmax_loss", "inputs": ["score", "label"], "normalize": "none"}]})");
  return {{"model", {{"graph", graph}, {"num_classes", 3}}},
          {"data", {{"format", "folder"}, {"root", mixed_size_data()}, {"image_ext", ".png"}, {"seed", 2},
                    {"input_scale", 0.017}}},
          {"solver", solver_section(batch_size, iter_size)}};
}

struct StepResult {
  double loss = 0;
  std::map<std::string, Tensor> grads, params;
};

// One step's gradient (the mean over its passes, what the solver applies)
// and the params after the update.
StepResult one_step(const std::string& run, const json& config) {
  Trainer trainer(options_for(run, config));
  StepResult out;
  out.loss = trainer.accumulate_gradients(0);
  const auto passes = static_cast<float>(config["solver"]["iter_size"].get<int64_t>());
  for (Param* p : trainer.graph().params()) {
    if (p->frozen()) continue;
    Tensor mean = p->grad;
    for (int64_t i = 0; i < mean.numel(); ++i) mean[i] /= passes;
    out.grads[p->name] = mean;
  }
  REQUIRE(trainer.apply_update(0, out.loss, 0.01));
  for (Param* p : trainer.graph().params()) out.params[p->name] = p->data;
  return out;
}

// Equal to float rounding: each element within `rtol` of the tensor's largest magnitude.
void require_close(const std::map<std::string, Tensor>& a, const std::map<std::string, Tensor>& b, double rtol) {
  REQUIRE(a.size() == b.size());
  for (const auto& [name, ta] : a) {
    const Tensor& tb = b.at(name);
    REQUIRE(ta.shape() == tb.shape());
    double scale = 0, worst = 0;
    for (int64_t i = 0; i < ta.numel(); ++i) {
      scale = std::max(scale, static_cast<double>(std::abs(ta[i])));
      worst = std::max(worst, static_cast<double>(std::abs(ta[i] - tb[i])));
    }
    INFO(name << ": largest difference " << worst << " of largest value " << scale);
    CHECK(scale > 0);
    CHECK(worst <= rtol * scale);
  }
}

}  // namespace

TEST_CASE("stack_samples pads images with 0 (the mean) and labels with the ignore label, bottom and right") {
  Sample a, b;
  a.image = Tensor({1, 3, 2, 3});
  a.label = Tensor({1, 1, 2, 3});
  a.image.fill(1.f);
  a.label.fill(2.f);
  a.global_index = 7;
  b.image = Tensor({1, 3, 3, 2});
  b.label = Tensor({1, 1, 3, 2});
  b.image.fill(-1.f);
  b.label.fill(1.f);
  b.global_index = 8;
  const Batch batch = stack_samples({a, b}, 255.f);
  REQUIRE(batch.image.shape() == Shape{2, 3, 3, 3});
  REQUIRE(batch.label.shape() == Shape{2, 1, 3, 3});
  CHECK(batch.global_indices == std::vector<int64_t>{7, 8});
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = 0; y < 3; ++y)
      for (int64_t x = 0; x < 3; ++x) {
        INFO(c << " " << y << " " << x);
        CHECK(batch.image[((0 * 3 + c) * 3 + y) * 3 + x] == (y < 2 ? 1.f : 0.f));
        CHECK(batch.image[((1 * 3 + c) * 3 + y) * 3 + x] == (x < 2 ? -1.f : 0.f));
        if (c == 0) {
          CHECK(batch.label[(0 * 3 + y) * 3 + x] == (y < 2 ? 2.f : 255.f));
          CHECK(batch.label[(1 * 3 + y) * 3 + x] == (x < 2 ? 1.f : 255.f));
        }
      }
  Sample bad = a;
  bad.label = Tensor({1, 1, 2, 2});
  CHECK_THROWS_AS(stack_samples({a, bad}, 255.f), Error);
  CHECK_THROWS_AS(stack_samples({}, 255.f), Error);
}

TEST_CASE("FCN-8s: one step of batch_size 3 equals iter_size 3 (equal-size images, dropout)") {
  const StepResult batch = one_step("fcn8s_batch", fcn8s_config(3, 1));
  const StepResult iter = one_step("fcn8s_iter", fcn8s_config(1, 3));
  CHECK(batch.loss == Approx(iter.loss).epsilon(1e-5));
  require_close(batch.grads, iter.grads, 1e-4);
  require_close(batch.params, iter.params, 1e-5);
}

TEST_CASE("a batch of 3 different sizes, padded, gives the loss and gradients of the images one by one") {
  const StepResult batch = one_step("mixed_batch", local_graph_config(3, 1));
  const StepResult iter = one_step("mixed_iter", local_graph_config(1, 3));
  CHECK(batch.loss == Approx(iter.loss).epsilon(1e-5));
  require_close(batch.grads, iter.grads, 1e-5);
  require_close(batch.params, iter.params, 1e-5);
}

TEST_CASE("a batch-norm net trains with batch_size 2: batch statistics over both images, running statistics move") {
  const json graph = json::parse(R"({
    "inputs": {"data": {"channels": 3}, "label": {"channels": 1}},
    "layers": [
      {"name": "conv1", "type": "conv", "inputs": ["data"], "num_output": 4, "kernel": 3, "pad": 1},
      {"name": "bn1", "type": "batch_norm", "inputs": ["conv1"]},
      {"name": "relu1", "type": "relu", "inputs": ["bn1"]},
      {"name": "score", "type": "conv", "inputs": ["relu1"], "num_output": 3, "kernel": 1},
      {"name": "loss", "type": "softmax_loss", "inputs": ["score", "label"], "normalize": "valid"}]})");
  json config = {{"model", {{"graph", graph}, {"num_classes", 3}}},
                 {"data", {{"format", "voc"}, {"root", equal_size_data()}, {"seed", 9}, {"input_scale", 0.017}}},
                 {"solver", solver_section(2, 1)}};
  Trainer trainer(options_for("bn_batch", config));
  const TrainResult result = trainer.run();
  CHECK(result.iter == 2);
  CHECK(std::isfinite(result.loss));
  const SafetensorsFile weights = read_safetensors(result.final_weights);
  const Tensor& mean = weights.tensors.at("bn1.running_mean");
  const Tensor& var = weights.tensors.at("bn1.running_var");
  for (int64_t c = 0; c < mean.numel(); ++c) {
    CHECK(mean[c] != 0.f);
    CHECK(var[c] != 1.f);
  }
}

TEST_CASE("dropout draws each image of a batch from its own generator: the masks of the images one at a time") {
  const json spec = {{"inputs", {{"x", {{"channels", 2}}}}},
                     {"layers", json::array({{{"name", "drop"}, {"type", "dropout"}, {"inputs", {"x"}}}})}};
  Graph graph(spec, "test");
  const std::vector<uint64_t> seeds = {41, 42, 43};
  // the batch
  graph.reshape({{"x", {3, 2, 4, 5}}});
  graph.blob("x").fill(1.f);
  graph.seed_images(seeds);
  graph.forward(Mode::train);
  const Tensor batch = graph.blob("drop");
  // one by one
  graph.reshape({{"x", {1, 2, 4, 5}}});
  for (size_t n = 0; n < seeds.size(); ++n) {
    graph.blob("x").fill(1.f);
    graph.seed_images({seeds[n]});
    graph.forward(Mode::train);
    const Tensor& one = graph.blob("drop");
    for (int64_t i = 0; i < one.numel(); ++i) REQUIRE(batch[static_cast<int64_t>(n) * one.numel() + i] == one[i]);
  }
  // a batch of the wrong size for the generators is an error, not a silent reuse
  graph.seed_images(seeds);
  CHECK_THROWS_WITH(graph.forward(Mode::train), Catch::Contains("3 per-image generators for a batch of 1"));
}
