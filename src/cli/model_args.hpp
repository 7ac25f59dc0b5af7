#pragma once
// The model-selecting options shared by forward, describe, bench and
// export-onnx: --graph SPEC | --config FILE, with --set key=value overrides.
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "fcn/model/config.hpp"

namespace fcn::cli {

struct ModelArgs {
  std::string graph_file;
  std::string config_file;
  std::vector<std::string> overrides;
};

// What a command builds its graph from: the spec (--graph, or the config's
// model section) and the config's model.precision (fp32 for --graph, which
// has no model section).
struct ModelSource {
  json spec;
  Precision precision = Precision::fp32;
};

void add_model_options(CLI::App* cmd, ModelArgs& args, bool allow_graph = true);
ModelSource load_model_source(const ModelArgs& args);
// The config's model section (an error when only --graph was given).
ModelConfig load_model_config(const ModelArgs& args);

}  // namespace fcn::cli
