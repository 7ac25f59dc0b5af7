#pragma once
// The weight and bias of a layer with the next layer folded in (Layer::
// forward_folded), kept between test-mode forwards and refolded when any
// param they come from changes: the layer's own weight and bias or the next
// layer's params (a batch norm's gamma, beta and running statistics). The
// check compares the params with copies taken at the fold, so that any
// writer (the solver, a weights file, a test) invalidates the fold.
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

 private:
  // The params as they were at the last fold: own weight, own bias, next's
  std::vector<Tensor> sources_;
  Tensor weight_, bias_;
};

}  // namespace fcn
