#include "fcn/layers/sum.hpp"

#include "fcn/cpu/elementwise.hpp"
#include "fcn/layers/registry.hpp"

namespace fcn {

SumLayer::SumLayer(LayerContext context, std::vector<float> coeffs)
    : Layer(std::move(context)), coeffs_(std::move(coeffs)) {}

Shape SumLayer::reshape(const std::vector<Shape>& input_shapes) {
  expect_inputs(input_shapes, coeffs_.size(), 0);
  for (const Shape& s : input_shapes)
    if (s != input_shapes[0]) fail_shape("inputs must have identical shapes", input_shapes);
  return input_shapes[0];
}

void SumLayer::forward(const std::vector<const Tensor*>& inputs, Tensor& output, Mode mode) {
  const int64_t n = output.numel();
  if (inputs.size() == 1) {
    cpu::scale(inputs[0]->data(), coeffs_[0], output.data(), n);
    if (rectify_) cpu::rectify(output.data(), n);
    return;
  }
  // the first two in one pass (and the ReLU with them when they are all)
  const bool last = inputs.size() == 2;
  cpu::scaled_sum(inputs[0]->data(), coeffs_[0], inputs[1]->data(), coeffs_[1], output.data(), n, rectify_ && last);
  for (size_t i = 2; i < inputs.size(); ++i) cpu::axpy(inputs[i]->data(), coeffs_[i], output.data(), n);
  if (rectify_ && !last) cpu::rectify(output.data(), n);
}

void SumLayer::backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& output_grad,
                        const std::vector<Tensor*>& input_grads) {
  for (size_t i = 0; i < input_grads.size(); ++i)
    if (input_grads[i]) cpu::axpy(output_grad.data(), coeffs_[i], input_grads[i]->data(), output_grad.numel());
}

void SumLayer::emit_onnx(OnnxEmitter& onnx, const std::vector<std::string>& inputs,
                         const std::string& output) const {
  std::vector<std::string> terms;
  for (size_t k = 0; k < inputs.size(); ++k) {
    if (coeffs_[k] == 1.f) {
      terms.push_back(inputs[k]);
      continue;
    }
    const std::string term = name() + "/term" + std::to_string(k);
    onnx.node("Mul", term, {inputs[k], onnx.scalar(term + "/coeff", coeffs_[k])}, term);
    terms.push_back(term);
  }
  if (terms.size() == 1) {
    onnx.node("Identity", name(), terms, output);
    return;
  }
  std::string partial = terms[0];
  for (size_t k = 1; k < terms.size(); ++k) {
    const bool last = k + 1 == terms.size();
    const std::string value = last ? output : name() + "/partial" + std::to_string(k);
    onnx.node("Add", last ? name() : value, {partial, terms[k]}, value);
    partial = value;
  }
}

std::unique_ptr<Layer> make_sum_layer(LayerContext context, SpecReader& reader) {
  const size_t count = context.inputs.size();
  if (count == 0) reader.fail("inputs", "sum needs at least one input");
  const auto coeffs = reader.get_number_list("coeffs", std::vector<double>(count, 1.0));
  if (coeffs.size() != count)
    reader.fail("coeffs",
                "expected " + std::to_string(count) + " numbers (one per input), got " + std::to_string(coeffs.size()));
  return std::make_unique<SumLayer>(std::move(context), std::vector<float>(coeffs.begin(), coeffs.end()));
}

CaffeMapped eltwise_from_caffe(CaffeLayer& layer) {
  SpecReader q = layer.param("eltwise_param");
  const std::string op = q.get_choice("operation", {"SUM", "PROD", "MAX"}, "SUM");
  if (op != "SUM") q.fail("operation", "is " + op + "; fcn imports Eltwise SUM only");
  q.accept("stable_prod_grad");  // the gradient of PROD only
  CaffeMapped mapped{caffe_layer_spec(layer, "sum"), {}};
  if (q.has("coeff")) {
    const auto coeffs = q.get_number_list("coeff", {});
    if (coeffs.size() != layer.bottoms.size()) q.fail("coeff", "needs one coefficient per bottom");
    mapped.spec["coeffs"] = coeffs;
  }
  layer.finish(q);
  return mapped;
}

}  // namespace fcn
