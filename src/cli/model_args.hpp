#pragma once
// The model-selecting options shared by forward, describe and bench:
// --graph SPEC | --config FILE, with --set key=value overrides.
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

void add_model_options(CLI::App* cmd, ModelArgs& args, bool allow_graph = true);
// The graph spec, from --graph or from the config's model section.
json load_graph_spec(const ModelArgs& args);
// The config's model section (an error when only --graph was given).
ModelConfig load_model_config(const ModelArgs& args);

}  // namespace fcn::cli
