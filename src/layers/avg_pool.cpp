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

// ONNX opset 13's AveragePool differs from PyTorch in two places, both in
// ceil mode: it keeps a last window that PyTorch drops (one starting in the
// padding: refused), and with count_include_pad its divisor at a partial
// last window is not PyTorch's (the window clipped to the padded input).
// Where partial windows occur, the padded divisor is therefore made the
// plain one: the input is zero-padded by a Pad node and pooled with
// count_include_pad 0 (without padding the two divisors are the same).
// A dynamic export must hold for every input size, a fixed one for its own.
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
  const bool padded = o.pad[0] > 0 || o.pad[1] > 0;
  const bool pad_node = options_.count_include_pad && partial && padded;
  std::string x = inputs[0];
  if (pad_node) {
    x = name() + "/padded";
    const std::string pads = onnx.int64_tensor(name() + "/pads", {0, 0, o.pad[0], o.pad[1], 0, 0, o.pad[0], o.pad[1]});
    onnx.node("Pad", x, {inputs[0], pads}, x);
  }
  const std::vector<int64_t> pads =
      pad_node ? std::vector<int64_t>{0, 0, 0, 0} : std::vector<int64_t>{o.pad[0], o.pad[1], o.pad[0], o.pad[1]};
  onnx.node("AveragePool", name(), {x}, output,
            {{"kernel_shape", std::vector<int64_t>{o.kernel[0], o.kernel[1]}},
             {"strides", std::vector<int64_t>{o.stride[0], o.stride[1]}},
             {"pads", pads},
             {"ceil_mode", int64_t{partial ? 1 : 0}},
             {"count_include_pad", int64_t{options_.count_include_pad && !partial ? 1 : 0}}});
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
