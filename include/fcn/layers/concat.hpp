#pragma once
// concat: joins n >= 2 inputs along `axis` (torch.cat / Caffe's Concat):
// 1 (channels, the default), 2 or 3 (h, w); -3..-1 count from the end as in
// PyTorch. Every other axis must match. Backward adds to each input its own
// slice of the output gradient, so it reads no input values.
#include <vector>

#include "fcn/core/layer.hpp"

namespace fcn {

struct ConcatOptions {
  int axis = 1;  // normalised to 1..3
};

class ConcatLayer : public Layer {
 public:
  ConcatLayer(LayerContext context, ConcatOptions options);

  std::string type() const override { return "concat"; }
  Shape reshape(const std::vector<Shape>& input_shapes) override;
  void forward(const std::vector<const Tensor*>& inputs, Tensor& output, Mode mode) override;
  void backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& output_grad,
                const std::vector<Tensor*>& input_grads) override;
  bool backward_needs_inputs() const override { return false; }
  // Every output pixel is one input pixel, moved: no arithmetic. The
  // coordinate map is the identity (the graph follows the first input's map;
  // along h or w that is exact for the first input's part only).
  std::array<double, 2> input_extent() const override { return {1, 1}; }
  double forward_flops() const override { return 0.0; }
  void emit_onnx(OnnxEmitter& onnx, const std::vector<std::string>& inputs, const std::string& output) const override;

  const ConcatOptions& options() const { return options_; }

 private:
  ConcatOptions options_;
  std::vector<Shape> input_shapes_;    // of the last reshape
  std::vector<int64_t> axis_offsets_;  // where each input starts along the axis
  Shape output_shape_;
};

}  // namespace fcn
