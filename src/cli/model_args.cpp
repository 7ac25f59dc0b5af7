#include "cli/model_args.hpp"

#include "fcn/core/error.hpp"

namespace fcn::cli {

void add_model_options(CLI::App* cmd, ModelArgs& args, bool allow_graph) {
  auto* config = cmd->add_option("--config", args.config_file, "JSON config (its \"model\" section is used)");
  if (allow_graph) {
    auto* graph = cmd->add_option("--graph", args.graph_file, "JSON graph spec {\"inputs\", \"layers\"}");
    graph->excludes(config);
  }
  cmd->add_option("--set", args.overrides, "override a config key, e.g. --set model.width=0.25 (repeatable)");
}

ModelConfig load_model_config(const ModelArgs& args) {
  if (args.config_file.empty()) throw Error("give --config FILE");
  json config = read_json_file(args.config_file);
  apply_overrides(config, args.overrides);
  return parse_model_config(config, args.config_file);
}

ModelSource load_model_source(const ModelArgs& args) {
  if (!args.graph_file.empty()) {
    if (!args.overrides.empty()) throw Error("--set applies to --config, not to --graph");
    return {read_json_file(args.graph_file), Precision::fp32};
  }
  if (args.config_file.empty()) throw Error("give --graph SPEC or --config FILE");
  const ModelConfig model = load_model_config(args);
  return {model_graph_spec(model), model.precision};
}

}  // namespace fcn::cli
