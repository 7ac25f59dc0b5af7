// fcn report: rebuilds a run directory's report.html from its files
// (src/train/report.cpp) and prints the page's path.
#include "fcn/train/report.hpp"

#include <cstdio>
#include <memory>

#include "cli/commands.hpp"

namespace fcn::cli {

namespace {

struct ReportArgs {
  std::string run_dir;
  std::string out;
};

void run_report(const ReportArgs& args) {
  const std::string path = args.out.empty() ? args.run_dir + "/report.html" : args.out;
  write_run_report(args.run_dir, path);
  std::printf("%s\n", path.c_str());
}

}  // namespace

void add_report_command(CLI::App& app) {
  auto args = std::make_shared<ReportArgs>();
  auto* cmd = app.add_subcommand(
      "report",
      "Rebuild RUN_DIR/report.html from the run's files (config.json, run.json, metrics.jsonl,\n"
      "val_samples.png) and print its path. One self-contained page, no network, for phone or desktop:\n"
      "the run's summary (command, state, time, iterations, images/s, model, machine, data); training\n"
      "loss, learning rate, validation mean IoU and per-class IoU against the iteration; the last\n"
      "validation's per-class table, confusion matrix and predicted vs true class shares; the sample\n"
      "predictions; gradient norms, update/weight ratios and ReLU zero fractions; the warnings; the\n"
      "config. fcn train rewrites the page itself at each validation.");
  cmd->add_option("RUN_DIR", args->run_dir, "a run directory (fcn train --out)")->required();
  cmd->add_option("--out", args->out, "write the page here instead of RUN_DIR/report.html");
  cmd->callback([args] { run_report(*args); });
}

}  // namespace fcn::cli
