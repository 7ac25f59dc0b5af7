#include "fcn/core/tensor.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

#include "fcn/core/aligned_memory.hpp"
#include "fcn/core/error.hpp"

namespace fcn {

int64_t shape_numel(const Shape& shape) {
  bool has_zero = false;
  for (int64_t d : shape) {
    if (d < 0) throw Error("negative dimension in shape " + shape_str(shape));
    has_zero = has_zero || d == 0;
  }
  if (has_zero) return 0;
  // the byte size (4 * n) must fit in int64: larger products would overflow
  int64_t n = 1;
  for (int64_t d : shape) {
    if (n > std::numeric_limits<int64_t>::max() / 4 / d) throw Error("shape " + shape_str(shape) + " is impossibly large");
    n *= d;
  }
  return n;
}

std::string shape_str(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

void Tensor::Free::operator()(float* p) const { free_aligned(p); }

Tensor::Tensor(const Shape& shape) {
  reshape(shape);
  zero();
}

Tensor::Tensor(const Tensor& other) { *this = other; }

Tensor& Tensor::operator=(const Tensor& other) {
  if (this == &other) return *this;
  reshape(other.shape_);
  if (numel_) std::memcpy(data_, other.data_, sizeof(float) * numel_);
  return *this;
}

void Tensor::reshape(const Shape& shape) {
  const int64_t numel = shape_numel(shape);
  if (numel > capacity_ || (data_ != storage_.get() && numel > 0)) {
    // the old contents are not kept, so the old buffer goes first: growing
    // never holds both (a graph arena growing from one tile size to the next
    // would otherwise need the two at once)
    storage_.reset();
    capacity_ = 0;
    data_ = nullptr;
    shape_ = {0};
    numel_ = 0;
    float* p = static_cast<float*>(allocate_aligned(sizeof(float) * numel));
    if (!p) throw Error("out of memory allocating a tensor of shape " + shape_str(shape));
    storage_.reset(p);
    capacity_ = numel;
    data_ = p;
  }
  shape_ = shape;
  numel_ = numel;
}

void Tensor::release() {
  storage_.reset();
  capacity_ = 0;
  data_ = nullptr;
}

void Tensor::share_storage(Tensor& owner, const Shape& shape) {
  const int64_t numel = shape_numel(shape);
  if (numel > owner.numel_) throw Error("internal: shared tensor larger than its owner");
  storage_.reset();
  capacity_ = 0;
  data_ = owner.data_;
  shape_ = shape;
  numel_ = numel;
}

void Tensor::share_storage(float* data, const Shape& shape) {
  const int64_t numel = shape_numel(shape);
  storage_.reset();
  capacity_ = 0;
  data_ = data;
  shape_ = shape;
  numel_ = numel;
}

int64_t Tensor::dim(int axis) const {
  const int nd = ndim();
  const int a = axis < 0 ? axis + nd : axis;
  if (a < 0 || a >= nd)
    throw Error("axis " + std::to_string(axis) + " out of range for shape " + shape_str(shape_));
  return shape_[a];
}

void Tensor::zero() {
  if (numel_) std::memset(data_, 0, sizeof(float) * numel_);
}

void Tensor::fill(float value) { std::fill(data_, data_ + numel_, value); }

}  // namespace fcn
