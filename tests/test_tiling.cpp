// Tiled inference (src/eval/tiling.cpp, TrainedModel): the tile plan, masks
// of tiled and whole-image passes, the memory estimate's choice, and
// test-time augmentation.
#include <catch2/catch.hpp>

#include <fstream>
#include <random>

#include "data_fixtures.hpp"
#include "fcn/core/error.hpp"
#include "fcn/data/augment.hpp"
#include "fcn/eval/memory_estimate.hpp"
#include "fcn/eval/trained_model.hpp"
#include "fcn/io/safetensors.hpp"
#include "fcn/model/model_zoo.hpp"

using namespace fcn;
using fcn::testing::ScratchDir;

namespace {

// A sanitizer build (FCN_SANITIZE) runs many times slower: the two large
// cases run narrower there, at the same image sizes, so every code path
// (several tiles, their margins, the budget's search for a core) still runs
// under ASan and UBSan.
#ifdef FCN_SANITIZE_BUILD
constexpr double kNarrower = 4;
#else
constexpr double kNarrower = 1;
#endif

// A config for `model` and random weights for it, written under `dir`.
struct SavedModel {
  std::string config, weights;
};

SavedModel save_model(const ScratchDir& dir, const json& model, uint64_t seed,
                      const std::function<void(Graph&)>& adjust = {}) {
  SavedModel saved{dir.file("config.json"), dir.file("weights.safetensors")};
  std::ofstream(saved.config) << json{{"model", model}}.dump();
  Config config = parse_config(json{{"model", model}}, "config");
  Graph graph(model_graph_spec(config.model), "model");
  std::map<std::string, Shape> shapes;
  for (const auto& name : graph.input_names()) shapes[name] = {1, graph.input_channels(name), 64, 64};
  graph.reshape(shapes);
  graph.init_params(seed);
  // gaussian scores of a fresh FCN are near zero: give the score layers weights too
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.f, 0.05f);
  for (Param* p : graph.params())
    if (p->name.rfind("score", 0) == 0 && !p->frozen())
      for (int64_t i = 0; i < p->data.numel(); ++i) p->data[i] = normal(rng);
  if (adjust) adjust(graph);
  std::map<std::string, const Tensor*> tensors;
  for (Param* p : graph.params()) tensors[p->name] = &p->data;
  write_safetensors(saved.weights, tensors, {});
  return saved;
}

Tensor random_image(int64_t height, int64_t width, uint64_t seed) {
  // smooth blobs, so that the net's classes form regions as on photos
  Tensor image({1, 3, height / 16 + 1, width / 16 + 1});
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.f, 60.f);
  for (int64_t i = 0; i < image.numel(); ++i) image[i] = normal(rng);
  resize_bilinear(image, static_cast<int>(height), static_cast<int>(width));
  return image;
}

double agreement(const Image& a, const Image& b) {
  REQUIRE(a.pixels.size() == b.pixels.size());
  size_t same = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) same += a.pixels[i] == b.pixels[i];
  return static_cast<double>(same) / static_cast<double>(a.pixels.size());
}

}  // namespace

TEST_CASE("tiles: the cores cover every pixel once, tiles are cores plus the margin, on the stride's grid") {
  const TileMargins margins{32, 224};
  for (auto [height, width, core] : std::vector<std::array<int64_t, 3>>{{1000, 1500, 256}, {97, 33, 64}, {512, 512, 512}}) {
    const std::vector<Tile> tiles = plan_tiles(height, width, core, margins);
    std::vector<int> covered(static_cast<size_t>(height * width), 0);
    for (const Tile& t : tiles) {
      CHECK(t.top % margins.stride == 0);
      CHECK(t.left % margins.stride == 0);
      CHECK(t.top == std::max<int64_t>(0, t.core_top - margins.margin));
      CHECK(t.top + t.height == std::min(height, t.core_top + t.core_height + margins.margin));
      CHECK(t.left + t.width == std::min(width, t.core_left + t.core_width + margins.margin));
      for (int64_t y = t.core_top; y < t.core_top + t.core_height; ++y)
        for (int64_t x = t.core_left; x < t.core_left + t.core_width; ++x) ++covered[y * width + x];
    }
    CHECK(std::count(covered.begin(), covered.end(), 1) == height * width);
  }
  CHECK_THROWS_AS(plan_tiles(100, 100, 48, margins), Error);  // not a multiple of the stride
}

TEST_CASE("tiles: FCN-8s masks from tiles agree with the whole-image mask (1000x1500 in 512 px tiles)") {
  ScratchDir dir("tiling_fcn8s");
  const SavedModel saved =
      save_model(dir, {{"arch", "fcn8s"}, {"num_classes", 21}, {"width", 0.25 / kNarrower}}, 11);
  const Tensor image = random_image(1000, 1500, 5);
  InferenceOptions whole_options;
  TrainedModel whole(saved.config, {}, saved.weights, whole_options);
  const Image whole_mask = whole.predict_mask(image);
  CHECK(whole.plan_description(1000, 1500).rfind("whole", 0) == 0);
  InferenceOptions tiled_options;
  tiled_options.tile = 512;
  TrainedModel tiled(saved.config, {}, saved.weights, tiled_options);
  const Image tiled_mask = tiled.predict_mask(image);
  INFO(tiled.plan_description(1000, 1500));
  CHECK(tiled.plan_description(1000, 1500).find("tiles of 512 px") != std::string::npos);
  std::set<uint8_t> classes(whole_mask.pixels.begin(), whole_mask.pixels.end());
  REQUIRE(classes.size() >= 3);  // a mask worth comparing
  CHECK(agreement(whole_mask, tiled_mask) >= 0.995);
}

