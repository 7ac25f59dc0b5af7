// Checkpoints: exact round trip of params, momentum and metadata; strict
// resume; lenient --init; a failed write keeps the previous file.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "fcn/train/checkpoint.hpp"
#include "fcn/core/error.hpp"

using namespace fcn;
namespace fs = std::filesystem;

namespace {

json net_spec(int64_t hidden) {
  return {{"inputs", {{"data", {{"channels", 3}}}, {"label", {{"channels", 1}}}}},
          {"layers",
           {{{"name", "conv1"}, {"type", "conv"}, {"inputs", {"data"}}, {"num_output", hidden}, {"kernel", 3}, {"pad", 1}},
            {{"name", "relu1"}, {"type", "relu"}, {"inputs", {"conv1"}}},
            {{"name", "score"}, {"type", "conv"}, {"inputs", {"relu1"}}, {"num_output", 2}, {"kernel", 1}},
            {{"name", "loss"}, {"type", "softmax_loss"}, {"inputs", {"score", "label"}}}}}};
}

std::unique_ptr<Graph> make_net(int64_t hidden, uint64_t seed) {
  auto graph = std::make_unique<Graph>(net_spec(hidden));
  graph->reshape({{"data", {1, 3, 5, 5}}, {"label", {1, 1, 5, 5}}});
  graph->init_params(seed);
  return graph;
}

// One SGD step on random data so that the momentum buffers are non-zero.
void train_one_step(Graph& graph, Solver& solver) {
  std::mt19937_64 rng(7);
  Tensor& data = graph.blob("data");
  for (int64_t i = 0; i < data.numel(); ++i) data[i] = static_cast<float>(rng() % 1000) / 500.f - 1.f;
  Tensor& label = graph.blob("label");
  for (int64_t i = 0; i < label.numel(); ++i) label[i] = static_cast<float>(rng() % 2);
  graph.zero_param_grads();
  graph.forward(Mode::train);
  graph.backward();
  solver.step(graph.params(), 0.1);
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), sizeof(float) * a.numel()) == 0;
}

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("fcn_test_checkpoint_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

}  // namespace

TEST_CASE("a checkpoint restores params, momentum and metadata bit for bit") {
  TempDir dir;
  SolverConfig config;
  config.momentum = 0.9;
  auto graph = make_net(4, 1);
  Solver solver(config);
  train_one_step(*graph, solver);
  const std::string path = dir.file(checkpoint_filename(12));
  CHECK(checkpoint_filename(12) == "iter_00000012.safetensors");
  save_checkpoint(path, *graph, &solver, {12, 0.125, "abc123", 99});

  auto restored = make_net(4, 2);  // different init
  Solver restored_solver(config);
  const CheckpointInfo info = load_checkpoint(path, *restored, restored_solver);
  CHECK(info.iter == 12);
  CHECK(info.lr == 0.125);
  CHECK(info.config_hash == "abc123");
  CHECK(info.seed == 99);
  for (Param* p : graph->params()) {
    INFO(p->name);
    CHECK(same_bits(p->data, restored->find_param(p->name)->data));
    CHECK(same_bits(solver.momentum().at(p->name), restored_solver.momentum().at(p->name)));
  }
  // the next step is identical too
  train_one_step(*graph, solver);
  train_one_step(*restored, restored_solver);
  for (Param* p : graph->params()) CHECK(same_bits(p->data, restored->find_param(p->name)->data));
}

TEST_CASE("resume rejects checkpoints of another model or format") {
  TempDir dir;
  auto graph = make_net(4, 1);
  Solver solver(SolverConfig{});
  const std::string path = dir.file("a.safetensors");
  save_checkpoint(path, *graph, &solver, {3, 0.1, "h", 1});
  auto wider = make_net(5, 1);
  Solver other(SolverConfig{});
  CHECK_THROWS_WITH(load_checkpoint(path, *wider, other),
                    Catch::Contains(path) && Catch::Contains("conv1.weight") && Catch::Contains("[5, 3, 3, 3]"));

  SafetensorsFile file = read_safetensors(path);
  file.tensors.erase("score.bias");
  write_safetensors(path, file);
  CHECK_THROWS_WITH(load_checkpoint(path, *graph, solver), Catch::Contains("lacks 1 params") && Catch::Contains("score.bias"));

  file = read_safetensors(path);
  file.metadata.erase("iter");
  write_safetensors(path, file);
  CHECK_THROWS_WITH(load_checkpoint(path, *graph, solver), Catch::Contains("not an fcn checkpoint") && Catch::Contains("iter"));
  file.metadata["iter"] = "3";
  file.metadata["format_version"] = "7";
  write_safetensors(path, file);
  CHECK_THROWS_WITH(load_checkpoint(path, *graph, solver), Catch::Contains("format version 7"));
}

