#pragma once
// The VGG16 trunk of the paper's nets.
#include <string>

#include "fcn/model/zoo_builder.hpp"

namespace fcn::zoo {

// VGG16 up to drop7 (fc6, fc7 as convs, with dropout).
Trunk vgg16_trunk(GraphBuilder& g);

}  // namespace fcn::zoo
