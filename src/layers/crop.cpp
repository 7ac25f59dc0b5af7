#include "fcn/layers/crop.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "fcn/cpu/elementwise.hpp"
#include "fcn/layers/registry.hpp"

namespace fcn {

CropLayer::CropLayer(LayerContext context, int axis, std::vector<int64_t> offsets, bool auto_offset)
    : Layer(std::move(context)), axis_(axis), given_offsets_(std::move(offsets)), auto_offset_(auto_offset) {}

void CropLayer::set_input_coord_maps(const std::vector<CoordMap>& input_maps) { input_maps_ = input_maps; }

void CropLayer::derive_auto_offsets(const std::vector<Shape>& input_shapes) {
  if (input_maps_.size() != 2)
    fail_shape("offset \"auto\" needs the coordinate maps of both inputs (build the layer in a graph)", input_shapes);
  const CoordMap& x = input_maps_[0];
  const CoordMap& ref = input_maps_[1];
  for (int axis = axis_; axis < 4; ++axis) {
    const int s = axis - 2;  // spatial axis: 0 = h, 1 = w
    std::ostringstream where;
    where << (s == 0 ? "h" : "w") << ": x maps as " << x.scale[s] << "*p + " << x.shift[s] << ", ref as "
          << ref.scale[s] << "*p + " << ref.shift[s];
    if (std::fabs(x.scale[s] - ref.scale[s]) > 1e-6 * std::max(1.0, std::fabs(x.scale[s])))
      fail_shape("offset \"auto\": x and ref have different scales (" + where.str() + ")", input_shapes);
    // a data point p lands at x = a*p + b_x and ref = a*p + b_ref, so ref pixel 0 sits at x pixel b_x - b_ref
    const double offset = x.shift[s] - ref.shift[s];
    const double rounded = std::round(offset);
    if (std::fabs(offset - rounded) > 1e-6 || !(rounded >= 0 && rounded <= 1e18)) {  // NaN/huge: no int64 cast
      std::ostringstream problem;
      problem << "offset \"auto\": derived offset " << offset << " is not a non-negative integer (" << where.str()
              << ")";
      fail_shape(problem.str(), input_shapes);
    }
    offset_[axis] = static_cast<int64_t>(rounded);
  }
}

Shape CropLayer::reshape(const std::vector<Shape>& input_shapes) {
  expect_inputs(input_shapes, 2);
  const Shape& x = input_shapes[0];
  const Shape& ref = input_shapes[1];
  offset_.fill(0);
  if (auto_offset_) {
    derive_auto_offsets(input_shapes);
  } else {
    for (int axis = axis_; axis < 4; ++axis) offset_[axis] = given_offsets_[axis - axis_];
  }
  Shape out = x;
  for (int axis = axis_; axis < 4; ++axis) {
    out[axis] = ref[axis];
    if (offset_[axis] > x[axis] - ref[axis]) {  // not offset + ref > x: a huge offset would overflow
      std::string offsets;
      for (int a = axis_; a < 4; ++a) offsets += (a > axis_ ? ", " : "") + std::to_string(offset_[a]);
      fail_shape(
          "crop window of ref's size at offset [" + offsets + "] (axes " + std::to_string(axis_) + "..3) exceeds x",
          input_shapes);
    }
  }
  for (int axis = 0; axis < 4; ++axis) x_shape_[axis] = x[axis];
  return out;
}

namespace {

cpu::Window4d window(const std::array<int64_t, 4>& big, const Shape& out, const std::array<int64_t, 4>& offset) {
  cpu::Window4d w;
  w.big = big;
  for (int axis = 0; axis < 4; ++axis) w.window[axis] = out[axis];
  w.offset = offset;
  return w;
}

}  // namespace

void CropLayer::forward(const std::vector<const Tensor*>& inputs, Tensor& output, Mode mode) {
  cpu::copy_window(window(x_shape_, output.shape(), offset_), inputs[0]->data(), output.data());
}

void CropLayer::backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& output_grad,
                         const std::vector<Tensor*>& input_grads) {
  if (!input_grads[0]) return;
  cpu::add_window_accumulate(window(x_shape_, output.shape(), offset_), output_grad.data(), input_grads[0]->data());
}

