#pragma once
// `conv`: PyTorch Conv2d, computed as im2col + one GEMM per group per image.
// Weight [out, in/groups, kh, kw], bias [out].
//
// Parameter allocation (shared with deconv): the input channel count, and so
// the weight shape, is only known at reshape. The weight is therefore
// allocated by reshape (first call, or when the input channels change) and
// is empty ([0]-sized) before that; the bias is allocated at construction.
// init_params() draws ONE seed from the caller's generator and initialises
// whatever is allocated; reshape initialises a weight it (re)allocates from
// that same seed. The values are thus the same whether init_params runs
// before or after the first reshape. Loading weights by name and shape
// (checkpoints, --init) must happen after the first reshape.
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>

#include "fcn/core/caffe_layer.hpp"
#include "fcn/core/layer.hpp"
#include "fcn/cpu/bf16_gemm.hpp"
#include "fcn/layers/folded_params.hpp"

namespace fcn {

namespace cpu {
struct ConvGeometry;  // fcn/cpu/convolution.hpp
}

// out = floor((in + 2p - d(k-1) - 1) / s) + 1; a result < 1 means the
// dilated kernel does not fit the padded input.
int64_t conv_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation);

// Caffe's Convolution (transposed: Deconvolution) as a conv / deconv spec
// and its blobs; conv_from_caffe and deconv_from_caffe (registry.hpp).
CaffeMapped convolution_from_caffe(CaffeLayer& layer, bool transposed);

// The options conv and deconv share; arrays are {h, w}.
struct ConvOptions {
  int64_t num_output = 0;
  std::array<int64_t, 2> kernel{1, 1}, stride{1, 1}, pad{0, 0}, dilation{1, 1};
  int64_t groups = 1;
  bool bias = true;
};

// Options, parameters, lazy weight allocation and initialisation of conv and
// deconv; the subclasses add the geometry and the direction of the GEMMs.
class ConvolutionBase : public Layer {
 public:
  ~ConvolutionBase() override;
  std::vector<Param*> params() override;
  void init_params(std::mt19937_64& rng) override;
  bool backward_needs_inputs() const override { return !weight_.frozen(); }
  double forward_flops() const override { return flops_; }
  int64_t scratch_bytes() const override;
  const ConvOptions& options() const { return options_; }

 protected:
  // Reads the shared keys; `inits` are the allowed weight initialisers.
  ConvolutionBase(LayerContext context, SpecReader& reader, const std::vector<std::string>& inits);
  // Rejects channel counts that groups do not divide (or that are zero).
  void check_groups(int64_t in_channels, const std::vector<Shape>& input_shapes) const;
  // (Re)allocates the weight when its shape changes, initialising it when
  // init_params has run.
  void ensure_weight(const Shape& shape);
  // Sets the im2col geometry: image = {C, H, W} of the conv input side,
  // output = {C, H, W} of the conv output side (see fcn/cpu/convolution.hpp).
  void set_geometry(const std::array<int64_t, 3>& image, const std::array<int64_t, 3>& output);
  std::string options_str() const;  // "kernel 3x3, stride 1x1, pad 0x0, dilation 1x1"
  int64_t batch_ = 1;  // images per pass (conv sets it at reshape: a batch may run as one grid)
  // An ONNX Conv or ConvTranspose with the shared attributes and the params;
  // `extra` adds the op's own (output_padding).
  void emit_convolution(OnnxEmitter& onnx, const std::string& op, const std::string& input, const std::string& output,
                        std::vector<OnnxAttribute> extra) const;
  bool trains_weight() const { return !weight_.frozen(); }
  bool trains_bias() const { return options_.bias && !bias_.frozen(); }

  ConvOptions options_;
  std::unique_ptr<cpu::ConvGeometry> geometry_;  // of the last reshape
  Param weight_;
  Param bias_;  // unused when !options_.bias
  double flops_ = 0.0;
  Precision precision_ = Precision::fp32;  // model.precision (only conv takes bf16)
  // The GEMMs' precision at the last reshape's geometry: precision_, but
  // fp32 for a depth (channels per group x kernel) too shallow to gain
  Precision gemm_precision() const;

 private:
  void initialise_allocated();
  std::optional<uint64_t> init_seed_;
};

class ConvLayer : public ConvolutionBase {
 public:
  ConvLayer(LayerContext context, SpecReader& reader);
  std::string type() const override { return "conv"; }
  Shape reshape(const std::vector<Shape>& input_shapes) override;
  void forward(const std::vector<const Tensor*>& inputs, Tensor& output, Mode mode) override;
  void backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& output_grad,
                const std::vector<Tensor*>& input_grads) override;
  // x_out = x_in / s + (pad - d(k-1)/2) / s
  CoordMap coord_map() const override;
  // the dilated kernel: d(k-1) + 1
  std::array<double, 2> input_extent() const override;
  void emit_onnx(OnnxEmitter& onnx, const std::vector<std::string>& inputs, const std::string& output) const override;
  void set_precision(Precision precision) override;
  void set_inference_only(bool on) override;
  bool writes_fresh_input_grad(size_t k) const override;
  bool masks_input_grad() const override { return true; }
  bool writes_param_grads() const override { return true; }
  bool rectify_output(bool on) override {
    rectify_ = on;
    return true;
  }
  bool forward_folded(const std::vector<const Tensor*>& inputs, Tensor& output, Layer& next, bool rectify) override;
  // cpu::conv_output_frame: the outputs whose window lies in the input's
  // frame or in the zero padding; forward computes them once per channel.
  ConstantFrame output_frame(const std::vector<ConstantFrame>& input_frames, const Shape& output_shape) override;

 private:
  // output[n] = conv(x[n]) with these weights and bias (+ max(y, 0) when rectify), image by image
  void convolve_images(const Tensor& x, const float* weight, const float* bias, bool rectify, Tensor& output) const;

  bool rectify_ = false;  // a ReLU runs in place over the output: write max(y, 0) (Graph::plan_memory)
  // The input's constant frame at the last reshape (none until the graph says, see output_frame).
  ConstantFrame input_frame_;
  FoldedParams folded_;  // with the next layer (a batch norm) folded in, for inference
  // bf16: the weight rounded once in forward, for its GEMMs and the backward's
  cpu::RoundedCopy rounded_weight_;
};

}  // namespace fcn
