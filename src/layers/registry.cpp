// The layer registry: JSON "type" -> builder. Adding a layer type is one
// line in this table plus its builder's declaration in registry.hpp.
#include "fcn/layers/registry.hpp"

#include "fcn/core/error.hpp"

namespace fcn {

namespace {

using Factory = std::unique_ptr<Layer> (*)(LayerContext, SpecReader&);

const std::vector<std::pair<std::string, Factory>>& registry() {
  static const std::vector<std::pair<std::string, Factory>> table = {
      {"conv", make_conv_layer},       {"deconv", make_deconv_layer}, {"max_pool", make_max_pool_layer},
      {"relu", make_relu_layer},       {"dropout", make_dropout_layer}, {"crop", make_crop_layer},
      {"sum", make_sum_layer},         {"scale", make_scale_layer},   {"softmax_loss", make_softmax_loss_layer},
      {"concat", make_concat_layer},   {"resize", make_resize_layer},
      {"batch_norm", make_batch_norm_layer}, {"avg_pool", make_avg_pool_layer},
  };
  return table;
}

}  // namespace

std::vector<std::string> layer_types() {
  std::vector<std::string> names;
  for (const auto& entry : registry()) names.push_back(entry.first);
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
    if (entry.first == type) {
      auto layer = entry.second(std::move(context), reader);
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
