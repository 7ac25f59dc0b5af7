#pragma once
// The model zoo's heads: the paper's skip architecture and torchvision's FCNHead.
#include <string>

#include "fcn/model/zoo_builder.hpp"

namespace fcn::zoo {

// The paper's skip head (fcn32s, fcn16s, fcn8s, fcn8s-atonce) on any trunk;
// returns the score blob (the size of data).
std::string fcn_skip_head(GraphBuilder& g, const Trunk& trunk, const std::string& arch);
// torchvision's FCNHead on `input` (`in_channels` channels) named
// `prefix`.0 .. `prefix`.4, resized to data by a layer named `score_name`;
// returns the score blob.
std::string fcn_head(GraphBuilder& g, const std::string& prefix, const std::string& input, int64_t in_channels,
                     const std::string& score_name);

}  // namespace fcn::zoo
