#pragma once
// avg_pool: PyTorch F.avg_pool2d(x, kernel, stride, pad, ceil_mode,
// count_include_pad) exactly: the output size of pool_output_size (ceil
// mode drops a last window that would start in the padding), and the
// divisor of fcn/cpu/pooling.hpp (with count_include_pad, the window clipped
// to the padded input). The defaults, ceil_mode and count_include_pad true,
// are Caffe's AVE pooling. `global`: the window is the whole input plane
// (kernel = H x W, stride 1, no padding; Caffe's global_pooling).
#include <array>

#include "fcn/layers/pool.hpp"

namespace fcn {

struct AvgPoolOptions {
  PoolOptions window;  // unused when global
  bool count_include_pad = true;
  bool global = false;
};

class AvgPoolLayer : public Layer {
 public:
  AvgPoolLayer(LayerContext context, const AvgPoolOptions& options);

  std::string type() const override { return "avg_pool"; }
  Shape reshape(const std::vector<Shape>& input_shapes) override;
  void forward(const std::vector<const Tensor*>& inputs, Tensor& output, Mode mode) override;
  void backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& output_grad,
                const std::vector<Tensor*>& input_grads) override;
  // dx spreads dy over each window: neither x nor y is read.
  bool backward_needs_inputs() const override { return false; }
  CoordMap coord_map() const override { return pool_coord_map(window_); }
  std::array<double, 2> input_extent() const override {
    return {static_cast<double>(window_.kernel[0]), static_cast<double>(window_.kernel[1])};
  }
  // one add per window element and one multiply (by 1/divisor) per output
  double forward_flops() const override { return flops_; }
  // AveragePool (GlobalAveragePool when global) where ONNX opset 13 computes
  // exactly PyTorch's windows and divisors; see avg_pool.cpp.
  void emit_onnx(OnnxEmitter& onnx, const std::vector<std::string>& inputs, const std::string& output) const override;
  const AvgPoolOptions& options() const { return options_; }

 private:
  AvgPoolOptions options_;
  PoolOptions window_;  // of the last reshape: options_.window, or the input plane when global
  double flops_ = 0.0;
};

}  // namespace fcn
