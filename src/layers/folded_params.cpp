#include "fcn/layers/folded_params.hpp"

#include <cstring>

namespace fcn {

namespace {

bool same(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), sizeof(float) * a.numel()) == 0;
}

}  // namespace

bool FoldedParams::update(const Param& weight, const Param* bias, Layer& next) {
  std::vector<const Tensor*> current{&weight.data};
  if (bias) current.push_back(&bias->data);
  for (Param* p : next.params()) current.push_back(&p->data);
  bool fresh = sources_.size() == current.size();
  for (size_t i = 0; fresh && i < current.size(); ++i) fresh = same(sources_[i], *current[i]);
  if (fresh) return true;
  sources_.clear();
  weight_ = weight.data;
  if (bias) {
    bias_ = bias->data;
  } else {
    bias_ = Tensor({weight.data.dim(0)});
    bias_.zero();
  }
  if (!next.fold_into(weight_, bias_)) return false;
  for (const Tensor* t : current) sources_.push_back(*t);
  return true;
}

}  // namespace fcn
