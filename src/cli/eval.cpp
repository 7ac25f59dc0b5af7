// fcn eval: mean IoU and friends over a split. Two modes share the scoring
// and reporting below:
//   --pred-dir DIR --data ROOT --num-classes N   score saved prediction PNGs
//   --config FILE --weights CKPT                 run a model (run_model_eval)
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <cstdio>
#include <memory>
#include <sstream>

#include "cli/commands.hpp"
#include "cli/inference_args.hpp"
#include "cli/output_files.hpp"
#include "fcn/core/progress.hpp"
#include "fcn/eval/trained_model.hpp"
#include "fcn/data/dataset.hpp"
#include "fcn/data/sampling.hpp"
#include "fcn/core/error.hpp"
#include "fcn/io/image_io.hpp"
#include "fcn/eval/evaluate_split.hpp"
#include "fcn/eval/metrics.hpp"

namespace fcn::cli {

namespace {

struct EvalArgs {
  // shared
  std::string split;  // empty: the config's validation split (data.val), else "val"
  std::string json_out;
  std::string class_names;  // comma-separated
  // prediction mode
  std::string pred_dir;
  std::string data_root;
  int64_t num_classes = 0;
  // model mode
  std::string config_file;
  std::string weights;
  std::string save_dir;
  bool overwrite = false;
  InferenceArgs inference;
  std::vector<std::string> overrides;
};

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> items;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) items.push_back(item);
  return items;
}

std::vector<std::string> class_names_for(const EvalArgs& args, int64_t num_classes) {
  DataConfig config;
  config.class_names = split_commas(args.class_names);
  if (!args.class_names.empty() && static_cast<int64_t>(config.class_names.size()) != num_classes)
    throw Error("--class-names: has " + std::to_string(config.class_names.size()) + " names but --num-classes is " +
                std::to_string(num_classes));
  return resolve_class_names(config, num_classes);
}

// Prints the table and the four figures; writes the JSON report to
// `json_out` ("-": as the last line on stdout).
void report_scores(const Scores& scores, const std::string& json_out) {
  std::fputs(format_scores(scores).c_str(), stdout);
  if (!json_out.empty()) write_json_report(json_out, scores_to_json(scores));
}

void run_pred_dir_eval(const EvalArgs& args) {
  DataConfig config;
  config.root = args.data_root;
  const std::string split = args.split.empty() ? "val" : args.split;
  const Dataset dataset(config, split, args.num_classes);
  const std::vector<std::string> names = class_names_for(args, args.num_classes);
  ConfusionMatrix matrix(args.num_classes);
  Progress progress("eval " + split, dataset.size());
  for (size_t i = 0; i < dataset.size(); ++i) {
    const Image truth = dataset.load_label(i);
    const std::string pred_path = args.pred_dir + "/" + dataset.id(i) + ".png";
    if (access(pred_path.c_str(), F_OK) != 0)
      throw Error(pred_path + ": missing prediction for \"" + dataset.id(i) + "\" (split " + split + " lists " +
                  std::to_string(dataset.size()) + " ids; --pred-dir needs <id>.png for each)");
    const Image pred = read_label_png(pred_path);
    if (pred.height != truth.height || pred.width != truth.width)
      throw Error(pred_path + ": prediction is " + std::to_string(pred.width) + "x" + std::to_string(pred.height) +
                  " but the ground truth is " + std::to_string(truth.width) + "x" + std::to_string(truth.height));
    try {
      matrix.add(truth.pixels.data(), pred.pixels.data(), truth.pixels.size());
    } catch (const Error& e) {
      throw Error(pred_path + ": " + e.what());
    }
    progress.update(i + 1);
  }
  report_scores(compute_scores(matrix, names), args.json_out);
}

