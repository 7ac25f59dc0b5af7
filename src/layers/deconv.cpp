#include "fcn/layers/deconv.hpp"

#include "cpu/im2col.hpp"
#include "fcn/error.hpp"
#include "fcn/layers/factories.hpp"

namespace fcn {

int64_t deconv_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation,
                           int64_t output_padding) {
  return (in - 1) * stride - 2 * pad + dilation * (kernel - 1) + output_padding + 1;
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

void DeconvLayer::forward(const std::vector<const Tensor*>& inputs, Tensor& output, Mode) {
  const cpu::ConvGeometry& g = *geometry_;
  const Tensor& x = *inputs[0];
  output.zero();  // col2im accumulates
  for (int64_t n = 0; n < x.n(); ++n) {
    float* y = output.data() + n * g.image_numel();
    cpu::conv_backward_data(g, weight_.data.data(), x.data() + n * g.output_numel(), y);
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
    if (x_grad) cpu::conv_forward(g, weight_.data.data(), dy, 1.f, x_grad->data() + n * g.output_numel());
  }
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

}  // namespace fcn
