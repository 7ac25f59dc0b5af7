#include "fcn/layers/concat.hpp"

#include "fcn/cpu/elementwise.hpp"
#include "fcn/layers/registry.hpp"

namespace fcn {

ConcatLayer::ConcatLayer(LayerContext context, ConcatOptions options)
    : Layer(std::move(context)), options_(options) {}

Shape ConcatLayer::reshape(const std::vector<Shape>& input_shapes) {
  expect_inputs(input_shapes, inputs().size());
  const int axis = options_.axis;
  Shape out = input_shapes[0];
  out[axis] = 0;
  axis_offsets_.clear();
  for (const Shape& s : input_shapes) {
    for (int a = 0; a < 4; ++a)
      if (a != axis && s[a] != input_shapes[0][a])
        fail_shape("inputs must match on every axis but the concat axis " + std::to_string(axis), input_shapes);
    axis_offsets_.push_back(out[axis]);
    out[axis] += s[axis];
  }
  input_shapes_ = input_shapes;
  output_shape_ = out;
  return out;
}

namespace {

// Input `i`'s place in the output: a window at `offset` along `axis`.
cpu::Window4d slot(const Shape& output, const Shape& input, int axis, int64_t offset) {
  cpu::Window4d w;
  for (int a = 0; a < 4; ++a) {
    w.big[a] = output[a];
    w.window[a] = input[a];
  }
  w.offset[axis] = offset;
  return w;
}

}  // namespace

void ConcatLayer::forward(const std::vector<const Tensor*>& inputs, Tensor& output, Mode mode) {
  for (size_t i = 0; i < inputs.size(); ++i)
    cpu::paste_window(slot(output_shape_, input_shapes_[i], options_.axis, axis_offsets_[i]), inputs[i]->data(),
                      output.data());
}

void ConcatLayer::backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& output_grad,
                           const std::vector<Tensor*>& input_grads) {
  for (size_t i = 0; i < input_grads.size(); ++i)
    if (input_grads[i])
      cpu::window_accumulate(slot(output_shape_, input_shapes_[i], options_.axis, axis_offsets_[i]),
                             output_grad.data(), input_grads[i]->data());
}

void ConcatLayer::emit_onnx(OnnxEmitter& onnx, const std::vector<std::string>& inputs,
                            const std::string& output) const {
  onnx.node("Concat", name(), inputs, output, {{"axis", int64_t{options_.axis}}});
}

std::unique_ptr<Layer> make_concat_layer(LayerContext context, SpecReader& reader) {
  if (context.inputs.size() < 2) reader.fail("inputs", "concat needs at least two inputs");
  ConcatOptions options;
  // PyTorch's negative axes count from the end of NCHW; the batch axis (0, -4) is not concatenated
  const int64_t axis = reader.get_int("axis", 1, -3, 3);
  if (axis == 0) reader.fail("axis", "must be 1..3 (channels, h, w) or -3..-1, got 0 (the batch axis)");
  options.axis = static_cast<int>(axis < 0 ? axis + 4 : axis);
  return std::make_unique<ConcatLayer>(std::move(context), options);
}

// Caffe's Concat: `axis` (negative from the end), or the deprecated
// concat_dim when axis is unset (Caffe reads it only then).
CaffeMapped concat_from_caffe(CaffeLayer& layer) {
  SpecReader q = layer.param("concat_param");
  const int64_t axis = q.has("axis") ? caffe_axis(layer, q, "axis", 1) : q.get_int("concat_dim", 1, 0);
  q.accept("concat_dim");
  layer.finish(q);
  CaffeMapped mapped{caffe_layer_spec(layer, "concat"), {}};
  mapped.spec["axis"] = axis;
  return mapped;
}

}  // namespace fcn