void CropLayer::emit_onnx(OnnxEmitter& onnx, const std::vector<std::string>& inputs,
                          const std::string& output) const {
  std::vector<int64_t> axes, starts, ends;
  const Shape& ref_shape = onnx.blob_shape(this->inputs()[1]);
  for (int64_t a = axis_; a < 4; ++a) {
    axes.push_back(a);
    starts.push_back(offset_[a]);
    ends.push_back(offset_[a] + ref_shape[a]);
  }
  const std::string prefix = name() + "/";
  const std::string starts_value = onnx.int64_tensor(prefix + "starts", starts);
  std::string ends_value;
  if (onnx.dynamic()) {
    onnx.node("Shape", prefix + "ref_shape", {inputs[1]}, prefix + "ref_shape");
    onnx.node("Slice", prefix + "ref_dims",
              {prefix + "ref_shape", onnx.int64_tensor(prefix + "dims_from", {axis_}),
               onnx.int64_tensor(prefix + "dims_to", {4})},
              prefix + "ref_dims");
    onnx.node("Add", prefix + "ends", {prefix + "ref_dims", starts_value}, prefix + "ends");
    ends_value = prefix + "ends";
  } else {
    ends_value = onnx.int64_tensor(prefix + "ends", ends);
  }
  onnx.node("Slice", name(), {inputs[0], starts_value, ends_value, onnx.int64_tensor(prefix + "axes", axes)}, output);
}

CoordMap CropLayer::coord_map() const {
  CoordMap map;
  for (int s = 0; s < 2; ++s) map.shift[s] = -static_cast<double>(offset_[2 + s]);
  return map;
}

std::unique_ptr<Layer> make_crop_layer(LayerContext context, SpecReader& reader) {
  const int axis = static_cast<int>(reader.get_int("axis", 2, 0, 3));
  const size_t cropped = static_cast<size_t>(4 - axis);
  bool auto_offset = true;
  std::vector<int64_t> offsets;
  reader.accept("offset");
  if (reader.has("offset")) {
    const json& raw = reader.raw("offset");
    if (raw.is_string()) {
      if (raw.get<std::string>() != "auto")
        reader.fail("offset", "expected \"auto\", an integer or a list of integers, got " + raw.dump());
    } else if (raw.is_number_integer()) {
      auto_offset = false;
      offsets.assign(cropped, raw.get<int64_t>());
    } else if (raw.is_array() && raw.size() == cropped) {
      auto_offset = false;
      for (const json& v : raw) {
        if (!v.is_number_integer()) reader.fail("offset", "expected integers, got " + raw.dump());
        offsets.push_back(v.get<int64_t>());
      }
    } else {
      reader.fail("offset", "expected \"auto\", an integer or a list of " + std::to_string(cropped) +
                                " integers (one per axis from " + std::to_string(axis) + "), got " + raw.dump());
    }
    for (int64_t o : offsets)
      if (o < 0) reader.fail("offset", "must be non-negative, got " + raw.dump());
  }
  if (auto_offset && axis < 2) reader.fail("axis", "offset \"auto\" crops spatial axes only (axis 2 or 3)");
  return std::make_unique<CropLayer>(std::move(context), axis, std::move(offsets), auto_offset);
}

CaffeMapped crop_from_caffe(CaffeLayer& layer) {
  layer.expect_bottoms(2);
  SpecReader q = layer.param("crop_param");
  const int64_t axis = caffe_axis(layer, q, "axis", 2);
  json offset = 0;
  if (q.has("offset")) {
    const json& offsets = q.raw("offset");
    offset = offsets.size() == 1 ? offsets[0] : offsets;
  }
  layer.finish(q);
  CaffeMapped mapped{caffe_layer_spec(layer, "crop"), {}};
  mapped.spec.update({{"axis", axis}, {"offset", offset}});
  return mapped;
}

}  // namespace fcn
