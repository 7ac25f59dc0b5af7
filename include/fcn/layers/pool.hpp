#pragma once
// max_pool: PyTorch max_pool2d (kernel, stride, pad, ceil_mode; default
// ceil_mode true as Caffe/FCN). The argmax of every window is kept for
// backward, which scatters the output gradient to it.
#include <array>
#include <cstdint>
#include <vector>

#include "fcn/core/layer.hpp"
#include "fcn/cpu/pooling.hpp"

namespace fcn {

// PyTorch's pooling output size along one axis:
// out = floor_or_ceil((in + 2*pad - kernel) / stride) + 1, and in ceil mode a
// last window that would start in the right/bottom padding or beyond
// ((out-1)*stride >= in + pad) is dropped. Can be <= 0 (input too small).
int64_t pool_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, bool ceil_mode);
// Whether that ceil-mode rule drops a last window at input size `in`
// (ONNX's opset-13 pooling keeps it), and whether it does at some input
// size, which is when stride > kernel - pad.
bool ceil_mode_drops_window(int64_t in, int64_t kernel, int64_t stride, int64_t pad);
bool ceil_mode_may_drop_window(int64_t kernel, int64_t stride, int64_t pad);

// The window options max_pool and avg_pool share; arrays are {h, w}.
struct PoolOptions {
  std::array<int64_t, 2> kernel{1, 1}, stride{1, 1}, pad{0, 0};
  bool ceil_mode = true;
};

// Reads `kernel` (required), `stride` (default: the kernel), `pad` (at most
// kernel/2, as PyTorch) and `ceil_mode` (default true).
PoolOptions read_pool_options(SpecReader& reader);
// {out_h, out_w} of pooling an NCHW `input`; a size < 1: the window does not fit.
std::array<int64_t, 2> pool_output_hw(const Shape& input, const PoolOptions& options);
cpu::PoolGeometry pool_geometry(const Shape& input, const Shape& output, const PoolOptions& options);
// a = 1/stride, b = (pad - (kernel-1)/2) / stride, as Caffe's coord_map
CoordMap pool_coord_map(const PoolOptions& options);

class MaxPoolLayer : public Layer {
 public:
  MaxPoolLayer(LayerContext context, const PoolOptions& options);

  std::string type() const override { return "max_pool"; }
  Shape reshape(const std::vector<Shape>& input_shapes) override;
  void forward(const std::vector<const Tensor*>& inputs, Tensor& output, Mode mode) override;
  void backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& output_grad,
                const std::vector<Tensor*>& input_grads) override;
  // Backward reads only the kept argmax.
  bool backward_needs_inputs() const override { return false; }
  bool writes_fresh_input_grad(size_t) const override { return true; }
  bool masks_input_grad() const override { return true; }
  CoordMap coord_map() const override { return pool_coord_map(options_); }
  std::array<double, 2> input_extent() const override {
    return {static_cast<double>(options_.kernel[0]), static_cast<double>(options_.kernel[1])};
  }
  double forward_flops() const override { return 0.0; }  // comparisons only
  void emit_onnx(OnnxEmitter& onnx, const std::vector<std::string>& inputs, const std::string& output) const override;
  const PoolOptions& options() const { return options_; }
  // A window wholly in the input's constant frame has one maximum: the frame's value.
  ConstantFrame output_frame(const std::vector<ConstantFrame>& input_frames, const Shape& output_shape) override {
    const auto& k = options_.kernel;
    const auto& s = options_.stride;
    const auto& p = options_.pad;
    return windows_inside(input_frames[0], {k[0], s[0], p[0], output_shape[2]}, {k[1], s[1], p[1], output_shape[3]});
  }

 private:
  PoolOptions options_;
  std::vector<int32_t> argmax_;  // [N, C, OH, OW]: winner index within its input plane
};

}  // namespace fcn
