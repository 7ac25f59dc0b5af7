// fcn train: SGD training from a JSON config, with checkpoints, resume,
// validation and a progress line (the loop is fcn::Trainer).
#include <spdlog/spdlog.h>

#include <exception>
#include <filesystem>
#include <memory>

#include "cli/commands.hpp"
#include "fcn/model/config.hpp"
#include "fcn/train/distributed.hpp"
#include "fcn/core/error.hpp"
#include "fcn/train/trainer.hpp"

namespace fcn::cli {

namespace {

struct TrainArgs {
  std::string config_file;
  std::string out;
  std::string resume;
  std::string init;
  bool overwrite = false;
  std::vector<std::string> overrides;
};

// The command as it ran (with the --out it resolved to), for run.json.
std::string command_line(const TrainArgs& args, const std::string& out_dir) {
  std::string line = "fcn train --config " + args.config_file + " --out " + out_dir;
  if (!args.resume.empty()) line += " --resume " + args.resume;
  if (!args.init.empty()) line += " --init " + args.init;
  if (args.overwrite) line += " --overwrite";
  for (const std::string& item : args.overrides) line += " --set " + item;
  return line;
}

TrainOptions train_options(const TrainArgs& args) {
  TrainOptions options;
  options.config = load_config(args.config_file, args.overrides);
  options.out_dir = args.out.empty() ? "runs/" + std::filesystem::path(args.config_file).stem().string() : args.out;
  options.resume = args.resume;
  options.init_weights = args.init;
  options.overwrite = args.overwrite;
  options.command = command_line(args, options.out_dir);
  if (args.overwrite && !args.resume.empty())
    throw Error("--overwrite and --resume: --overwrite removes the run that --resume would continue; give one");
  return options;
}

void run_train(const TrainArgs& args) {
  // Under mpirun (distributed.hpp) rank 0 alone logs; a rank that fails ends
  // the whole job (MPI_Abort) rather than leave the others waiting in an
  // allreduce. Ranks above 0 still show warnings and errors.
  Communicator& comm = Communicator::world();
  if (!comm.is_root()) spdlog::set_level(spdlog::level::warn);
  std::unique_ptr<Trainer> trainer;  // outlives the catch: a failing rank aborts before any teardown waits
  TrainResult result;
  try {
    trainer = std::make_unique<Trainer>(train_options(args));
    result = trainer->run();
  } catch (const std::exception& e) {
    if (!comm.distributed()) throw;
    comm.abort_with_error(e.what());
  }
  // Stopped by a signal after saving a checkpoint: exit 128 + signal, as the
  // shell reports a process killed by it, so `fcn train && ...` stops there.
  if (result.stop_signal) throw CLI::RuntimeError(128 + result.stop_signal);
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  auto* cmd = app.add_subcommand(
      "train",
      "Train a model with SGD (Caffe's: momentum, weight decay, lr policies, iter_size) from a JSON config\n"
      "{\"model\", \"data\", \"solver\", \"init\"} (see configs/). Writes to --out DIR:\n"
      "  config.json       the resolved config (a valid --config itself)\n"
      "  run.json          command, state, machine, model, data, class weights, images/s, ETA\n"
      "  metrics.jsonl     per logged iteration (loss, lr, images/s, diagnostics: gradient norms,\n"
      "                    update/weight ratios, ReLU zero shares), per validation (scores, per-class,\n"
      "                    confusion matrix) and per warning\n"
      "  report.html       one offline page with all of it, rewritten at each validation\n"
      "  curves.png        training loss and val mean IoU against the iteration\n"
      "  val_samples.png   image | ground truth | prediction of the first val images\n"
      "  checkpoints/iter_NNNNNNNN.safetensors   every solver.snapshot_every iterations and at the end\n"
      "  final.safetensors the trained params\n"
      "  train.lock        held while the run lives: a second train on DIR fails at once\n"
      "Warns once, with what to try, when validation predicts one class twice in a row, the loss stops\n"
      "moving (solver.plateau_window) or the update/weight ratio leaves solver.update_ratio_band.\n"
      "A DIR that holds a run is never replaced: train refuses unless --resume continues that run\n"
      "(same config) or --overwrite removes its files first (only those).\n"
      "Progress (iteration, loss, lr, images/s, ETA) goes to stderr. --resume continues a run bit for bit\n"
      "(same data order and random draws; same solver.threads for identical floating point).\n"
      "Ctrl-C or SIGTERM finishes the current iteration, saves a checkpoint, prints the command that\n"
      "resumes, and exits with 130 (SIGINT) or 143 (SIGTERM); a second Ctrl-C kills at once.\n"
      "A non-finite loss or gradient stops with exit 1 (solver.on_nan \"stop\") or skips the update (\"skip\").\n"
      "Under mpirun -np N it trains data-parallel (docs/mpi.md): N ranks x iter_size k follow the run of\n"
      "one process with iter_size N*k; rank 0 writes the run; a rank that fails ends the job.");
  cmd->add_option("--config", args->config_file, "JSON config file")->required();
  cmd->add_option("--out", args->out, "run directory (default: runs/<config file name>)");
  cmd->add_option("--resume", args->resume,
                  "checkpoint to continue from (params, momentum and iteration), e.g. DIR/checkpoints/iter_00004000.safetensors");
  cmd->add_option("--init", args->init,
                  "weights to start from: params whose name and shape match are copied, the rest are reported and\n"
                  "keep their initialisation (staged training: 16s from 32s, 8s from 16s); replaces init.weights");
  cmd->add_flag("--overwrite", args->overwrite,
                "--out holds a finished or abandoned run: remove its files (config.json, metrics.jsonl, curves.png,\n"
                "val_samples.png, final.safetensors, checkpoints/iter_*) and start afresh; nothing else in DIR is touched");
  cmd->add_option("--set", args->overrides, "override a config key, e.g. --set solver.max_iter=500 (repeatable)");
  cmd->callback([args] { run_train(*args); });
}

}  // namespace fcn::cli
