#include "fcn/layers/relu.hpp"

#include "fcn/cpu/elementwise.hpp"
#include "fcn/core/error.hpp"
#include "fcn/layers/registry.hpp"

namespace fcn {

ReluLayer::ReluLayer(LayerContext context, float negative_slope)
    : Layer(std::move(context)), negative_slope_(negative_slope) {}

Shape ReluLayer::reshape(const std::vector<Shape>& input_shapes) {
  expect_inputs(input_shapes, 1, 0);
  return input_shapes[0];
}

void ReluLayer::forward(const std::vector<const Tensor*>& inputs, Tensor& output, Mode mode) {
  positive_.resize(cpu::relu_mask_words(output.numel()));
  if (input_rectified_ && inputs[0]->data() == output.data())
    cpu::positive_bits(output.data(), positive_.data(), output.numel());
  else
    cpu::relu_forward(inputs[0]->data(), output.data(), positive_.data(), output.numel(), negative_slope_);
}

void ReluLayer::backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& output_grad,
                         const std::vector<Tensor*>& input_grads) {
  if (!input_grads[0]) return;
  if (static_cast<int64_t>(positive_.size()) != cpu::relu_mask_words(output.numel()))
    throw Error("layer '" + name() + "' (relu): backward before forward");
  if (backward_folded_) return;  // the gradient is already masked, in the buffer both share
  cpu::relu_backward(positive_.data(), output_grad.data(), input_grads[0]->data(), output.numel(), negative_slope_,
                     !input_grad_fresh(0));
}

void ReluLayer::emit_onnx(OnnxEmitter& onnx, const std::vector<std::string>& inputs,
                          const std::string& output) const {
  if (negative_slope_ == 0.f) {
    onnx.node("Relu", name(), inputs, output);
  } else {
    onnx.node("LeakyRelu", name(), inputs, output, {{"alpha", negative_slope_}});
  }
}

std::unique_ptr<Layer> make_relu_layer(LayerContext context, SpecReader& reader) {
  // slope >= 0 keeps sign(y) == sign(x): the kept bits (y > 0) are the derivative's cases
  const double slope = reader.get_number("negative_slope", 0.0, 0.0);
  return std::make_unique<ReluLayer>(std::move(context), static_cast<float>(slope));
}

CaffeMapped relu_from_caffe(CaffeLayer& layer) {
  layer.expect_bottoms(1);
  SpecReader q = layer.param("relu_param");
  const double slope = q.get_number("negative_slope", 0.0);
  q.accept("engine");  // Caffe's or cuDNN's implementation of the same function
  layer.finish(q);
  CaffeMapped mapped{caffe_layer_spec(layer, "relu"), {}};
  if (slope != 0) mapped.spec["negative_slope"] = slope;
  return mapped;
}

}  // namespace fcn
