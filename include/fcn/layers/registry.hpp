#pragma once
// Layers by type name. One builder per layer type; each reads its own
// options from `reader` (create_layer has consumed name/type/inputs and
// calls reader.finish() after the builder, so unknown keys are errors).
#include <memory>

#include "fcn/core/layer.hpp"

namespace fcn {

// Builds a layer from its JSON spec; `path` ("layers[3]") names it in errors.
// Reads and validates every key, including name/type/inputs.
std::unique_ptr<Layer> create_layer(const json& spec, const std::string& path);
std::vector<std::string> layer_types();


std::unique_ptr<Layer> make_conv_layer(LayerContext context, SpecReader& reader);
std::unique_ptr<Layer> make_deconv_layer(LayerContext context, SpecReader& reader);
std::unique_ptr<Layer> make_max_pool_layer(LayerContext context, SpecReader& reader);
std::unique_ptr<Layer> make_relu_layer(LayerContext context, SpecReader& reader);
std::unique_ptr<Layer> make_dropout_layer(LayerContext context, SpecReader& reader);
std::unique_ptr<Layer> make_crop_layer(LayerContext context, SpecReader& reader);
std::unique_ptr<Layer> make_sum_layer(LayerContext context, SpecReader& reader);
std::unique_ptr<Layer> make_scale_layer(LayerContext context, SpecReader& reader);
std::unique_ptr<Layer> make_softmax_loss_layer(LayerContext context, SpecReader& reader);
std::unique_ptr<Layer> make_concat_layer(LayerContext context, SpecReader& reader);
std::unique_ptr<Layer> make_resize_layer(LayerContext context, SpecReader& reader);
std::unique_ptr<Layer> make_batch_norm_layer(LayerContext context, SpecReader& reader);
std::unique_ptr<Layer> make_avg_pool_layer(LayerContext context, SpecReader& reader);

}  // namespace fcn
