#include "fcn/layers/avg_pool.hpp"

#include "fcn/layers/registry.hpp"

namespace fcn {

AvgPoolLayer::AvgPoolLayer(LayerContext context, const AvgPoolOptions& options)
    : Layer(std::move(context)), options_(options), window_(options.window) {}

Shape AvgPoolLayer::reshape(const std::vector<Shape>& input_shapes) {
  expect_inputs(input_shapes, 1);
  const Shape& in = input_shapes[0];
  if (options_.global) {
    if (in[2] < 1 || in[3] < 1) fail_shape("global pooling needs a non-empty input plane", input_shapes);
    window_ = PoolOptions{{in[2], in[3]}, {1, 1}, {0, 0}, false};
  }
  const auto out = pool_output_hw(in, window_);
  if (out[0] < 1 || out[1] < 1)
    fail_shape("kernel " + std::to_string(window_.kernel[0]) + "x" + std::to_string(window_.kernel[1]) +
                   " does not fit the padded input",
               input_shapes);
  const double outputs = static_cast<double>(in[0]) * in[1] * out[0] * out[1];
  flops_ = outputs * (static_cast<double>(window_.kernel[0]) * window_.kernel[1] + 1);
  return {in[0], in[1], out[0], out[1]};
}

void AvgPoolLayer::forward(const std::vector<const Tensor*>& inputs, Tensor& output, Mode) {
  const auto g = pool_geometry(inputs[0]->shape(), output.shape(), window_);
  cpu::avg_pool_forward(g, options_.count_include_pad, inputs[0]->data(), output.data());
}

void AvgPoolLayer::backward(const std::vector<const Tensor*>&, const Tensor& output, const Tensor& output_grad,
                            const std::vector<Tensor*>& input_grads) {
  if (!input_grads[0]) return;
  const auto g = pool_geometry(input_grads[0]->shape(), output.shape(), window_);
  cpu::avg_pool_backward(g, options_.count_include_pad, output_grad.data(), input_grads[0]->data());
}

namespace {

void average_pool_node(OnnxEmitter& onnx, const std::string& name, const std::string& input,
                       const std::string& output, const PoolOptions& o, bool ceil_mode) {
  onnx.node("AveragePool", name, {input}, output,
            {{"kernel_shape", std::vector<int64_t>{o.kernel[0], o.kernel[1]}},
             {"strides", std::vector<int64_t>{o.stride[0], o.stride[1]}},
             {"pads", std::vector<int64_t>{o.pad[0], o.pad[1], o.pad[0], o.pad[1]}},
             {"ceil_mode", int64_t{ceil_mode ? 1 : 0}},
             {"count_include_pad", int64_t{0}}});
}

}  // namespace

// ONNX's AveragePool (opset 13) is exact only in part, and runtimes differ:
// * in ceil mode it keeps a last window that PyTorch drops (one starting in
//   the padding): refused;
// * count_include_pad 1: OpenCV's dnn (4.6) ignores it, and ONNX Runtime
//   divides a ceil-mode partial last window by the whole kernel where
//   PyTorch divides by the window clipped to the padded input (and its Pad
//   fusion drops the padding from a Pad + AveragePool's divisor).
// So AveragePool is emitted with count_include_pad 0 only: exactly the
// divisor without padding, and the padded one where there is no padding.
// Padding counted, without partial windows: a depthwise Conv with weights
// 1/(kh*kw) (zero padding, the same windows). With partial windows too: the
// unpadded average times a constant map of (pixels / padded divisor),
// which needs the size fixed. A dynamic export must hold for every size.
void AvgPoolLayer::emit_onnx(OnnxEmitter& onnx, const std::vector<std::string>& inputs,
                             const std::string& output) const {
  if (options_.global) {
    onnx.node("GlobalAveragePool", name(), {inputs[0]}, output);
    return;
  }
  const PoolOptions& o = window_;
  const Shape& in = onnx.blob_shape(this->inputs()[0]);
  bool partial = false;  // a ceil-mode window reaches past the padded input
  for (int axis = 0; axis < 2; ++axis) {
    if (!o.ceil_mode) continue;
    const int64_t k = o.kernel[axis], s = o.stride[axis], p = o.pad[axis];
    if (onnx.dynamic() ? ceil_mode_may_drop_window(k, s, p) : ceil_mode_drops_window(in[2 + axis], k, s, p))
      throw OnnxUnsupported(name(), std::string("ceil mode drops a last window that starts in the padding") +
                                        (onnx.dynamic() ? " at some input sizes" : "") +
                                        ", which ONNX AveragePool keeps (stride > kernel - pad)");
    partial = partial || (onnx.dynamic() ? s > 1
                                         : pool_output_size(in[2 + axis], k, s, p, true) !=
                                               pool_output_size(in[2 + axis], k, s, p, false));
  }
  if (!options_.count_include_pad || (o.pad[0] == 0 && o.pad[1] == 0)) {
    average_pool_node(onnx, name(), inputs[0], output, o, partial);
  } else if (!partial) {
    const Shape kernel{in[1], 1, o.kernel[0], o.kernel[1]};
    const std::vector<float> mean(static_cast<size_t>(shape_numel(kernel)),
                                  static_cast<float>(1.0 / static_cast<double>(o.kernel[0] * o.kernel[1])));
    onnx.node("Conv", name(), {inputs[0], onnx.float_tensor(name() + "/mean_kernel", kernel, mean.data())}, output,
              {{"kernel_shape", std::vector<int64_t>{o.kernel[0], o.kernel[1]}},
               {"strides", std::vector<int64_t>{o.stride[0], o.stride[1]}},
               {"pads", std::vector<int64_t>{o.pad[0], o.pad[1], o.pad[0], o.pad[1]}},
               {"group", in[1]}});
  } else if (onnx.dynamic()) {
    throw OnnxUnsupported(name(), "with count_include_pad, a ceil-mode window reaching past the padded input has a "
                                  "divisor ONNX runtimes disagree on; a fixed-size export (--size) is exact");
  } else {
    const std::string unpadded = name() + "/unpadded_average";
    average_pool_node(onnx, unpadded, inputs[0], unpadded, o, true);
    const auto out = pool_output_hw(in, o);
    const cpu::PoolGeometry g = pool_geometry(in, {in[0], in[1], out[0], out[1]}, o);
    // the same map for every channel: [1, C, OH, OW] (OpenCV's Mul does not broadcast a 4-d constant)
    std::vector<float> ratio(static_cast<size_t>(in[1] * out[0] * out[1]));
    for (size_t i = 0; i < ratio.size(); ++i) {
      const int64_t oy = static_cast<int64_t>(i) / out[1] % out[0], ox = static_cast<int64_t>(i) % out[1];
      ratio[i] = static_cast<float>(cpu::avg_pool_divisor(g, false, oy, ox) / cpu::avg_pool_divisor(g, true, oy, ox));
    }
    onnx.node("Mul", name(), {unpadded, onnx.float_tensor(name() + "/divisor_ratio", {1, in[1], out[0], out[1]}, ratio.data())},
              output);
  }
}

std::unique_ptr<Layer> make_avg_pool_layer(LayerContext context, SpecReader& reader) {
  AvgPoolOptions options;
  options.global = reader.get_bool("global", false);
  if (options.global) {
    for (const char* key : {"kernel", "stride", "pad", "ceil_mode"})
      if (reader.has(key)) reader.fail(key, "must be absent with \"global\": true (the window is the whole input)");
  } else {
    options.window = read_pool_options(reader);
  }
  options.count_include_pad = reader.get_bool("count_include_pad", true);
  return std::make_unique<AvgPoolLayer>(std::move(context), options);
}

}  // namespace fcn
