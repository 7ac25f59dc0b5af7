#include "fcn/layers/scale.hpp"

#include "fcn/cpu/elementwise.hpp"
#include "fcn/layers/registry.hpp"

namespace fcn {

ScaleLayer::ScaleLayer(LayerContext context, float value, std::unique_ptr<Param> weight)
    : Layer(std::move(context)), value_(value), weight_(std::move(weight)) {}

Shape ScaleLayer::reshape(const std::vector<Shape>& input_shapes) {
  expect_inputs(input_shapes, 1, 0);
  return input_shapes[0];
}

void ScaleLayer::forward(const std::vector<const Tensor*>& inputs, Tensor& output, Mode mode) {
  cpu::scale(inputs[0]->data(), factor(), output.data(), output.numel());
}

void ScaleLayer::backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& output_grad,
                          const std::vector<Tensor*>& input_grads) {
  const int64_t n = output_grad.numel();
  if (input_grads[0]) cpu::axpy(output_grad.data(), factor(), input_grads[0]->data(), n);
  // dw += sum_i dy_i * x_i
  if (weight_ && !weight_->frozen())
    weight_->grad[0] += static_cast<float>(cpu::dot(output_grad.data(), inputs[0]->data(), n));
}

std::vector<Param*> ScaleLayer::params() {
  if (weight_) return {weight_.get()};
  return {};
}

std::unique_ptr<Layer> make_scale_layer(LayerContext context, SpecReader& reader) {
  const double value = reader.get_number("value", 1.0);
  std::unique_ptr<Param> weight;
  if (reader.get_bool("learnable", false))
    weight = std::make_unique<Param>(
        make_param(context.name, "weight", {1}, {{"type", "constant"}, {"value", value}}, reader, "", 1.f, 1.f));
  return std::make_unique<ScaleLayer>(std::move(context), static_cast<float>(value), std::move(weight));
}

}  // namespace fcn
