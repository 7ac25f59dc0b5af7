#pragma once
// Layers by type name. One builder per layer type; each reads its own
// options from `reader` (create_layer has consumed name/type/inputs and
// calls reader.finish() after the builder, so unknown keys are errors).
// Each type also says how Caffe layers become it (fcn/core/caffe_layer.hpp):
// the Caffe type names it imports and the mapping in its own file pair, or,
// for a type Caffe has no counterpart of, why not.
#include <memory>
#include <utility>

#include "fcn/core/caffe_layer.hpp"
#include "fcn/core/layer.hpp"

namespace fcn {

using LayerFactory = std::unique_ptr<Layer> (*)(LayerContext, SpecReader&);

struct LayerTypeInfo {
  using CaffeTypes = std::vector<std::pair<std::string, CaffeMapper>>;
  LayerTypeInfo(std::string type, LayerFactory make, CaffeTypes caffe)
      : type(std::move(type)), make(make), caffe(std::move(caffe)) {}
  LayerTypeInfo(std::string type, LayerFactory make, const char* no_caffe_counterpart)
      : type(std::move(type)), make(make), no_caffe_counterpart(no_caffe_counterpart) {}

  std::string type;
  LayerFactory make;
  // Caffe type name -> mapping. Several fcn types may list one Caffe type
  // with the same mapping (Pooling: max_pool, avg_pool), which picks the type.
  CaffeTypes caffe;
  // When `caffe` is empty: why no Caffe layer maps onto this type.
  std::string no_caffe_counterpart;
};

const std::vector<LayerTypeInfo>& layer_registry();

// Builds a layer from its JSON spec; `path` ("layers[3]") names it in errors.
// Reads and validates every key, including name/type/inputs.
std::unique_ptr<Layer> create_layer(const json& spec, const std::string& path);
std::vector<std::string> layer_types();
// The mapping of a Caffe type name, or null when no fcn type imports it.
CaffeMapper find_caffe_mapper(const std::string& caffe_type);
std::vector<std::string> caffe_layer_types();

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

// Caffe mappings, each in its type's file pair.
CaffeMapped conv_from_caffe(CaffeLayer& layer);
CaffeMapped inner_product_from_caffe(CaffeLayer& layer);
CaffeMapped deconv_from_caffe(CaffeLayer& layer);
CaffeMapped pooling_from_caffe(CaffeLayer& layer);
CaffeMapped relu_from_caffe(CaffeLayer& layer);
CaffeMapped dropout_from_caffe(CaffeLayer& layer);
CaffeMapped crop_from_caffe(CaffeLayer& layer);
CaffeMapped eltwise_from_caffe(CaffeLayer& layer);
CaffeMapped scale_from_caffe(CaffeLayer& layer);
CaffeMapped softmax_loss_from_caffe(CaffeLayer& layer);
CaffeMapped concat_from_caffe(CaffeLayer& layer);
CaffeMapped batch_norm_from_caffe(CaffeLayer& layer);

}  // namespace fcn
