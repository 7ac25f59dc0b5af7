#pragma once
// fcn graphs as ONNX models (opset 13), for runtimes outside fcn.
//
// The model's input `image` is float32 [N, 3, H, W], exactly the tensor
// fcn's graph reads as `data` (image_to_tensor's convention: channels in
// data.channel_order, ((pixel * pixel_scale) - mean) / std * input_scale); its
// output `score` [N, C, H, W] is the blob fcn predicts from (the loss
// layer's score input). Each layer emits its own nodes (Layer::emit_onnx);
// the loss is omitted. A layer type without an exact ONNX form stops the
// export with "cannot export to ONNX: layer '...': <why>".
//
// Dynamic export (height = width = 0): N, H and W are symbolic, and each
// crop's end is computed from the Shape of its reference blob at run time.
// Fixed export: every shape is given and crops use constant bounds, for
// runtimes that need static shapes.
#include <string>

#include "fcn/graph/graph.hpp"

namespace fcn {

struct OnnxExportOptions {
  int64_t height = 0;  // 0 and 0: dynamic N, H, W
  int64_t width = 0;
};

// The serialized ModelProto. `graph` must hold its params (weights loaded)
// and have been reshaped once (crop offsets, param shapes).
std::string onnx_model_bytes(Graph& graph, const OnnxExportOptions& options);

// Writes the model to `filename` atomically; refuses an existing file.
void export_onnx(Graph& graph, const std::string& filename, const OnnxExportOptions& options);

}  // namespace fcn
