// The training loop on a tiny synthetic dataset and a tiny graph with
// dropout: outputs of a run, bit-exact resume (iter_size 2), stop requests,
// --init, and non-finite losses.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "fcn/train/checkpoint.hpp"
#include "fcn/data/synthetic.hpp"
#include "fcn/core/error.hpp"
#include "fcn/io/safetensors.hpp"
#include "fcn/train/trainer.hpp"

using namespace fcn;
namespace fs = std::filesystem;

namespace {

// A synthetic dataset shared by every test of this file, removed at exit.
fs::path dataset_root;

struct Cleanup {
  ~Cleanup() {
    if (!dataset_root.empty()) fs::remove_all(dataset_root);
  }
} cleanup;

const fs::path& work_dir() {
  if (dataset_root.empty()) {
    const fs::path dir = fs::temp_directory_path() / ("fcn_test_trainer_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    dataset_root = dir;
    SyntheticSpec spec;
    spec.out = (dir / "data").string();
    spec.train = 6;
    spec.val = 2;
    spec.height = 24;
    spec.width = 28;
    spec.classes = 3;
    spec.seed = 4;
    write_synthetic_dataset(spec);
  }
  return dataset_root;
}

json tiny_config() {
  const json graph = json::parse(R"({
    "inputs": {"data": {"channels": 3}, "label": {"channels": 1}},
    "layers": [
      {"name": "conv1", "type": "conv", "inputs": ["data"], "num_output": 6, "kernel": 3, "pad": 1},
      {"name": "relu1", "type": "relu", "inputs": ["conv1"]},
      {"name": "drop1", "type": "dropout", "inputs": ["relu1"], "ratio": 0.5},
      {"name": "score", "type": "conv", "inputs": ["drop1"], "num_output": 3, "kernel": 1},
      {"name": "loss", "type": "softmax_loss", "inputs": ["score", "label"], "normalize": "valid"}]})");
  return {{"model", {{"graph", graph}, {"num_classes", 3}}},
          {"data", {{"format", "voc"}, {"root", (work_dir() / "data").string()}, {"seed", 9}}},
          {"solver",
           {{"base_lr", 0.01}, {"momentum", 0.9}, {"weight_decay", 0.0005}, {"iter_size", 2}, {"max_iter", 6},
            {"snapshot_every", 3}, {"test_every", 3}, {"display_every", 2}, {"threads", 1}, {"seed", 3}}}};
}

TrainOptions options_for(const std::string& run, const std::vector<std::string>& overrides = {}) {
  json config = tiny_config();
  apply_overrides(config, overrides);
  TrainOptions options;
  options.config = parse_config(config, "test config");
  options.out_dir = (work_dir() / run).string();
  options.handle_signals = false;
  fs::remove_all(options.out_dir);
  return options;
}

TrainResult train_run(TrainOptions options) {
  Trainer trainer(std::move(options));
  return trainer.run();
}

// Params only (checkpoints also hold momentum).
std::map<std::string, Tensor> params_of(const std::string& path) {
  std::map<std::string, Tensor> params;
  for (auto& item : read_safetensors(path).tensors)
    if (item.first.find(".momentum") == std::string::npos) params.emplace(item.first, std::move(item.second));
  return params;
}

void require_same_params(const std::string& a, const std::string& b) {
  const auto pa = params_of(a), pb = params_of(b);
  REQUIRE(pa.size() == pb.size());
  for (const auto& item : pa) {
    INFO(item.first << " of " << a << " vs " << b);
    const Tensor& other = pb.at(item.first);
    REQUIRE(item.second.shape() == other.shape());
    CHECK(std::memcmp(item.second.data(), other.data(), sizeof(float) * other.numel()) == 0);
  }
}

std::vector<json> metrics_of(const std::string& dir) {
  std::vector<json> records;
  std::ifstream in(dir + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) records.push_back(json::parse(line));
  return records;
}

// The uninterrupted reference run, trained once.
const std::string& reference_final() {
  static const std::string path = train_run(options_for("reference")).final_weights;
  return path;
}

}  // namespace