TEST_CASE("init weights: matching names and shapes are copied, the rest reported") {
  TempDir dir;
  auto source = make_net(4, 1);
  SafetensorsFile file;
  for (Param* p : source->params()) file.tensors[p->name] = p->data;
  file.tensors["conv1.weight"] = Tensor({4, 3, 1, 1});  // wrong shape: skipped
  file.tensors["fc9.weight"] = Tensor({2});            // no such param: unused
  file.tensors.erase("score.bias");                    // missing: keeps its init
  const std::string path = dir.file("init.safetensors");
  write_safetensors(path, file);

  auto graph = make_net(4, 5);
  const Tensor conv1_before = graph->find_param("conv1.weight")->data;
  const LoadReport report = load_init_weights(path, *graph);
  CHECK(report.loaded == std::vector<std::string>{"conv1.bias", "score.weight"});
  REQUIRE(report.skipped.size() == 1);
  CHECK_THAT(report.skipped[0], Catch::Contains("conv1.weight") && Catch::Contains("[4, 3, 1, 1]"));
  CHECK(report.missing == std::vector<std::string>{"score.bias"});
  CHECK(report.unused == std::vector<std::string>{"fc9.weight"});
  CHECK(same_bits(graph->find_param("conv1.weight")->data, conv1_before));
  CHECK(same_bits(graph->find_param("score.weight")->data, source->find_param("score.weight")->data));
}

TEST_CASE("init report groups params by layer and module path") {
  CHECK(param_groups({}).empty());
  CHECK(param_groups({"score_fr.weight", "score_fr.bias", "upscore2.weight", "score_pool4.weight"}) ==
        "score_fr, upscore2, score_pool4");
  CHECK(param_groups({"backbone.conv1.weight", "backbone.bn1.running_mean", "backbone.layer1.0.conv1.weight",
                      "classifier.4.bias", "aux_classifier.0.weight"}) == "backbone.*, classifier.*, aux_classifier.*");
  CHECK(param_groups({"a.weight", "b.weight", "c.weight"}, 2) == "a, b, ... (1 more)");
}

TEST_CASE("a failed checkpoint write is an error that keeps the previous checkpoint") {
  TempDir dir;
  auto graph = make_net(4, 1);
  Solver solver(SolverConfig{});
  const std::string path = dir.file("iter_00000004.safetensors");
  save_checkpoint(path, *graph, &solver, {4, 0.1, "h", 1});
  fs::create_directory(path + ".tmp");  // the temp file cannot be created: as a full or read-only disk
  CHECK_THROWS_WITH(save_checkpoint(path, *graph, &solver, {5, 0.1, "h", 1}), Catch::Contains(path));
  Solver again(SolverConfig{});
  CHECK(load_checkpoint(path, *graph, again).iter == 4);
}

TEST_CASE("latest_checkpoint picks the highest iteration") {
  TempDir dir;
  CHECK(latest_checkpoint(dir.path.string()).empty());
  CHECK(latest_checkpoint(dir.file("missing")).empty());
  for (const char* name : {"iter_00000008.safetensors", "iter_00000012.safetensors", "iter_00000100.safetensors.tmp",
                           "final.safetensors"})
    write_file_atomic(dir.file(name), "x");
  CHECK(latest_checkpoint(dir.path.string()) == dir.file("iter_00000012.safetensors"));
}

TEST_CASE("the config hash ignores run length and logging, not the trajectory") {
  const json base = {{"model", {{"arch", "fcn32s"}}}, {"solver", {{"base_lr", 0.1}, {"max_iter", 10}, {"display_every", 5}}},
                     {"init", {{"weights", ""}}}};
  json longer = base;
  longer["solver"]["max_iter"] = 20;
  longer["solver"]["display_every"] = 1;
  longer["init"]["weights"] = "x.safetensors";
  json other = base;
  other["solver"]["base_lr"] = 0.2;
  CHECK(config_hash(base).size() == 16);
  CHECK(config_hash(base) == config_hash(longer));
  CHECK(config_hash(base) != config_hash(other));

  // what a refused resume names: the keys the hash sees, not the ones it ignores
  CHECK(config_hash_differences(base, longer).empty());
  CHECK(config_hash_differences(base, other) == std::vector<std::string>{"solver.base_lr"});
  json bf16 = longer;
  bf16["model"]["precision"] = "bf16";
  CHECK(config_hash_differences(base, bf16) == std::vector<std::string>{"model.precision"});
}
