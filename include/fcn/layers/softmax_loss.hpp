#pragma once
// softmax_loss: inputs [score (N,C,H,W), label (N,1,H,W) of class ids as
// floats]; output a 0-d tensor holding
//   loss = sum over non-ignored pixels of -log softmax(score)[label] / norm
// with norm = the number of non-ignored pixels ("valid"; 0 of them gives loss
// 0 and zero gradients), N ("batch") or 1 ("none"). Backward:
// dscore += dloss * (softmax - onehot(label)) / norm; no gradient to label.
#include <string>

#include "fcn/core/layer.hpp"

namespace fcn {

enum class LossNormalization { valid, batch, none };

class SoftmaxLossLayer : public Layer {
 public:
  SoftmaxLossLayer(LayerContext context, int64_t ignore_label, LossNormalization normalize);

  std::string type() const override { return "softmax_loss"; }
  Shape reshape(const std::vector<Shape>& input_shapes) override;
  void forward(const std::vector<const Tensor*>& inputs, Tensor& output, Mode mode) override;
  void backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& output_grad,
                const std::vector<Tensor*>& input_grads) override;
  bool is_loss() const override { return true; }

 private:
  // Throws naming the first label that is neither a class nor the ignore label.
  void check_labels(const Tensor& label, int64_t classes) const;
  // The divisor of the summed loss, 0 when nothing counts.
  double normalizer(int64_t valid, int64_t batch) const;

  int64_t ignore_label_;
  LossNormalization normalize_;
  Tensor prob_;  // softmax of the last forward's scores, [N, C, H, W]
  double norm_ = 0;
};

}  // namespace fcn
