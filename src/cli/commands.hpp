#pragma once
// One function per subcommand; each adds itself (options, help, callback) to
// the app. The callbacks throw fcn::Error on bad input; main prints it.
#include <CLI/CLI.hpp>

namespace fcn::cli {

void add_train_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_predict_command(CLI::App& app);
void add_describe_command(CLI::App& app);
void add_forward_command(CLI::App& app);
void add_make_synthetic_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_explain_command(CLI::App& app);
void add_import_caffe_command(CLI::App& app);
void add_export_onnx_command(CLI::App& app);
void add_inspect_data_command(CLI::App& app);
void add_report_command(CLI::App& app);

}  // namespace fcn::cli