TEST_CASE("a run writes config, metrics, curves, samples, checkpoints and final weights") {
  TrainOptions options = options_for("outputs");
  const std::string dir = options.out_dir;
  const TrainResult result = train_run(options);
  CHECK(result.iter == 6);
  CHECK(result.stop_signal == 0);
  CHECK(result.final_weights == dir + "/final.safetensors");
  CHECK(result.checkpoint == dir + "/checkpoints/iter_00000006.safetensors");
  for (const char* file : {"config.json", "run.json", "metrics.jsonl", "curves.png", "val_samples.png", "report.html",
                           "final.safetensors", "checkpoints/iter_00000003.safetensors",
                           "checkpoints/iter_00000006.safetensors"})
    CHECK(fs::is_regular_file(dir + "/" + file));
  // config.json is itself a valid config, with the same keys
  const Config written = load_config(dir + "/config.json", {});
  CHECK(written.to_json() == options.config.to_json());
  // logged at iterations 2, 4, 6 (loss) and 3, 6 (validation); warnings aside
  std::vector<json> records;
  for (const json& record : metrics_of(dir))
    if (!record.contains("warning")) records.push_back(record);
  REQUIRE(records.size() == 5);
  CHECK(records[0]["iter"] == 2);
  CHECK(records[0]["lr"] == 0.01);
  CHECK(records[0]["loss"].get<double>() > 0);
  CHECK(records[0]["images_per_s"].get<double>() > 0);
  CHECK(records[1]["iter"] == 3);
  const json& val = records[1]["val"];
  for (const char* key : {"pixel_acc", "mean_acc", "mean_iou", "fwavacc"}) CHECK(val.contains(key));
  CHECK(val["pixel_acc"].get<double>() >= 0);
  CHECK(val["pixel_acc"].get<double>() <= 1);
  CHECK(records[4]["iter"] == 6);
  CHECK(records[4].contains("val"));
  // diagnostics on every logged step: every trainable param's gradient norm,
  // the weights' update ratios, the ReLU block's zero share
  const json& diag = records[0]["diag"];
  CHECK(diag["grad_norm"].size() == 4);  // conv1 and score, weight and bias
  CHECK(diag["grad_norm"]["conv1.weight"].get<double>() > 0);
  CHECK(diag["update_ratio"].size() == 2);
  CHECK(diag["update_ratio"]["score.weight"].get<double>() > 0);
  const double relu_zero = diag["relu_zero"]["relu1"].get<double>();
  CHECK(relu_zero > 0);
  CHECK(relu_zero < 1);
  // validations carry the per-class scores and the confusion matrix
  REQUIRE(val["per_class"].size() == 3);
  REQUIRE(val["confusion"].size() == 3);
  int64_t confusion_total = 0, ground_truth = 0;
  for (const json& row : val["confusion"])
    for (const json& count : row) confusion_total += count.get<int64_t>();
  for (const json& c : val["per_class"]) ground_truth += c["gt_pixels"].get<int64_t>();
  CHECK(confusion_total == ground_truth);
  CHECK(confusion_total > 0);
  const json run = read_json_file(dir + "/run.json");
  CHECK(run["state"] == "finished");
  CHECK(run["iter"] == 6);
  CHECK(run["model"]["params"].get<int64_t>() == 6 * 3 * 9 + 6 + 3 * 6 + 3);
  const SafetensorsFile final_file = read_safetensors(result.final_weights);
  CHECK(final_file.metadata.at("iter") == "6");
  CHECK(final_file.tensors.count("conv1.weight.momentum") == 0);  // final: params only
  CHECK(read_safetensors(result.checkpoint).tensors.count("conv1.weight.momentum") == 1);
}

TEST_CASE("resume is bit-identical to an uninterrupted run (iter_size 2, dropout)") {
  TrainOptions first = options_for("split", {"solver.max_iter=3"});
  const std::string dir = first.out_dir;
  const TrainResult half = train_run(first);
  REQUIRE(half.checkpoint == dir + "/checkpoints/iter_00000003.safetensors");
  TrainOptions second = options_for("unused");
  second.out_dir = dir;
  second.resume = half.checkpoint;
  Trainer trainer(second);
  CHECK(trainer.start_iter() == 3);
  const TrainResult rest = trainer.run();
  CHECK(rest.iter == 6);
  require_same_params(rest.final_weights, reference_final());
  // the resumed run continues the metrics of the first half (which ended at
  // 3): 2, 3, 3 (val), then 4, 6, 6 (val); a warning is given once per run,
  // not again by the resumed process
  std::vector<json> records;
  std::multiset<std::string> warnings;
  for (const json& record : metrics_of(dir)) {
    if (record.contains("warning"))
      warnings.insert(record["warning"]["kind"].get<std::string>());
    else
      records.push_back(record);
  }
  for (const std::string& kind : warnings) CHECK(warnings.count(kind) == 1);
  REQUIRE(records.size() == 6);
  CHECK(records[2]["iter"] == 3);
  CHECK(records[2].contains("val"));
  CHECK(records[3]["iter"] == 4);
}

