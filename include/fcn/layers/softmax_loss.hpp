#pragma once
// softmax_loss: inputs [score (N,C,H,W), label (N,1,H,W) of class ids as
// floats]; output a 0-d tensor holding
//   loss = sum over non-ignored pixels p of w[label_p] * -log softmax(score_p)[label_p] / norm
// with w = "class_weights" (C non-negative numbers; default all 1) and norm =
// the sum of w[label_p] over the non-ignored pixels ("valid": without weights
// their count over the whole batch; PyTorch's cross_entropy(weight=w,
// reduction="mean") divides by the same sum; a sum of 0 gives loss 0 and
// zero gradients), or N, the batch size ("none" and "batch": the sum over
// each image's pixels, averaged over the images, Caffe's BATCH_SIZE; at
// N = 1 this is Caffe's NONE, the reference's plain sum, and a batch of N
// gives the update of N images one at a time with iter_size N). Caffe's
// NONE sums over the batch too; fcn imports Caffe nets at batch 1, where the
// two agree. Backward: dscore += dloss * w[label] * (softmax - onehot(label))
// / norm; no gradient to label. "loss_weight" (default 1, >= 0) multiplies
// the loss and so its gradient (Caffe's loss_weight; an auxiliary loss).
#include <string>
#include <vector>

#include "fcn/core/layer.hpp"

namespace fcn {

enum class LossNormalization { valid, batch, none };

class SoftmaxLossLayer : public Layer {
 public:
  SoftmaxLossLayer(LayerContext context, int64_t ignore_label, LossNormalization normalize,
                   std::vector<float> class_weights = {}, double loss_weight = 1.0);

  std::string type() const override { return "softmax_loss"; }
  Shape reshape(const std::vector<Shape>& input_shapes) override;
  void forward(const std::vector<const Tensor*>& inputs, Tensor& output, Mode mode) override;
  void backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& output_grad,
                const std::vector<Tensor*>& input_grads) override;
  bool is_loss() const override { return true; }
  double loss_weight() const { return loss_weight_; }
  std::array<double, 2> input_extent() const override { return {1, 1}; }
  double forward_flops() const override { return 0.0; }
  // export-onnx ends a model at the loss's score input
  void emit_onnx(OnnxEmitter&, const std::vector<std::string>&, const std::string&) const override {
    throw OnnxUnsupported(name(), "a loss is training-only; the exported model outputs its score input");
  }

 private:
  // Throws naming the first label that is neither a class nor the ignore label.
  void check_labels(const Tensor& label, int64_t classes) const;
  // The divisor of the summed loss, 0 when nothing counts.
  double normalizer(double valid_weight, int64_t batch) const;

  int64_t ignore_label_;
  LossNormalization normalize_;
  std::vector<float> class_weights_;  // empty: all 1
  double loss_weight_ = 1.0;
  Tensor prob_;  // softmax of the last forward's scores, [N, C, H, W]
  double norm_ = 0;
};

}  // namespace fcn
