#pragma once
// torchvision 0.14's ResNet as a model-zoo trunk.
#include <string>

#include "fcn/model/zoo_builder.hpp"

namespace fcn::zoo {

// torchvision's ResNet ("resnet18" ... "resnet101") without avgpool and fc,
// named backbone.*; `dilated`: layer3 and layer4 replace their stride by
// dilation (replace_stride_with_dilation [False, True, True]), output stride 8.
Trunk resnet_trunk(GraphBuilder& g, const std::string& depth, bool dilated);
// the output channels of a ResNet's layer1..layer4 at width 1 (64 .. 2048 for a Bottleneck net)
int64_t resnet_channels(const std::string& depth, int layer);

}  // namespace fcn::zoo
