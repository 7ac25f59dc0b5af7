#pragma once
// The weight and bias of a layer with the next layer folded in (Layer::
// forward_folded), kept between test-mode forwards and refolded when any
// param they come from changes: the layer's own weight and bias or the next
// layer's params (a batch norm's gamma, beta and running statistics). The
// check runs at every update, so that any writer (the solver, a weights
// file, a test) invalidates the fold: the small params (bias, next's) against
// copies taken at the fold, the weight against a fingerprint (a copy of every
// conv weight would cost as much memory as the folded weights themselves).
#include <cstdint>
#include <vector>

#include "fcn/core/layer.hpp"

namespace fcn {

class FoldedParams {
 public:
  // Brings weight() and bias() up to date for `weight` and `bias` (null:
  // none, a zero bias) with `next` folded in; false when next cannot fold.
  bool update(const Param& weight, const Param* bias, Layer& next);
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }
  // 64 bits of the tensor's values and size; any one value changed changes it.
  static uint64_t fingerprint(const Tensor& t);

 private:
  // The small params as they were at the last fold: own bias, next's
  std::vector<Tensor> sources_;
  uint64_t weight_print_ = 0;  // fingerprint of the weight at the last fold
  bool folded_ = false;
  Tensor weight_, bias_;
};

}  // namespace fcn