// Runs the network over the split, scores (and with --save-dir saves) its
// predictions.
void run_model_eval(const EvalArgs& args) {
  TrainedModel model(args.config_file, args.overrides, args.weights, inference_options(args.inference));
  const DataConfig& data = model.config().data;
  const int64_t classes = model.config().model.zoo.num_classes;
  const Dataset dataset = evaluation_dataset(data, args.split, classes);
  if (!args.save_dir.empty()) {
    std::vector<std::string> masks;
    for (size_t i = 0; i < dataset.size(); ++i) masks.push_back(args.save_dir + "/" + dataset.id(i) + ".png");
    refuse_overwrites(args.save_dir, masks, args.overwrite, "--save-dir");
    std::filesystem::create_directories(args.save_dir);
  }
  Progress progress("eval " + dataset.split(), dataset.size());
  const auto save_and_count = [&](int64_t position, const Sample& sample, const Image&, const Image& prediction) {
    if (!args.save_dir.empty()) write_label_png(args.save_dir + "/" + sample.id + ".png", prediction);
    progress.update(static_cast<size_t>(position) + 1);
  };
  const ConfusionMatrix matrix = evaluate_split(
      dataset, data, classes, [&model](const Tensor& image) { return model.predict_mask(image); }, 0, -1,
      save_and_count);
  const std::vector<std::string> names =
      args.class_names.empty() ? model.class_names() : class_names_for(args, classes);
  report_scores(compute_scores(matrix, names), args.json_out);
  if (!args.save_dir.empty()) spdlog::info("predicted masks in {}/<id>.png", args.save_dir);
}

void run_eval(const EvalArgs& args) {
  const bool pred_mode = !args.pred_dir.empty() || !args.data_root.empty() || args.num_classes != 0;
  const bool model_mode =
      !args.config_file.empty() || !args.weights.empty() || !args.save_dir.empty() || !args.overrides.empty();
  const std::string usage =
      "use either --config FILE --weights CKPT (evaluate a model) or --pred-dir DIR --data ROOT --num-classes N "
      "(score saved predictions)";
  if (pred_mode && model_mode) throw Error("options of both modes given; " + usage);
  if (model_mode) {
    if (args.config_file.empty() || args.weights.empty())
      throw Error("model evaluation needs --config and --weights; " + usage);
    run_model_eval(args);
    return;
  }
  if (!pred_mode) throw Error("nothing to evaluate: " + usage);
  if (args.pred_dir.empty() || args.data_root.empty() || args.num_classes == 0)
    throw Error("scoring predictions needs --pred-dir, --data and --num-classes; " + usage);
  run_pred_dir_eval(args);
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto args = std::make_shared<EvalArgs>();
  auto* cmd = app.add_subcommand(
      "eval",
      "Score a split: pixel accuracy, mean class accuracy, mean IoU and frequency-weighted IoU\n"
      "(as the FCN reference score.py; void 255 pixels ignored), with a per-class table.\n"
      "Either run a model (--config, --weights) or score saved predictions (--pred-dir, one\n"
      "<id>.png per id of the split, palette or grayscale, against ROOT/SegmentationClass).");
  cmd->add_option("--split", args->split,
                  "split list name (default: the config's data.val split; \"val\" with --pred-dir)");
  cmd->add_option("--json", args->json_out, "write the scores as JSON to this file ('-': stdout)");
  cmd->add_option("--class-names", args->class_names, "comma-separated class names (default: VOC's for 21)");
  cmd->add_option("--pred-dir", args->pred_dir, "directory of predicted label PNGs");
  cmd->add_option("--data", args->data_root, "VOC-layout dataset root holding the ground truth");
  cmd->add_option("--num-classes", args->num_classes, "number of classes")->check(CLI::Range(1, 255));
  cmd->add_option("--config", args->config_file, "config of the model to evaluate");
  cmd->add_option("--weights", args->weights, "model weights (safetensors)");
  cmd->add_option("--save-dir", args->save_dir, "also save the predicted masks here as <id>.png");
  add_inference_options(cmd, args->inference);
  cmd->add_flag("--overwrite", args->overwrite,
                "replace masks already in --save-dir (without it they stop eval before anything is written)");
  cmd->add_option("--set", args->overrides, "override a config key: a.b=VALUE (repeatable)");
  cmd->callback([args] { run_eval(*args); });
}

}  // namespace fcn::cli
