#pragma once
// One Caffe layer as the importer (model/caffe_import) hands it to the Caffe
// mapping of an fcn layer type, and what the mapping gives back. Each layer
// type's file pair owns its mapping (`*_from_caffe`), registered next to the
// type in layers/registry.cpp; the importer knows no layer's parameters.
//
// A mapping reads the layer's parameter message with `param(...)`, a
// SpecReader over its JSON form (caffe.proto's field names, set fields only,
// enums by name). Every field is either read, accepted because it only
// affects training or the implementation Caffe picks (`accept`, with the
// reason in a comment), or refused by `finish` with one line naming the
// layer and the field. No protobuf here.
#include <map>
#include <string>
#include <vector>

#include "fcn/core/spec_reader.hpp"
#include "fcn/core/tensor.hpp"

namespace fcn {

// Caffe's per-blob learning-rate and weight-decay multipliers (ParamSpec,
// or V1's blobs_lr / weight_decay); 1 when the layer does not set them.
struct CaffeParamSpec {
  double lr_mult = 1.0;
  double decay_mult = 1.0;
};

struct CaffeLayer {
  std::string name;
  std::string type;   // Caffe's type name ("Convolution"; V1 enums upgraded)
  std::string where;  // "FILE: layer 'conv1' (Convolution)", the start of every error
  std::vector<std::string> bottoms;  // the fcn blobs the layer reads
  std::vector<Shape> bottom_shapes;  // their N, C, H, W at the net's declared input size
  json params = json::object();      // {"convolution_param": {...}}: the set parameter messages
  std::vector<CaffeParamSpec> param_specs;
  std::vector<float> loss_weights;   // Caffe's loss_weight, one per top (unset: empty)
  std::vector<Tensor> blobs;         // Caffe's blobs as stored (shape and layout)
  // Layers the importer folded into this one: the Scale after a BatchNorm.
  std::vector<CaffeLayer> folded;

  [[noreturn]] void fail(const std::string& problem) const;
  // The parameter message `key` ("convolution_param"; empty when unset);
  // errors read "WHERE: convolution_param.field: ...".
  SpecReader param(const std::string& key) const;
  // Refuses the first field of `reader` that was neither read nor accepted:
  // Caffe's result depends on it and fcn has no equivalent.
  void finish(const SpecReader& reader) const;
  CaffeParamSpec param_spec(size_t blob) const;
  // Checks the bottom count (errors name the layer).
  void expect_bottoms(size_t count) const;
  // Blob `i` with fcn's shape `shape` when it holds as many values (Caffe's
  // legacy 4-D dims pad with ones); otherwise as stored, for the importer
  // to report against the built layer's parameter.
  Tensor take_blob(size_t i, const Shape& shape);
};

// What a mapping returns: the fcn layer spec (name, type, inputs, options)
// and the layer's weights under fcn's param names, in fcn's layouts.
struct CaffeMapped {
  json spec;
  std::map<std::string, Tensor> weights;
};

using CaffeMapper = CaffeMapped (*)(CaffeLayer&);

// The spec every mapping starts from: name, type and the bottoms as inputs.
json caffe_layer_spec(const CaffeLayer& layer, const std::string& fcn_type);
// A Caffe 2-D size: `key: v`, `key: [h, w]` (repeated fields) or the
// key_h / key_w pair (`h_w_stem` "kernel" reads kernel_h / kernel_w).
std::array<int64_t, 2> caffe_hw(SpecReader& reader, const std::string& key, const std::string& h_w_stem,
                                int64_t fallback);
// An axis as Caffe gives it (negative counts from the end) over a 4-D blob.
int64_t caffe_axis(const CaffeLayer& layer, SpecReader& reader, const std::string& key, int64_t fallback);
// {h, w} as fcn's specs write a 2-D size: one integer when h == w.
json hw_json(const std::array<int64_t, 2>& hw);

}  // namespace fcn
