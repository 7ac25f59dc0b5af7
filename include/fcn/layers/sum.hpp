#pragma once
// sum: y = sum_i coeff_i * x_i over n >= 1 inputs of identical shape (the
// FCN skip fusion); backward: dx_i += coeff_i * dy.
#include <vector>

#include "fcn/core/layer.hpp"

namespace fcn {

class SumLayer : public Layer {
 public:
  SumLayer(LayerContext context, std::vector<float> coeffs);

  std::string type() const override { return "sum"; }
  Shape reshape(const std::vector<Shape>& input_shapes) override;
  void forward(const std::vector<const Tensor*>& inputs, Tensor& output, Mode mode) override;
  void backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& output_grad,
                const std::vector<Tensor*>& input_grads) override;
  bool backward_needs_inputs() const override { return false; }
  std::array<double, 2> input_extent() const override { return {1, 1}; }
  double forward_flops() const override { return 0.0; }  // one add per element: not counted
  // A ReLU in place over the output (Graph::fuse_relus, ResNet's block
  // outputs): forward writes max(y, 0) in the pass that writes y.
  bool rectify_output(bool on) override {
    rectify_ = on;
    return true;
  }
  // Add (and Mul by a coefficient that is not 1)
  void emit_onnx(OnnxEmitter& onnx, const std::vector<std::string>& inputs, const std::string& output) const override;

 private:
  std::vector<float> coeffs_;
  bool rectify_ = false;
};

}  // namespace fcn
