#pragma once
// crop: inputs [x, ref]; crops x to ref's size on every axis >= `axis`,
// starting at `offset` (one per cropped axis). With offset "auto" the offset
// comes from the coordinate maps of x and ref (as Caffe's coord_map): both
// must have the same scale, and offset = shift_x - shift_ref must be a
// non-negative integer. Only x gets a gradient.
#include <array>
#include <vector>

#include "fcn/core/layer.hpp"

namespace fcn {

class CropLayer : public Layer {
 public:
  // `offsets`: one per axis from `axis` to 3; ignored when `auto_offset`.
  CropLayer(LayerContext context, int axis, std::vector<int64_t> offsets, bool auto_offset);

  std::string type() const override { return "crop"; }
  Shape reshape(const std::vector<Shape>& input_shapes) override;
  void forward(const std::vector<const Tensor*>& inputs, Tensor& output, Mode mode) override;
  void backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& output_grad,
                const std::vector<Tensor*>& input_grads) override;
  bool backward_needs_inputs() const override { return false; }
  // a = 1, b = -offset per spatial axis
  CoordMap coord_map() const override;
  void set_input_coord_maps(const std::vector<CoordMap>& input_maps) override;
  std::array<double, 2> input_extent() const override { return {1, 1}; }
  double forward_flops() const override { return 0.0; }
  // Slice; in a dynamic export the ends are offsets + Shape(ref)[axis:4]
  void emit_onnx(OnnxEmitter& onnx, const std::vector<std::string>& inputs, const std::string& output) const override;

  // The offset on every axis (0 on the axes before `axis`), after reshape.
  const std::array<int64_t, 4>& offsets() const { return offset_; }

 private:
  void derive_auto_offsets(const std::vector<Shape>& input_shapes);

  int axis_;
  std::vector<int64_t> given_offsets_;
  bool auto_offset_;
  std::vector<CoordMap> input_maps_;  // from the graph, for "auto"
  std::array<int64_t, 4> offset_{};
  std::array<int64_t, 4> x_shape_{};
};

}  // namespace fcn