TEST_CASE("tiles: a memory budget below the whole-image estimate tiles, and the masks agree") {
  ScratchDir dir("tiling_budget");
  const json model = {{"arch", "fcn32s"}, {"num_classes", 5}, {"width", 0.125 / kNarrower}};
  const SavedModel saved = save_model(dir, model, 3);
  const Tensor image = random_image(1400, 1800, 8);
  const json spec = model_graph_spec(parse_config(json{{"model", model}}, "config").model);
  const MemoryEstimate graph = estimate_inference_memory(spec, 1400, 1800);
  // a quarter of the graph's buffers below what a whole pass needs, which
  // includes the process's resident size (measured when a model loads; a
  // sanitizer build's shadow memory too): several tiles in any build
  TrainedModel probe(saved.config, {}, saved.weights);
  InferenceOptions budget;
  budget.max_memory = probe.whole_image_bytes(1400, 1800) - (graph.blobs + graph.scratch) / 4;
  TrainedModel tiled(saved.config, {}, saved.weights, budget);
  const std::string plan = tiled.plan_description(1400, 1800);
  INFO(plan);
  CHECK(plan.find("tiles of") != std::string::npos);
  TrainedModel whole(saved.config, {}, saved.weights);
  CHECK(agreement(whole.predict_mask(image), tiled.predict_mask(image)) >= 0.995);
  InferenceOptions tiny;
  tiny.max_memory = 1 << 20;  // 1 MiB: not even the params fit
  TrainedModel impossible(saved.config, {}, saved.weights, tiny);
  CHECK_THROWS_WITH(impossible.predict_mask(image), Catch::Contains("raise --max-memory"));
}

TEST_CASE("tta: flip TTA is flip-equivariant, and on a symmetric input with a mirror-symmetric net it changes nothing") {
  ScratchDir dir("tta");
  // a net without pooling or crops: with kernels symmetric left-right it maps
  // a mirrored image to the mirrored scores exactly
  const json graph = {{"inputs", {{"data", {{"channels", 3}}}, {"label", {{"channels", 1}}}}},
                      {"layers",
                       {{{"name", "conv1"}, {"type", "conv"}, {"inputs", {"data"}}, {"num_output", 8}, {"kernel", 3},
                         {"pad", 1}, {"weight_init", {{"type", "gaussian"}, {"std", 0.05}}}},
                        {{"name", "relu1"}, {"type", "relu"}, {"inputs", {"conv1"}}},
                        {{"name", "score"}, {"type", "conv"}, {"inputs", {"relu1"}}, {"num_output", 4}, {"kernel", 3},
                         {"pad", 1}, {"weight_init", {{"type", "gaussian"}, {"std", 0.3}}}},
                        {{"name", "loss"}, {"type", "softmax_loss"}, {"inputs", {"score", "label"}}}}}};
  const json model = {{"graph", graph}, {"num_classes", 4}};
  const auto mirror_kernels = [](Graph& g) {
    for (Param* p : g.params()) {
      if (p->data.shape().size() != 4) continue;
      Tensor& w = p->data;
      for (int64_t plane = 0; plane < w.n() * w.c(); ++plane)
        for (int64_t y = 0; y < w.h(); ++y)
          for (int64_t x = 0; x < w.w() / 2; ++x) {
            float& a = w[(plane * w.h() + y) * w.w() + x];
            float& b = w[(plane * w.h() + y) * w.w() + (w.w() - 1 - x)];
            a = b = 0.5f * (a + b);
          }
    }
  };
  const SavedModel plain = save_model(dir, model, 4);
  Tensor image = random_image(40, 56, 2);
  InferenceOptions flip_tta;
  flip_tta.tta_flip = true;
  TrainedModel tta(plain.config, {}, plain.weights, flip_tta);
  Tensor mirrored = image;
  flip(mirrored);
  const Image a = tta.predict_mask(image), b = tta.predict_mask(mirrored);
  for (int y = 0; y < a.height; ++y)
    for (int x = 0; x < a.width; ++x) REQUIRE(a.at(y, x) == b.at(y, a.width - 1 - x));

  ScratchDir symmetric_dir("tta_symmetric");
  const SavedModel symmetric = save_model(symmetric_dir, model, 4, mirror_kernels);
  Tensor symmetric_image = image;  // left half mirrored onto the right
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = 0; y < 40; ++y)
      for (int64_t x = 28; x < 56; ++x)
        symmetric_image[(c * 40 + y) * 56 + x] = symmetric_image[(c * 40 + y) * 56 + (55 - x)];
  TrainedModel no_tta(symmetric.config, {}, symmetric.weights);
  TrainedModel with_tta(symmetric.config, {}, symmetric.weights, flip_tta);
  const Image plain_mask = no_tta.predict_mask(symmetric_image);
  CHECK(plain_mask.pixels == with_tta.predict_mask(symmetric_image).pixels);
  std::set<uint8_t> classes(plain_mask.pixels.begin(), plain_mask.pixels.end());
  CHECK(classes.size() >= 2);
}

TEST_CASE("tta: scales average at the image's size, and options are checked") {
  ScratchDir dir("tta_scales");
  const SavedModel saved = save_model(dir, {{"arch", "fcn32s"}, {"num_classes", 3}, {"width", 0.0625}}, 9);
  const Tensor image = random_image(75, 101, 3);
  InferenceOptions scales;
  scales.tta_scales = {0.75, 1.0, 1.25};
  scales.tta_flip = true;
  TrainedModel model(saved.config, {}, saved.weights, scales);
  const Image mask = model.predict_mask(image);
  CHECK(mask.height == 75);
  CHECK(mask.width == 101);
  InferenceOptions bad;
  bad.tta_scales = {0.0};
  CHECK_THROWS_AS(TrainedModel(saved.config, {}, saved.weights, bad), Error);
}
