#pragma once
// scale: y = w * x with a scalar w, fixed (`value`) or learnable (one param
// "<layer>.weight" of shape [1], initialised to `value`). FCN-8s-atonce
// scales pool4 by 0.01 and pool3 by 0.0001 this way.
#include "fcn/core/layer.hpp"

namespace fcn {

class ScaleLayer : public Layer {
 public:
  // A learnable layer passes its weight param; a fixed one passes none.
  ScaleLayer(LayerContext context, float value, std::unique_ptr<Param> weight);

  std::string type() const override { return "scale"; }
  Shape reshape(const std::vector<Shape>& input_shapes) override;
  void forward(const std::vector<const Tensor*>& inputs, Tensor& output, Mode mode) override;
  void backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& output_grad,
                const std::vector<Tensor*>& input_grads) override;
  std::vector<Param*> params() override;
  // dw = sum(dy * x) reads x; a fixed scale never does and may run in place.
  int in_place_input() const override { return weight_ ? -1 : 0; }
  bool backward_needs_inputs() const override { return weight_ && !weight_->frozen(); }
  std::array<double, 2> input_extent() const override { return {1, 1}; }
  double forward_flops() const override { return 0.0; }  // one multiply per element: not counted
  void emit_onnx(OnnxEmitter& onnx, const std::vector<std::string>& inputs, const std::string& output) const override {
    onnx.node("Mul", name(), {inputs[0], onnx.scalar(name() + "/value", factor())}, output);
  }

 private:
  float factor() const { return weight_ ? weight_->data[0] : value_; }

  float value_;
  std::unique_ptr<Param> weight_;
};

}  // namespace fcn
