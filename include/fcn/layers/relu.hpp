#pragma once
// relu: y = max(x, 0) + negative_slope * min(x, 0) (leaky when slope > 0).
// Backward reads only the output (y > 0 iff x > 0 for slope >= 0), so the
// graph may run it in place over its input.
#include "fcn/layer.hpp"

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
  bool backward_needs_output() const override { return true; }

 private:
  float negative_slope_;
};

}  // namespace fcn
