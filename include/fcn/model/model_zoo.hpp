#pragma once
// The paper's networks as graph specs: FCN-32s, FCN-16s, FCN-8s and
// FCN-8s at-once on a VGG16 trunk, with the reference layer names
// (shelhamer/fcn.berkeleyvision.org voc-fcn*/net.py), so weights map one to
// one onto the reference.
#include <string>
#include <vector>

#include "fcn/core/spec_reader.hpp"

namespace fcn {

struct ModelSpec {
  std::string arch = "fcn8s";  // fcn32s | fcn16s | fcn8s | fcn8s-atonce
  int64_t num_classes = 21;
  double width = 1.0;  // channel multiplier; 1 = the paper
  std::string normalize = "none";  // softmax_loss normalization (the reference sums)
  int64_t ignore_label = 255;
  json weight_init = {{"type", "msra"}};  // trunk convs (fc6, fc7 too)
  json score_init = {{"type", "zero"}};   // score_fr, score_pool4, score_pool3 (the paper zero-inits them)
  double dropout = 0.5;
};

const std::vector<std::string>& model_archs();
// {"inputs": {"data": 3 channels, "label": 1 channel}, "layers": [...]}.
json build_fcn_graph(const ModelSpec& spec);
// VGG16 channel count after the width multiplier (at least 1).
int64_t scaled_channels(int64_t channels, double width);

}  // namespace fcn
