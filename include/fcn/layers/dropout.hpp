#pragma once
// dropout: inverted dropout (as Caffe) element-wise. In train mode each unit
// is kept with probability 1 - ratio and scaled by 1/(1 - ratio), with the
// mask drawn from the layer's rng (each image from its own generator when
// the graph has per-image ones: a batch's masks are those its images get
// one at a time) and kept for backward; identity in test mode. Backward
// reads only the mask, so the layer may run in place.
#include <vector>

#include "fcn/core/layer.hpp"

namespace fcn {

class DropoutLayer : public Layer {
 public:
  DropoutLayer(LayerContext context, double ratio);

  std::string type() const override { return "dropout"; }
  Shape reshape(const std::vector<Shape>& input_shapes) override;
  void forward(const std::vector<const Tensor*>& inputs, Tensor& output, Mode mode) override;
  void backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& output_grad,
                const std::vector<Tensor*>& input_grads) override;
  int in_place_input() const override { return 0; }
  bool backward_needs_inputs() const override { return false; }
  std::array<double, 2> input_extent() const override { return {1, 1}; }
  double forward_flops() const override { return 0.0; }
  // the identity in test mode: omitted, its readers read its input
  void emit_onnx(OnnxEmitter& onnx, const std::vector<std::string>& inputs, const std::string& output) const override {
    onnx.alias(output, inputs[0]);
  }

 private:
  // count values; with per-image generators (Layer::set_image_rngs) image n
  // of the `batch` draws its count / batch values from generator n.
  void draw_mask(int64_t count, int64_t batch);

  double ratio_;
  Tensor mask_;               // 0 or 1/(1 - ratio) per unit, from the last train forward
  bool mask_active_ = false;  // whether the last forward ran in train mode
};

}  // namespace fcn
