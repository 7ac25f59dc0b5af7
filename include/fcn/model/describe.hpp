#pragma once
// A per-layer account of a graph at one input size: output shape, params,
// FLOPs, cumulative stride, receptive field and crop offsets.
#include <string>
#include <vector>

#include "fcn/graph/graph.hpp"

namespace fcn {

struct LayerSummary {
  std::string name, type;
  std::vector<std::string> inputs;
  Shape output_shape;
  int64_t params = 0;
  int64_t trainable_params = 0;
  double flops = 0;
  std::array<double, 2> stride{1, 1};          // data pixels per output pixel
  std::array<double, 2> receptive_field{1, 1};  // data pixels seen by one output pixel
  std::array<double, 2> offset{0, 0};          // crop layers: the offset applied
};

struct GraphSummary {
  std::vector<LayerSummary> layers;
  int64_t params = 0;
  int64_t trainable_params = 0;
  double flops = 0;            // a training forward: every layer
  double inference_flops = 0;  // the layers inference runs (Graph::inference_layer)
  json to_json() const;
  std::string table() const;
};

// `graph` must be reshaped; every figure comes from its layers (shapes,
// params, Layer::forward_flops, Layer::input_extent, coordinate maps).
GraphSummary describe_graph(Graph& graph);

}  // namespace fcn
