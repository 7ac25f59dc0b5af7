#pragma once
// Tensor: contiguous float32, NCHW (fewer dims allowed), 64-byte aligned
// (large ones on transparent huge pages: fcn/core/aligned_memory.hpp).
// A reshape that fits in the current capacity keeps the allocation.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace fcn {

using Shape = std::vector<int64_t>;

int64_t shape_numel(const Shape& shape);
std::string shape_str(const Shape& shape);  // "[1, 3, 5, 5]"

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(const Shape& shape);  // zero-filled
  Tensor(const Tensor& other);
  Tensor& operator=(const Tensor& other);
  Tensor(Tensor&&) noexcept = default;
  Tensor& operator=(Tensor&&) noexcept = default;

  // Contents are unspecified after a reshape that changes the element count.
  void reshape(const Shape& shape);
  // Drops the storage (for memory planning); the shape is kept.
  void release();
  // Borrows another tensor's storage (in-place layers, memory reuse); the
  // owner must outlive this view.
  void share_storage(Tensor& owner, const Shape& shape);
  // Views memory owned elsewhere (a region of a graph's memory arena), which
  // must outlive this view and hold at least the shape's element count.
  void share_storage(float* data, const Shape& shape);

  const Shape& shape() const { return shape_; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int axis) const;  // negative axes count from the end
  int64_t numel() const { return numel_; }
  bool empty() const { return numel_ == 0; }
  // NCHW accessors for 4-d tensors.
  int64_t n() const { return dim(0); }
  int64_t c() const { return dim(1); }
  int64_t h() const { return dim(2); }
  int64_t w() const { return dim(3); }

  float* data() { return data_; }
  const float* data() const { return data_; }
  float& operator[](int64_t i) { return data_[i]; }
  float operator[](int64_t i) const { return data_[i]; }

  void zero();
  void fill(float value);
  int64_t capacity() const { return capacity_; }

 private:
  struct Free {
    void operator()(float* p) const;
  };
  Shape shape_;
  int64_t numel_ = 0;
  int64_t capacity_ = 0;
  std::unique_ptr<float[], Free> storage_;
  float* data_ = nullptr;  // storage_.get() or a borrowed buffer
};

}  // namespace fcn
