// The layer registry: JSON "type" -> builder, and the type's Caffe mapping.
// Adding a layer type is one line in this table plus its builder's (and
// mapping's) declaration in registry.hpp.
#include "fcn/layers/registry.hpp"

#include "fcn/core/error.hpp"

namespace fcn {

namespace {

const std::vector<LayerTypeInfo>& registry() {
  static const std::vector<LayerTypeInfo> table = {
      {"conv", make_conv_layer, {{"Convolution", conv_from_caffe}, {"InnerProduct", inner_product_from_caffe}}},
      {"deconv", make_deconv_layer, {{"Deconvolution", deconv_from_caffe}}},
      {"max_pool", make_max_pool_layer, {{"Pooling", pooling_from_caffe}}},
      {"relu", make_relu_layer, {{"ReLU", relu_from_caffe}}},
      {"dropout", make_dropout_layer, {{"Dropout", dropout_from_caffe}}},
      {"crop", make_crop_layer, {{"Crop", crop_from_caffe}}},
      {"sum", make_sum_layer, {{"Eltwise", eltwise_from_caffe}}},
      {"scale", make_scale_layer, {{"Scale", scale_from_caffe}}},
      {"softmax_loss", make_softmax_loss_layer, {{"SoftmaxWithLoss", softmax_loss_from_caffe}}},
      {"concat", make_concat_layer, {{"Concat", concat_from_caffe}}},
      {"resize", make_resize_layer,
       "BVLC's schema has no bilinear resize layer (Caffe upsamples by a Deconvolution with a bilinear filler: deconv)"},
      {"batch_norm", make_batch_norm_layer, {{"BatchNorm", batch_norm_from_caffe}}},
      {"avg_pool", make_avg_pool_layer, {{"Pooling", pooling_from_caffe}}},
  };
  return table;
}

}  // namespace

const std::vector<LayerTypeInfo>& layer_registry() { return registry(); }

std::vector<std::string> layer_types() {
  std::vector<std::string> names;
  for (const auto& entry : registry()) names.push_back(entry.type);
  return names;
}

CaffeMapper find_caffe_mapper(const std::string& caffe_type) {
  for (const auto& entry : registry())
    for (const auto& caffe : entry.caffe)
      if (caffe.first == caffe_type) return caffe.second;
  return nullptr;
}

std::vector<std::string> caffe_layer_types() {
  std::vector<std::string> names;
  for (const auto& entry : registry())
    for (const auto& caffe : entry.caffe)
      if (std::find(names.begin(), names.end(), caffe.first) == names.end()) names.push_back(caffe.first);
  return names;
}

std::unique_ptr<Layer> create_layer(const json& spec, const std::string& path) {
  SpecReader reader(spec, path);
  LayerContext context;
  context.name = reader.get_string("name");
  if (context.name.empty()) reader.fail("name", "must not be empty");
  const std::string type = reader.get_string("type");
  context.inputs = reader.get_string_list("inputs");
  for (const auto& entry : registry()) {
    if (entry.type == type) {
      auto layer = entry.make(std::move(context), reader);
      reader.finish();
      return layer;
    }
  }
  const std::string hint = closest_match(type, layer_types());
  std::string known;
  for (const auto& t : layer_types()) known += (known.empty() ? "" : ", ") + t;
  reader.fail("type", "unknown layer type \"" + type + "\" (known: " + known + ")" +
                          (hint.empty() ? "" : "; did you mean \"" + hint + "\"?"));
}

}  // namespace fcn
