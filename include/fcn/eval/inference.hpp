#pragma once
// One image through a graph in test mode: the score map and its per-pixel
// argmax, at the image's size. Used by validation, eval and predict.
#include <string>

#include "fcn/graph/graph.hpp"
#include "fcn/io/image_io.hpp"

namespace fcn {

// Runs `graph` in test mode on `image` [1, 3, H, W] (fed to the input
// "data", or the first input). Every other input (the label) gets `label`
// when given, else zeros, so the loss layer runs (its value then means
// nothing). Returns the score blob [1, K, H, W], valid until the next pass;
// a score map of another size than the image is an Error (a graph must crop
// its output to the input, as FCN's "score" crop does).
const Tensor& infer_scores(Graph& graph, const Tensor& image, const Tensor* label = nullptr);

// Per-pixel argmax over the channels of [1, K, H, W] scores (ties go to the
// lowest class id), as a 1-channel H x W label map. K must be <= 256.
Image argmax_mask(const Tensor& scores);

// infer_scores + argmax_mask.
Image predict_mask(Graph& graph, const Tensor& image);

}  // namespace fcn
