#pragma once
// resize: bilinear resize of x, exactly PyTorch's
// F.interpolate(x, mode="bilinear", align_corners=...), forward and backward.
// The output size comes from exactly one of
//   scale: a factor, or [h, w] factors: out = floor(in * scale), as PyTorch
//          with scale_factor (recompute_scale_factor unset); the source
//          mapping then uses 1 / scale, not in / out (PyTorch 1.13 does);
//   size:  a fixed [h, w] (or one int for both);
//   ref:   a second input, whose h and w the output takes (it gets no gradient).
// Source coordinate of output pixel o: align_corners false: the half-pixel
// (o + 0.5) * step - 0.5, clamped at 0; true: o * (in - 1) / (out - 1).
// An axis whose output size equals its input size is copied (PyTorch's rule,
// even for a scale factor != 1).
#include <array>
#include <optional>
#include <vector>

#include "fcn/core/layer.hpp"
#include "fcn/cpu/resize.hpp"

namespace fcn {

// PyTorch's output size for a scale factor: the double product, truncated.
// Can be < 1 (the caller rejects it).
int64_t resize_output_size(int64_t in, double scale);

struct ResizeOptions {
  std::optional<std::array<double, 2>> scale;
  std::optional<std::array<int64_t, 2>> size;
  bool align_corners = false;  // neither scale nor size: the size of input 1 (ref)
};

class ResizeLayer : public Layer {
 public:
  ResizeLayer(LayerContext context, ResizeOptions options);

  std::string type() const override { return "resize"; }
  Shape reshape(const std::vector<Shape>& input_shapes) override;
  void forward(const std::vector<const Tensor*>& inputs, Tensor& output, Mode mode) override;
  void backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& output_grad,
                const std::vector<Tensor*>& input_grads) override;
  // Backward needs only the index and weight tables of reshape.
  bool backward_needs_inputs() const override { return false; }
  // Per axis, the inverse of the source mapping: half-pixel:
  // a = 1 / step, b = 0.5 / step - 0.5 (step = 1 / scale or in / out);
  // align_corners: a = (out - 1) / (in - 1), b = 0. The identity on a copied
  // axis; out / in (b = 0) where align_corners leaves the map undefined
  // (in or out of 1 pixel). Half-pixel outputs within half a step of the
  // first pixel are clamped to it and off the map.
  CoordMap coord_map() const override;
  // Per axis: 2 (each output pixel reads 2 neighbouring input pixels,
  // whatever the factor; a downsampling bilinear skips pixels between its
  // taps, it does not widen them, so the field is not ceil(f) + 1 as an
  // area filter's would be); 1 on a copied axis or a 1-pixel input.
  std::array<double, 2> input_extent() const override;
  // 4 taps per output value, each one multiply-add (PyTorch's separable
  // form is 6 multiplies + 3 adds): 8 per output value.
  double forward_flops() const override { return flops_; }
  // Resize (opset 13), mode "linear", coordinate_transformation_mode
  // "half_pixel" (PyTorch's mapping, a 1-pixel output included, which
  // "pytorch_half_pixel" would send to 0) or "align_corners". A scale writes
  // `scales`: the nearest float32 factor (or a neighbour) whose ONNX
  // floor(in * scale) is fcn's size, at the export size or, dynamic, at every
  // input size up to 65536; scale 1 for an axis PyTorch copies. A dynamic
  // half-pixel scale in (1, 1.5) is refused: PyTorch copies the small inputs
  // with floor(in * scale) = in, ONNX resamples them. `sizes` are constants
  // or, dynamic, Shape(x)[0:2] ++ Shape(ref)[2:4] (or the fixed size).
  void emit_onnx(OnnxEmitter& onnx, const std::vector<std::string>& inputs, const std::string& output) const override;

  const ResizeOptions& options() const { return options_; }

 private:
  std::array<int64_t, 2> output_hw(const std::vector<Shape>& input_shapes) const;
  std::string onnx_scales(OnnxEmitter& onnx) const;
  std::string onnx_sizes(OnnxEmitter& onnx, const std::vector<std::string>& inputs) const;
  // The index and weight tables of the last reshape (built once, at first use).
  cpu::ResizeGeometry geometry();

  ResizeOptions options_;
  std::array<int64_t, 2> in_{}, out_{};
  std::array<double, 2> step_{};
  cpu::LinearAxis rows_, cols_;
  bool tables_ready_ = false;
  int64_t planes_ = 0;
  double flops_ = 0;
};

}  // namespace fcn
