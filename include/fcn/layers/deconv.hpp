#pragma once
// `deconv`: PyTorch ConvTranspose2d, computed as the transpose (adjoint) of
// conv with the same weight: forward = conv's backward-data GEMM (W^T·x then
// col2im), backward-data = conv's forward (im2col then GEMM), weight grad =
// conv's weight-grad GEMM with input and output swapped.
// Weight [in, out/groups, kh, kw], bias [out]; weight_init also accepts
// "bilinear" (FCN's upsampling filter). Parameter allocation and
// initialisation as conv (see conv.hpp).
//
// A frozen deconv whose weight [C, C, kh, kw] is zero off the channel
// diagonal (FCN's bilinear upsamplers) upsamples each channel by itself:
// the full transposed convolution's results (the skipped terms are exact
// zeros; the backward GEMMs sum the rest in another order, so the input
// gradient can differ in the last bit), C times fewer FLOPs and a column
// buffer of one channel.
// forward_flops() still counts the full convolution, as PyTorch's counters do.
#include <array>

#include "fcn/layers/conv.hpp"

namespace fcn {

// out = (in-1)*s - 2p + d(k-1) + output_padding + 1
int64_t deconv_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation,
                           int64_t output_padding);

class DeconvLayer : public ConvolutionBase {
 public:
  DeconvLayer(LayerContext context, SpecReader& reader);
  std::string type() const override { return "deconv"; }
  Shape reshape(const std::vector<Shape>& input_shapes) override;
  void forward(const std::vector<const Tensor*>& inputs, Tensor& output, Mode mode) override;
  void backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& output_grad,
                const std::vector<Tensor*>& input_grads) override;
  // x_out = s * x_in + d(k-1)/2 - pad
  CoordMap coord_map() const override;
  // an output pixel gathers from ceil((d(k-1) + 1) / s) input pixels per axis
  std::array<double, 2> input_extent() const override;
  void emit_onnx(OnnxEmitter& onnx, const std::vector<std::string>& inputs, const std::string& output) const override;
  const std::array<int64_t, 2>& output_padding() const { return output_padding_; }

 private:
  std::array<int64_t, 2> output_padding_{0, 0};
  // Whether the weight is frozen and channel-diagonal; then copies the
  // diagonal kernels into channelwise_kernels_ [C, 1, kh, kw].
  bool gather_channelwise_kernels();
  cpu::ConvGeometry channelwise_geometry() const;  // groups = channels
  bool channelwise_ = false;  // of the last forward
  Tensor channelwise_kernels_;
};

}  // namespace fcn
