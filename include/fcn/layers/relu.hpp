#pragma once
// relu: y = max(x, 0) + negative_slope * min(x, 0) (leaky when slope > 0).
// Forward keeps one bit per element (y > 0, which is x > 0 for slope >= 0)
// and backward reads only those bits: the graph may run the layer in place
// over its input and reuse the output's memory once the next layer has
// read it (a ReLU before a max pool: the pool keeps its argmax).
#include <cstdint>
#include <vector>

#include "fcn/core/layer.hpp"

namespace fcn {

class ReluLayer : public Layer {
 public:
  ReluLayer(LayerContext context, float negative_slope);

  std::string type() const override { return "relu"; }
  Shape reshape(const std::vector<Shape>& input_shapes) override;
  void forward(const std::vector<const Tensor*>& inputs, Tensor& output, Mode mode) override;
  void backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& output_grad,
                const std::vector<Tensor*>& input_grads) override;
  int in_place_input() const override { return 0; }
  bool backward_needs_inputs() const override { return false; }
  bool writes_fresh_input_grad(size_t) const override { return true; }
  bool backward_needs_output() const override { return false; }
  float negative_slope() const { return negative_slope_; }
  std::array<double, 2> input_extent() const override { return {1, 1}; }
  double forward_flops() const override { return 0.0; }  // a comparison per element
  // In place over an output its producer has already rectified
  // (Layer::rectify_output): forward only records the kept bits.
  bool is_rectifier() const override { return negative_slope_ == 0.f; }
  void set_input_rectified(bool on) override { input_rectified_ = on; }
  const uint16_t* kept_bits() const override { return positive_.empty() ? nullptr : positive_.data(); }
  void set_backward_folded(bool on) override { backward_folded_ = on; }
  bool backward_folded() const { return backward_folded_; }
  void emit_onnx(OnnxEmitter& onnx, const std::vector<std::string>& inputs, const std::string& output) const override;

 private:
  float negative_slope_;
  bool input_rectified_ = false;
  bool backward_folded_ = false;  // the consumer of the output applies the bits (Layer::masks_input_grad)
  std::vector<uint16_t> positive_;  // bit j of word i: output 16i + j > 0, from the last forward
};

}  // namespace fcn