TEST_CASE("resume is bit-identical to an uninterrupted run (batch_size 2 x iter_size 2, dropout)") {
  const std::vector<std::string> batched = {"solver.batch_size=2", "solver.test_every=0"};
  const TrainResult whole = train_run(options_for("batch_whole", batched));
  std::vector<std::string> first_half = batched;
  first_half.push_back("solver.max_iter=3");
  TrainOptions first = options_for("batch_split", first_half);
  const std::string dir = first.out_dir;
  const TrainResult half = train_run(first);
  TrainOptions second = options_for("unused", batched);
  second.out_dir = dir;
  second.resume = half.checkpoint;
  const TrainResult rest = train_run(second);
  CHECK(rest.iter == 6);
  require_same_params(rest.final_weights, whole.final_weights);
  // batches of 2 are not the run of batches of 1 (the check can fail)
  const auto a = params_of(whole.final_weights), b = params_of(reference_final());
  CHECK(std::memcmp(a.at("conv1.weight").data(), b.at("conv1.weight").data(),
                    sizeof(float) * a.at("conv1.weight").numel()) != 0);
  const json run = read_json_file(dir + "/run.json");
  CHECK(run["data"]["batch_size"] == 2);
  CHECK(run["data"]["images_per_step"] == 4);
  const Config written = load_config(dir + "/config.json", {});
  CHECK(written.solver.batch_size == 2);
}

TEST_CASE("a different sample seed changes the run (the check can fail)") {
  const TrainResult other = train_run(options_for("other_seed", {"solver.seed=4"}));
  const auto a = params_of(other.final_weights), b = params_of(reference_final());
  CHECK(std::memcmp(a.at("conv1.weight").data(), b.at("conv1.weight").data(),
                    sizeof(float) * a.at("conv1.weight").numel()) != 0);
}

TEST_CASE("a stop request finishes the step, saves a checkpoint, and the run resumes exactly") {
  TrainOptions options = options_for("stopped");
  const std::string dir = options.out_dir;
  Trainer trainer(options);
  request_stop(SIGTERM);
  const TrainResult stopped = trainer.run();
  CHECK(stopped.stop_signal == SIGTERM);
  CHECK(stopped.iter == 1);
  CHECK(stopped.final_weights.empty());
  CHECK(stopped.checkpoint == dir + "/checkpoints/iter_00000001.safetensors");
  CHECK_FALSE(fs::exists(dir + "/final.safetensors"));

  TrainOptions again = options_for("unused");
  again.out_dir = dir;
  again.resume = latest_checkpoint(dir + "/checkpoints");
  const TrainResult rest = train_run(again);
  CHECK(rest.stop_signal == 0);
  require_same_params(rest.final_weights, reference_final());
}

TEST_CASE("init weights are copied, and max_iter 0 writes them back unchanged") {
  TrainOptions options = options_for("init", {"solver.max_iter=0"});
  options.init_weights = reference_final();
  const TrainResult result = train_run(options);
  CHECK(result.iter == 0);
  require_same_params(result.final_weights, reference_final());
  CHECK(load_config(options.out_dir + "/config.json", {}).init.weights == reference_final());
}

TEST_CASE("a non-finite loss stops naming the iteration and the last good checkpoint, or is skipped") {
  const std::vector<std::string> explode = {"solver.base_lr=1e30", "solver.snapshot_every=1", "solver.test_every=0",
                                            "solver.max_iter=4", "solver.momentum=0"};
  TrainOptions options = options_for("nan_stop", explode);
  const std::string dir = options.out_dir;
  CHECK_THROWS_WITH(train_run(options), Catch::Contains("iteration 2: ") && Catch::Contains("on_nan") &&
                                            Catch::Contains(dir + "/checkpoints/iter_00000001.safetensors"));
  CHECK_FALSE(fs::exists(dir + "/checkpoints/iter_00000002.safetensors"));

  std::vector<std::string> skip = explode;
  skip.push_back("solver.on_nan=skip");
  const TrainResult result = train_run(options_for("nan_skip", skip));
  CHECK(result.iter == 4);
  // every update after the first was skipped
  const std::string skip_dir = (work_dir() / "nan_skip").string();
  require_same_params(result.final_weights, skip_dir + "/checkpoints/iter_00000001.safetensors");
}

TEST_CASE("training errors name what is wrong") {
  TrainOptions options = options_for("errors", {"model.num_classes=4"});
  CHECK_THROWS_WITH(Trainer(options), Catch::Contains("num_classes is 4") && Catch::Contains("'score' has 3 channels"));
  json no_data = tiny_config();
  no_data.erase("data");
  TrainOptions without = options_for("errors");
  without.config = parse_config(no_data, "test config");
  CHECK_THROWS_WITH(Trainer(without), Catch::Contains("data.root"));
  TrainOptions resume = options_for("errors");
  resume.resume = (work_dir() / "missing.safetensors").string();
  CHECK_THROWS_WITH(Trainer(resume), Catch::Contains("missing.safetensors"));
}
