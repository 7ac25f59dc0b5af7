#pragma once
// One builder per layer type; each reads its options from `reader` (which
// has consumed name/type/inputs) and calls reader.finish().
#include <memory>

#include "fcn/layer.hpp"

namespace fcn {

std::unique_ptr<Layer> make_conv_layer(LayerContext context, SpecReader& reader);
std::unique_ptr<Layer> make_deconv_layer(LayerContext context, SpecReader& reader);
std::unique_ptr<Layer> make_max_pool_layer(LayerContext context, SpecReader& reader);
std::unique_ptr<Layer> make_relu_layer(LayerContext context, SpecReader& reader);
std::unique_ptr<Layer> make_dropout_layer(LayerContext context, SpecReader& reader);
std::unique_ptr<Layer> make_crop_layer(LayerContext context, SpecReader& reader);
std::unique_ptr<Layer> make_sum_layer(LayerContext context, SpecReader& reader);
std::unique_ptr<Layer> make_scale_layer(LayerContext context, SpecReader& reader);
std::unique_ptr<Layer> make_softmax_loss_layer(LayerContext context, SpecReader& reader);

}  // namespace fcn
