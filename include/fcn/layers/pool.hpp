#pragma once
// max_pool: PyTorch max_pool2d (kernel, stride, pad, ceil_mode; default
// ceil_mode true as Caffe/FCN). The argmax of every window is kept for
// backward, which scatters the output gradient to it.
#include <array>
#include <cstdint>
#include <vector>

#include "fcn/core/layer.hpp"

namespace fcn {

// PyTorch's pooling output size along one axis:
// out = floor_or_ceil((in + 2*pad - kernel) / stride) + 1, and in ceil mode a
// last window that would start in the right/bottom padding or beyond
// ((out-1)*stride >= in + pad) is dropped. Can be <= 0 (input too small).
int64_t pool_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, bool ceil_mode);

class MaxPoolLayer : public Layer {
 public:
  MaxPoolLayer(LayerContext context, std::array<int64_t, 2> kernel, std::array<int64_t, 2> stride,
               std::array<int64_t, 2> pad, bool ceil_mode);

  std::string type() const override { return "max_pool"; }
  Shape reshape(const std::vector<Shape>& input_shapes) override;
  void forward(const std::vector<const Tensor*>& inputs, Tensor& output, Mode mode) override;
  void backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& output_grad,
                const std::vector<Tensor*>& input_grads) override;
  // Backward reads only the kept argmax.
  bool backward_needs_inputs() const override { return false; }
  // a = 1/stride, b = (pad - (kernel-1)/2) / stride, as Caffe's coord_map
  CoordMap coord_map() const override;
  std::array<double, 2> input_extent() const override {
    return {static_cast<double>(kernel_[0]), static_cast<double>(kernel_[1])};
  }
  double forward_flops() const override { return 0.0; }  // comparisons only
  void emit_onnx(OnnxEmitter& onnx, const std::vector<std::string>& inputs, const std::string& output) const override;

 private:
  std::array<int64_t, 2> kernel_, stride_, pad_;
  bool ceil_mode_;
  std::vector<int32_t> argmax_;  // [N, C, OH, OW]: winner index within its input plane
};

}  // namespace fcn
