#include "fcn/layers/pool.hpp"

#include <algorithm>
#include <limits>

#include "fcn/layers/registry.hpp"

namespace fcn {

int64_t pool_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, bool ceil_mode) {
  // in 128 bits: a huge kernel, stride or pad from a bad spec must not overflow
  const __int128 span = static_cast<__int128>(in) + 2 * static_cast<__int128>(pad) - kernel;
  if (span < 0) return 0;
  __int128 out = (ceil_mode ? (span + stride - 1) / stride : span / stride) + 1;
  if (ceil_mode && (out - 1) * stride >= static_cast<__int128>(in) + pad) --out;
  return out > INT64_MAX ? INT64_MAX : static_cast<int64_t>(out);
}

bool ceil_mode_drops_window(int64_t in, int64_t kernel, int64_t stride, int64_t pad) {
  const int64_t span = in + 2 * pad - kernel;
  return span >= 0 && pool_output_size(in, kernel, stride, pad, true) < (span + stride - 1) / stride + 1;
}

bool ceil_mode_may_drop_window(int64_t kernel, int64_t stride, int64_t pad) {
  // With in + 2*pad - kernel = q*stride + r, ceil mode's last window starts at
  // (q + [r > 0])*stride - pad; it starts at in + pad or beyond when r > 0 and
  // stride >= r + kernel - pad, so for some input exactly when stride > kernel - pad.
  return stride > kernel - pad;
}

PoolOptions read_pool_options(SpecReader& reader) {
  PoolOptions o;
  if (!reader.has("kernel")) reader.fail("kernel", "missing required key");
  o.kernel = reader.get_hw("kernel", {0, 0}, 1);
  o.stride = reader.get_hw("stride", o.kernel, 1);
  o.pad = reader.get_hw("pad", {0, 0}, 0);
  for (int axis = 0; axis < 2; ++axis)
    if (o.pad[axis] > o.kernel[axis] / 2)
      reader.fail("pad", "must be <= kernel/2 (" + std::to_string(o.kernel[axis] / 2) + "), got " +
                             std::to_string(o.pad[axis]));
  o.ceil_mode = reader.get_bool("ceil_mode", true);
  return o;
}

std::array<int64_t, 2> pool_output_hw(const Shape& input, const PoolOptions& o) {
  std::array<int64_t, 2> out{};
  for (int axis = 0; axis < 2; ++axis)
    out[axis] = pool_output_size(input[2 + axis], o.kernel[axis], o.stride[axis], o.pad[axis], o.ceil_mode);
  return out;
}

cpu::PoolGeometry pool_geometry(const Shape& in, const Shape& out, const PoolOptions& o) {
  cpu::PoolGeometry g;
  g.planes = in[0] * in[1];
  g.in_h = in[2];
  g.in_w = in[3];
  g.out_h = out[2];
  g.out_w = out[3];
  g.kernel_h = o.kernel[0];
  g.kernel_w = o.kernel[1];
  g.stride_h = o.stride[0];
  g.stride_w = o.stride[1];
  g.pad_h = o.pad[0];
  g.pad_w = o.pad[1];
  return g;
}

CoordMap pool_coord_map(const PoolOptions& o) {
  CoordMap map;
  for (int axis = 0; axis < 2; ++axis) {
    map.scale[axis] = 1.0 / static_cast<double>(o.stride[axis]);
    map.shift[axis] =
        (static_cast<double>(o.pad[axis]) - static_cast<double>(o.kernel[axis] - 1) / 2.0) / static_cast<double>(o.stride[axis]);
  }
  return map;
}

MaxPoolLayer::MaxPoolLayer(LayerContext context, const PoolOptions& options)
    : Layer(std::move(context)), options_(options) {}

Shape MaxPoolLayer::reshape(const std::vector<Shape>& input_shapes) {
  expect_inputs(input_shapes, 1);
  const Shape& in = input_shapes[0];
  const auto out = pool_output_hw(in, options_);
  if (out[0] < 1 || out[1] < 1)
    fail_shape("kernel " + std::to_string(options_.kernel[0]) + "x" + std::to_string(options_.kernel[1]) +
                   " does not fit the padded input",
               input_shapes);
  if (in[2] > std::numeric_limits<int32_t>::max() / std::max<int64_t>(in[3], 1))  // not in[2] * in[3]: overflow
    fail_shape("input plane too large for 32-bit argmax indices", input_shapes);
  return {in[0], in[1], out[0], out[1]};
}

