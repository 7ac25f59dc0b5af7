#include "cli/inference_args.hpp"

#include <sstream>

#include "fcn/core/error.hpp"
#include "fcn/eval/memory_estimate.hpp"

namespace fcn::cli {

namespace {

std::vector<double> parse_scales(const std::string& list) {
  std::vector<double> scales;
  std::stringstream stream(list);
  std::string item;
  while (std::getline(stream, item, ',')) {
    std::istringstream number(item);
    double scale = 0;
    number >> scale;
    if (item.empty() || !number || !number.eof() || !(scale > 0))
      throw Error("--tta scales=" + list + ": \"" + item + "\" is not a positive number (e.g. scales=0.75,1,1.25)");
    scales.push_back(scale);
  }
  if (scales.empty()) throw Error("--tta scales=: give at least one factor (e.g. scales=0.75,1,1.25)");
  return scales;
}

}  // namespace

void add_inference_options(CLI::App* cmd, InferenceArgs& args) {
  const int64_t available = available_memory_bytes();
  cmd->add_option("--max-memory", args.max_memory,
                  "memory for one image, e.g. 6G or 512M (default: 80% of the memory available at start-up, now " +
                      format_bytes(default_max_memory()) + " of " + format_bytes(available) +
                      "); an image whose estimate\nexceeds it runs in overlapping tiles, with the same result");
  cmd->add_option("--tile", args.tile,
                  "always run in tiles with cores of this many pixels (rounded up to the net's stride; each tile adds\n"
                  "a margin of half the receptive field)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd->add_option("--tta", args.tta,
                  "test-time augmentation: flip (also the mirrored image) and/or scales=0.75,1,1.25 (rescaled\n"
                  "copies); the class probabilities are averaged at the image's size (repeatable)");
}

InferenceOptions inference_options(const InferenceArgs& args) {
  InferenceOptions options;
  options.max_memory = args.max_memory.empty() ? default_max_memory() : parse_memory_size(args.max_memory, "--max-memory");
  options.tile = args.tile;
  for (const auto& item : args.tta) {
    if (item == "flip") {
      options.tta_flip = true;
    } else if (item.rfind("scales=", 0) == 0) {
      options.tta_scales = parse_scales(item.substr(7));
    } else {
      throw Error("--tta " + item + ": expected flip or scales=F1,F2,... (e.g. --tta flip --tta scales=0.75,1,1.25)");
    }
  }
  return options;
}

ModelOptions model_options(const InferenceArgs& args, const std::vector<std::string>& overrides) {
  const InferenceOptions inference = inference_options(args);
  ModelOptions options;
  options.overrides = overrides;
  options.max_memory = inference.max_memory;
  options.tile = inference.tile;
  options.tta_flip = inference.tta_flip;
  options.tta_scales = inference.tta_scales;
  return options;
}

}  // namespace fcn::cli
