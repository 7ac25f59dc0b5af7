#pragma once
// batch_norm: PyTorch BatchNorm2d on NCHW,
//   y = (x - mean[c]) / sqrt(var[c] + eps) * gamma[c] + beta[c].
//
// * mode "train", Mode::train: mean and var are the batch's statistics over
//   N, H, W (biased variance), and the running statistics move towards them:
//   running = (1 - momentum) * running + momentum * batch, with the UNBIASED
//   variance (var * M/(M-1), M = N*H*W), as PyTorch. M = 1 is an error.
// * Mode::test, or mode "frozen" (detection/segmentation fine-tuning) in
//   either mode: mean and var are the running statistics, which stay as they
//   are; "frozen" also fixes gamma and beta (lr_mult 0).
//
// Params: "<layer>.weight" (gamma, init 1) and "<layer>.bias" (beta, init 0)
// when affine, and the running statistics "<layer>.running_mean" (init 0)
// and "<layer>.running_var" (init 1): params with lr_mult 0 and decay 0, so
// that the solver leaves them alone while weights and checkpoints save them
// by name (torchvision's state-dict names). All are [C], and C is only known
// at reshape: they are [0] before it and (re)allocated with their
// deterministic initial values when the input channels change.
#include <memory>
#include <vector>

#include "fcn/core/layer.hpp"
#include "fcn/cpu/batch_norm.hpp"

namespace fcn {

struct BatchNormOptions {
  double eps = 1e-5;
  double momentum = 0.1;
  bool frozen = false;  // mode "frozen" (else "train")
  bool affine = true;
};

class BatchNormLayer : public Layer {
 public:
  // `weight` and `bias` are null when !options.affine.
  BatchNormLayer(LayerContext context, const BatchNormOptions& options, std::unique_ptr<Param> weight,
                 std::unique_ptr<Param> bias);

  std::string type() const override { return "batch_norm"; }
  Shape reshape(const std::vector<Shape>& input_shapes) override;
  void forward(const std::vector<const Tensor*>& inputs, Tensor& output, Mode mode) override;
  void backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& output_grad,
                const std::vector<Tensor*>& input_grads) override;
  std::vector<Param*> params() override;
  // Batch statistics make every dx depend on all of x; so does a trainable
  // gamma's gradient. A frozen layer is a fixed per-channel affine map:
  // backward reads neither x nor y, and y may overwrite x.
  int in_place_input() const override { return options_.frozen ? 0 : -1; }
  bool backward_needs_inputs() const override { return !options_.frozen; }
  std::array<double, 2> input_extent() const override { return {1, 1}; }  // per pixel
  // One multiply-add per element (the inference form; a training forward's
  // statistics are not counted).
  double forward_flops() const override { return flops_; }
  void emit_onnx(OnnxEmitter& onnx, const std::vector<std::string>& inputs, const std::string& output) const override;
  const BatchNormOptions& options() const { return options_; }
  // A ReLU in place over the output (Graph::fuse_relus): forward writes
  // max(y, 0). Backward reads x and dy only, so nothing else changes.
  bool rectify_output(bool on) override {
    rectify_ = on;
    return true;
  }
  bool rectifies_output() const { return rectify_; }

  // Inference folding: rewrites the weight [C, ...] and bias [C] of the
  // convolution that feeds this layer so that it alone computes conv then
  // this layer in Mode::test (the layer must have been reshaped).
  void fold_into_conv(Tensor& conv_weight, Tensor& conv_bias) const;
  bool can_fold_into() const override { return true; }
  bool fold_into(Tensor& weight, Tensor& bias) const override {
    fold_into_conv(weight, bias);
    return true;
  }

 private:
  void ensure_params(int64_t channels);
  // The statistics a forward in `mode` normalises with, into mean_/invstd_;
  // a training forward also updates the running statistics.
  void select_statistics(const Tensor& x, Mode mode);
  std::vector<float> gamma() const;  // ones when !affine
  std::vector<float> beta() const;   // zeros when !affine

  BatchNormOptions options_;
  std::unique_ptr<Param> weight_, bias_;
  Param running_mean_, running_var_;
  cpu::BatchNormGeometry geometry_;
  double flops_ = 0.0;
  // of the last forward, per channel: what backward differentiates
  std::vector<float> mean_, invstd_, scale_;  // scale = gamma * invstd
  bool batch_statistics_ = false;
  bool rectify_ = false;
};

}  // namespace fcn