void MaxPoolLayer::forward(const std::vector<const Tensor*>& inputs, Tensor& output, Mode mode) {
  const auto g = pool_geometry(inputs[0]->shape(), output.shape(), options_);
  // sized here, not in reshape: a graph that only plans its memory (the
  // estimate of a 48-megapixel photo) must not fill gigabytes of indices
  argmax_.resize(static_cast<size_t>(output.numel()));
  cpu::max_pool_forward(g, inputs[0]->data(), output.data(), argmax_.data());
}

void MaxPoolLayer::backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& output_grad,
                            const std::vector<Tensor*>& input_grads) {
  if (!input_grads[0]) return;
  const auto g = pool_geometry(input_grads[0]->shape(), output.shape(), options_);
  cpu::max_pool_backward(g, output_grad.data(), argmax_.data(), input_grads[0]->data(), !input_grad_fresh(0),
                         input_grad_kept());
}

void MaxPoolLayer::emit_onnx(OnnxEmitter& onnx, const std::vector<std::string>& inputs,
                             const std::string& output) const {
  const PoolOptions& o = options_;
  // fcn (as PyTorch) drops a last window that starts in the padding; ONNX
  // keeps it. Without padding the two agree whenever kernel >= stride.
  if (o.ceil_mode && (o.pad[0] || o.pad[1] || o.kernel[0] < o.stride[0] || o.kernel[1] < o.stride[1]))
    throw OnnxUnsupported(name(), "ceil-mode max_pool with padding or a kernel smaller than its stride has no exact "
                                  "ONNX MaxPool");
  onnx.node("MaxPool", name(), inputs, output,
            {{"kernel_shape", std::vector<int64_t>{o.kernel[0], o.kernel[1]}},
             {"strides", std::vector<int64_t>{o.stride[0], o.stride[1]}},
             {"pads", std::vector<int64_t>{o.pad[0], o.pad[1], o.pad[0], o.pad[1]}},
             {"ceil_mode", int64_t{o.ceil_mode ? 1 : 0}}});
}

std::unique_ptr<Layer> make_max_pool_layer(LayerContext context, SpecReader& reader) {
  return std::make_unique<MaxPoolLayer>(std::move(context), read_pool_options(reader));
}

// Caffe's Pooling: MAX -> max_pool, AVE -> avg_pool (Caffe's divisor counts
// the padding and clips at the padded edge: count_include_pad). Both round
// up by default (round_mode CEIL), as fcn's ceil_mode.
CaffeMapped pooling_from_caffe(CaffeLayer& layer) {
  layer.expect_bottoms(1);
  SpecReader q = layer.param("pooling_param");
  const std::string method = q.get_choice("pool", {"MAX", "AVE", "STOCHASTIC"}, "MAX");
  if (method == "STOCHASTIC")
    q.fail("pool", "is STOCHASTIC (random in training, activation-weighted at test); fcn has MAX and AVE pooling");
  const bool global = q.get_bool("global_pooling", false);
  const bool ceil_mode = q.get_choice("round_mode", {"CEIL", "FLOOR"}, "CEIL") == "CEIL";
  q.accept("engine");  // Caffe's or cuDNN's implementation of the same pooling
  const auto kernel = caffe_hw(q, "kernel_size", "kernel", 0);
  const auto stride = caffe_hw(q, "stride", "stride", 1);
  const auto pad = caffe_hw(q, "pad", "pad", 0);
  layer.finish(q);
  CaffeMapped mapped{caffe_layer_spec(layer, method == "MAX" ? "max_pool" : "avg_pool"), {}};
  if (global) {
    if (method == "MAX") q.fail("global_pooling", "with MAX: fcn's max_pool has no global mode (avg_pool has)");
    mapped.spec["global"] = true;
    return mapped;
  }
  if (kernel[0] < 1 || kernel[1] < 1) q.fail("kernel_size", "must be set (at least 1)");
  mapped.spec.update({{"kernel", hw_json(kernel)}, {"stride", hw_json(stride)}, {"pad", hw_json(pad)}, {"ceil_mode", ceil_mode}});
  if (method == "AVE") mapped.spec["count_include_pad"] = true;
  return mapped;
}

}  // namespace fcn
