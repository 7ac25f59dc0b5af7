#include "fcn/layers/deconv.hpp"

#include <algorithm>
#include <cmath>

#include "fcn/cpu/convolution.hpp"
#include "fcn/core/error.hpp"
#include "fcn/layers/registry.hpp"

namespace fcn {

int64_t deconv_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation,
                           int64_t output_padding) {
  // in 128 bits: a huge stride, pad or kernel from a bad spec must not overflow (too large
  // results saturate, and the blob's shape check rejects them)
  const __int128 out = static_cast<__int128>(in - 1) * stride - 2 * static_cast<__int128>(pad) +
                       static_cast<__int128>(dilation) * (kernel - 1) + output_padding + 1;
  return out > INT64_MAX ? INT64_MAX : out < INT64_MIN ? INT64_MIN : static_cast<int64_t>(out);
}

DeconvLayer::DeconvLayer(LayerContext context, SpecReader& reader)
    : ConvolutionBase(std::move(context), reader, {"gaussian", "xavier", "msra", "zero", "constant", "bilinear"}) {
  output_padding_ = reader.get_hw("output_padding", {0, 0}, 0);
  for (int axis = 0; axis < 2; ++axis) {
    // as PyTorch: the extra rows must not reach the next stride or dilation step
    const int64_t op = output_padding_[axis];
    if (op >= options_.stride[axis] && op >= options_.dilation[axis])
      reader.fail("output_padding", "must be smaller than the stride or the dilation (" + options_str() +
                                        "), got " + std::to_string(op));
  }
}

Shape DeconvLayer::reshape(const std::vector<Shape>& input_shapes) {
  expect_inputs(input_shapes, 1);
  const Shape& x = input_shapes[0];  // [N, C, H, W]
  const ConvOptions& o = options_;
  check_groups(x[1], input_shapes);
  const int64_t out_h =
      deconv_output_size(x[2], o.kernel[0], o.stride[0], o.pad[0], o.dilation[0], output_padding_[0]);
  const int64_t out_w =
      deconv_output_size(x[3], o.kernel[1], o.stride[1], o.pad[1], o.dilation[1], output_padding_[1]);
  if (out_h < 1 || out_w < 1)
    fail_shape("the padding removes the whole output (" + options_str() + ")", input_shapes);
  // the transposed conv maps our output (its image side) to our input
  set_geometry({o.num_output, out_h, out_w}, {x[1], x[2], x[3]});
  ensure_weight({x[1], o.num_output / o.groups, o.kernel[0], o.kernel[1]});
  // multiply-adds: every input element spreads over (O/g)*kh*kw outputs
  flops_ = 2.0 * x[0] * x[1] * x[2] * x[3] * (o.num_output / o.groups) * o.kernel[0] * o.kernel[1];
  return {x[0], o.num_output, out_h, out_w};
}

bool DeconvLayer::gather_channelwise_kernels() {
  const Shape& s = weight_.data.shape();  // [in, out/groups, kh, kw]
  if (!weight_.frozen() || options_.groups != 1 || s[0] != s[1] || s[0] < 2) return false;
  const int64_t channels = s[0], kernel = s[2] * s[3];
  const float* w = weight_.data.data();
  for (int64_t i = 0; i < channels; ++i)
    for (int64_t o = 0; o < channels; ++o)
      if (i != o)
        for (int64_t t = 0; t < kernel; ++t)
          if (w[(i * channels + o) * kernel + t] != 0.f) return false;
  channelwise_kernels_.reshape({channels, 1, s[2], s[3]});
  for (int64_t c = 0; c < channels; ++c)
    std::copy(w + (c * channels + c) * kernel, w + (c * channels + c + 1) * kernel,
              channelwise_kernels_.data() + c * kernel);
  return true;
}

cpu::ConvGeometry DeconvLayer::channelwise_geometry() const {
  cpu::ConvGeometry g = *geometry_;
  g.groups = g.channels;
  return g;
}

void DeconvLayer::forward(const std::vector<const Tensor*>& inputs, Tensor& output, Mode) {
  const cpu::ConvGeometry& g = *geometry_;
  const Tensor& x = *inputs[0];
  output.zero();  // col2im accumulates
  // checked at every pass: the weights may have been loaded since reshape
  channelwise_ = gather_channelwise_kernels();
  for (int64_t n = 0; n < x.n(); ++n) {
    float* y = output.data() + n * g.image_numel();
    const float* xn = x.data() + n * g.output_numel();
    if (channelwise_)
      cpu::depthwise_backward_data(channelwise_geometry(), channelwise_kernels_.data(), xn, y);
    else
      cpu::conv_backward_data(g, weight_.data.data(), xn, y);
    if (options_.bias) cpu::add_channel_bias(g.channels, g.height * g.width, bias_.data.data(), y);
  }
}

void DeconvLayer::backward(const std::vector<const Tensor*>& inputs, const Tensor&, const Tensor& output_grad,
                           const std::vector<Tensor*>& input_grads) {
  const cpu::ConvGeometry& g = *geometry_;
  const Tensor& x = *inputs[0];
  Tensor* x_grad = input_grads[0];
  for (int64_t n = 0; n < x.n(); ++n) {
    const float* dy = output_grad.data() + n * g.image_numel();
    if (trains_bias()) cpu::add_channel_sums(g.channels, g.height * g.width, dy, bias_.grad.data());
    if (trains_weight()) cpu::conv_backward_weight(g, dy, x.data() + n * g.output_numel(), weight_.grad.data());
    if (!x_grad) continue;
    float* dx = x_grad->data() + n * g.output_numel();
    if (channelwise_)  // frozen: the weight forward checked
      cpu::depthwise_forward(channelwise_geometry(), channelwise_kernels_.data(), dy, 1.f, dx);
    else
      cpu::conv_forward(g, weight_.data.data(), dy, 1.f, dx);
  }
}

std::array<double, 2> DeconvLayer::input_extent() const {
  std::array<double, 2> extent{};
  for (int axis = 0; axis < 2; ++axis) {
    const double dilated = static_cast<double>(options_.dilation[axis] * (options_.kernel[axis] - 1) + 1);
    extent[axis] = std::ceil(dilated / static_cast<double>(options_.stride[axis]));
  }
  return extent;
}

void DeconvLayer::emit_onnx(OnnxEmitter& onnx, const std::vector<std::string>& inputs,
                            const std::string& output) const {
  std::vector<OnnxAttribute> extra;
  // explicit pads and output_padding, no output_shape: the size is fcn's formula
  if (output_padding_[0] || output_padding_[1])
    extra.push_back({"output_padding", std::vector<int64_t>{output_padding_[0], output_padding_[1]}});
  emit_convolution(onnx, "ConvTranspose", inputs[0], output, extra);
}

CoordMap DeconvLayer::coord_map() const {
  CoordMap map;
  for (int axis = 0; axis < 2; ++axis) {
    // input i spreads around output i*s - pad + d(k-1)/2
    map.scale[axis] = static_cast<double>(options_.stride[axis]);
    map.shift[axis] = options_.dilation[axis] * (options_.kernel[axis] - 1) / 2.0 - options_.pad[axis];
  }
  return map;
}

std::unique_ptr<Layer> make_deconv_layer(LayerContext context, SpecReader& reader) {
  return std::make_unique<DeconvLayer>(std::move(context), reader);
}

CaffeMapped deconv_from_caffe(CaffeLayer& layer) { return convolution_from_caffe(layer, true); }

}  // namespace fcn
