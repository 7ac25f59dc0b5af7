#pragma once
// Pixel-wise softmax cross-entropy over NCHW scores (softmax across C).
#include <cstdint>

namespace fcn::cpu {

struct SoftmaxLossGeometry {
  int64_t n = 0, classes = 0, pixels = 0;  // score [n, classes, pixels], label [n, pixels]
  int64_t ignore_label = 255;
  // Per-class loss weights [classes]; null: every class weighs 1.
  const float* class_weights = nullptr;
};

struct SoftmaxLossSum {
  double loss = 0;    // sum over non-ignored pixels of w[label] * -log softmax(score)[label]
  int64_t valid = 0;  // number of non-ignored pixels
  double weight = 0;  // sum over non-ignored pixels of w[label] (== valid without weights)
};

// prob = softmax(score) over the class axis (max-subtracted, stable). The
// labels must already be checked: each is the ignore label or in [0, classes).
// The loss is summed over fixed pixel chunks in a fixed order, so it does not
// depend on the thread count.
SoftmaxLossSum softmax_loss_forward(const SoftmaxLossGeometry& g, const float* score, const float* label, float* prob);

// dscore += scale * w[label] * (prob - onehot(label)); ignored pixels get nothing.
void softmax_loss_backward_accumulate(const SoftmaxLossGeometry& g, const float* prob, const float* label, float scale,
                                      float* dscore);

}  // namespace fcn::cpu
