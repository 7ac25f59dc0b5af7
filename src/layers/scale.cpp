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

// A Scale by one learned value (its blob holds that value for every
// channel): fcn's fixed scale. A per-channel Scale is imported only as the
// affine part of the BatchNorm before it (batch_norm's mapping).
CaffeMapped scale_from_caffe(CaffeLayer& layer) {
  if (layer.bottoms.size() != 1) layer.fail("scales by a second bottom; fcn imports a Scale by its own blob only");
  SpecReader q = layer.param("scale_param");
  if (q.get_bool("bias_term", false))
    q.fail("bias_term", "is true: fcn imports a Scale with a bias only right after a BatchNorm, as its affine part");
  // one value scales every axis alike, whichever axes the blob spans
  q.get_int("axis", 1);
  q.get_int("num_axes", 1);
  q.accept("filler");  // an initialiser: the file's blob replaces it
  q.accept("bias_filler");
  layer.finish(q);
  if (layer.blobs.size() != 1 || layer.blobs[0].numel() < 1) layer.fail("has no scale blob");
  const Tensor& s = layer.blobs[0];
  for (int64_t i = 1; i < s.numel(); ++i)
    if (s.data()[i] != s.data()[0]) layer.fail("scales channels by different values; fcn imports one fixed value");
  CaffeMapped mapped{caffe_layer_spec(layer, "scale"), {}};
  mapped.spec["value"] = s.data()[0];
  return mapped;
}

}  // namespace fcn
