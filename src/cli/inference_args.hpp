#pragma once
// The inference options shared by eval and predict: the memory budget,
// forced tiling and test-time augmentation (fcn::InferenceOptions).
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "fcn/eval/trained_model.hpp"
#include "fcn/fcn.hpp"

namespace fcn::cli {

struct InferenceArgs {
  std::string max_memory;         // "" = the default fraction of available memory
  int64_t tile = 0;
  std::vector<std::string> tta;   // "flip", "scales=0.75,1,1.25"
};

void add_inference_options(CLI::App* cmd, InferenceArgs& args);
// Validated options; errors name the option.
InferenceOptions inference_options(const InferenceArgs& args);
// The same as the public API's model options, with the --set overrides.
ModelOptions model_options(const InferenceArgs& args, const std::vector<std::string>& overrides);

}  // namespace fcn::cli
