#include "fcn/layers/resize.hpp"

#include <cmath>
#include <sstream>

#include "fcn/core/error.hpp"
#include "fcn/layers/registry.hpp"

namespace fcn {

int64_t resize_output_size(int64_t in, double scale) {
  const double out = static_cast<double>(in) * scale;
  return out < 9.0e18 ? static_cast<int64_t>(out) : INT64_MAX;  // no undefined cast of a huge product
}

ResizeLayer::ResizeLayer(LayerContext context, ResizeOptions options)
    : Layer(std::move(context)), options_(options) {}

std::array<int64_t, 2> ResizeLayer::output_hw(const std::vector<Shape>& input_shapes) const {
  const Shape& x = input_shapes[0];
  if (options_.size) return *options_.size;
  if (options_.scale)
    return {resize_output_size(x[2], (*options_.scale)[0]), resize_output_size(x[3], (*options_.scale)[1])};
  return {input_shapes[1][2], input_shapes[1][3]};
}

Shape ResizeLayer::reshape(const std::vector<Shape>& input_shapes) {
  expect_inputs(input_shapes, options_.scale || options_.size ? 1 : 2);
  const Shape& x = input_shapes[0];
  const std::array<int64_t, 2> out = output_hw(input_shapes);
  for (int a = 0; a < 2; ++a) {
    if (x[2 + a] < 1) fail_shape("the input has no pixels", input_shapes);
    if (out[a] < 1)
      fail_shape("output size " + std::to_string(out[0]) + "x" + std::to_string(out[1]) + " has no pixels",
                 input_shapes);
  }
  try {
    shape_numel({x[0], x[1], out[0], out[1]});  // before the tables: a huge scale must not allocate them
  } catch (const Error& e) {
    fail_shape(std::string("output ") + e.what(), input_shapes);
  }
  for (int a = 0; a < 2; ++a) {
    in_[a] = x[2 + a];
    out_[a] = out[a];
    const std::optional<double> scale = options_.scale ? std::optional<double>((*options_.scale)[a]) : std::nullopt;
    step_[a] = cpu::resize_source_step(in_[a], out_[a], options_.align_corners, scale);
  }
  tables_ready_ = false;
  planes_ = x[0] * x[1];
  flops_ = 8.0 * static_cast<double>(planes_) * static_cast<double>(out_[0]) * static_cast<double>(out_[1]);
  return {x[0], x[1], out_[0], out_[1]};
}

cpu::ResizeGeometry ResizeLayer::geometry() {
  // built at the first pass, not in reshape: a graph that only plans its
  // memory must not fill tables of an output size it never computes
  if (!tables_ready_) {
    rows_ = cpu::linear_axis(in_[0], out_[0], step_[0], options_.align_corners);
    cols_ = cpu::linear_axis(in_[1], out_[1], step_[1], options_.align_corners);
    tables_ready_ = true;
  }
  return {planes_, &rows_, &cols_};
}

void ResizeLayer::forward(const std::vector<const Tensor*>& inputs, Tensor& output, Mode mode) {
  cpu::bilinear_forward(geometry(), inputs[0]->data(), output.data());
}

void ResizeLayer::backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& output_grad,
                           const std::vector<Tensor*>& input_grads) {
  if (!input_grads[0]) return;  // ref's values never reach the output: it gets nothing
  cpu::bilinear_backward_accumulate(geometry(), output_grad.data(), input_grads[0]->data());
}

CoordMap ResizeLayer::coord_map() const {
  CoordMap map;
  for (int a = 0; a < 2; ++a) {
    const double in = static_cast<double>(in_[a]), out = static_cast<double>(out_[a]);
    if (in_[a] == out_[a]) continue;  // copied
    if (!options_.align_corners) {
      map.scale[a] = 1.0 / step_[a];
      map.shift[a] = 0.5 / step_[a] - 0.5;
    } else if (in_[a] > 1 && out_[a] > 1) {
      map.scale[a] = 1.0 / step_[a];
    } else {
      map.scale[a] = out / in;
    }
  }
  return map;
}

std::array<double, 2> ResizeLayer::input_extent() const {
  std::array<double, 2> extent{};
  for (int a = 0; a < 2; ++a) extent[a] = in_[a] == out_[a] || in_[a] == 1 ? 1.0 : 2.0;
  return extent;
}

namespace {

constexpr int64_t kLargestCheckedSize = 65536;  // a dynamic export's scales hold for inputs up to this size

// Whether ONNX's output size floor(in * factor) is fcn's at input size `in`,
// computed with a float32 product (ONNX Runtime, OpenCV) and an exact one
// (the ONNX reference evaluator): the two differ when in * factor is within
// float32 rounding of an integer.
bool onnx_size_matches(int64_t in, double scale, float factor) {
  const float float_product = factor * static_cast<float>(in);
  const double exact_product = static_cast<double>(factor) * static_cast<double>(in);
  if (!(float_product < 9.0e18f && exact_product < 9.0e18)) return false;  // no undefined cast to int64
  const int64_t out = resize_output_size(in, scale);
  return static_cast<int64_t>(float_product) == out && static_cast<int64_t>(exact_product) == out;
}

// The float32 factor to give ONNX for `scale` at inputs sizes first..last:
// the nearest float or one of its two neighbours (the source mapping moves
// by float32 rounding either way), whichever gives fcn's output sizes.
std::optional<float> onnx_factor(double scale, int64_t first, int64_t last) {
  const float nearest = static_cast<float>(scale);
  for (const float factor : {nearest, std::nextafter(nearest, 2.f * nearest), std::nextafter(nearest, 0.f)}) {
    bool matches = true;
    for (int64_t in = first; in <= last && matches; ++in) matches = onnx_size_matches(in, scale, factor);
    if (matches) return factor;
  }
  return std::nullopt;
}

// The float32 factor ONNX gets for one axis's `scale`, at the export's input
// size `in`, or at every input size up to kLargestCheckedSize for a dynamic
// export (in = 0); throws OnnxUnsupported when no factor is exact.
float onnx_axis_scale(const std::string& layer, const char* axis, double scale, bool align_corners, int64_t in) {
  std::ostringstream why;
  why << "scale " << scale << " on " << axis << ": ";
  // PyTorch copies an axis whose size does not change; half-pixel ONNX maps it by 1 / scale
  const auto copied = [&](int64_t size) { return size > 1 && resize_output_size(size, scale) == size; };
  if (in > 0 && copied(in)) return 1.f;  // a copy in ONNX too
  for (int64_t size = 1; in == 0 && !align_corners && scale != 1.0 && size <= kLargestCheckedSize; ++size)
    if (copied(size)) {
      why << "PyTorch copies an input of size " << size << " (floor(in * scale) = in), ONNX would resample it; "
          << "export at a fixed --size";
      throw OnnxUnsupported(layer, why.str());
    }
  const std::optional<float> factor = in > 0 ? onnx_factor(scale, in, in) : onnx_factor(scale, 1, kLargestCheckedSize);
  if (!factor) {
    why << "no float32 factor gives ONNX PyTorch's output size floor(in * scale) "
        << (in > 0 ? "at input size " + std::to_string(in)
                   : "at every input size up to " + std::to_string(kLargestCheckedSize) + "; export at a fixed --size");
    throw OnnxUnsupported(layer, why.str());
  }
  return *factor;
}

}  // namespace

std::string ResizeLayer::onnx_scales(OnnxEmitter& onnx) const {
  const Shape& x = onnx.blob_shape(inputs()[0]);
  std::vector<float> scales = {1.f, 1.f, 1.f, 1.f};
  for (int a = 0; a < 2; ++a)
    scales[2 + a] = onnx_axis_scale(name(), a == 0 ? "h" : "w", (*options_.scale)[a], options_.align_corners,
                                    onnx.dynamic() ? 0 : x[2 + a]);
  return onnx.float_tensor(name() + "/scales", {4}, scales.data());
}

std::string ResizeLayer::onnx_sizes(OnnxEmitter& onnx, const std::vector<std::string>& inputs) const {
  const std::string prefix = name() + "/";
  const Shape& x = onnx.blob_shape(this->inputs()[0]);
  const std::array<int64_t, 2> hw =
      options_.size ? *options_.size : std::array<int64_t, 2>{onnx.blob_shape(this->inputs()[1])[2],
                                                              onnx.blob_shape(this->inputs()[1])[3]};
  if (!onnx.dynamic()) return onnx.int64_tensor(prefix + "sizes", {x[0], x[1], hw[0], hw[1]});
  // sizes = shape(x)[0:2] ++ (shape(ref)[2:4] or the fixed size), computed at run time
  onnx.node("Shape", prefix + "x_shape", {inputs[0]}, prefix + "x_shape");
  onnx.node("Slice", prefix + "nc",
            {prefix + "x_shape", onnx.int64_tensor(prefix + "nc_from", {0}), onnx.int64_tensor(prefix + "nc_to", {2})},
            prefix + "nc");
  std::string spatial;
  if (options_.size) {
    spatial = onnx.int64_tensor(prefix + "hw", {hw[0], hw[1]});
  } else {
    onnx.node("Shape", prefix + "ref_shape", {inputs[1]}, prefix + "ref_shape");
    onnx.node("Slice", prefix + "hw",
              {prefix + "ref_shape", onnx.int64_tensor(prefix + "hw_from", {2}), onnx.int64_tensor(prefix + "hw_to", {4})},
              prefix + "hw");
    spatial = prefix + "hw";
  }
  onnx.node("Concat", prefix + "sizes", {prefix + "nc", spatial}, prefix + "sizes", {{"axis", int64_t{0}}});
  return prefix + "sizes";
}

void ResizeLayer::emit_onnx(OnnxEmitter& onnx, const std::vector<std::string>& inputs,
                            const std::string& output) const {
  const std::vector<OnnxAttribute> attributes = {
      {"mode", std::string("linear")},
      {"coordinate_transformation_mode", std::string(options_.align_corners ? "align_corners" : "half_pixel")}};
  // inputs X, roi, scales, sizes; roi (tf_crop_and_resize only) and one of scales/sizes are empty
  if (options_.scale) {
    onnx.node("Resize", name(), {inputs[0], "", onnx_scales(onnx)}, output, attributes);
  } else {
    onnx.node("Resize", name(), {inputs[0], "", "", onnx_sizes(onnx, inputs)}, output, attributes);
  }
}

namespace {

std::array<double, 2> read_scale(SpecReader& reader) {
  const json& raw = reader.raw("scale");
  std::vector<json> values = raw.is_array() ? raw.get<std::vector<json>>() : std::vector<json>{raw, raw};
  if (values.size() != 2) reader.fail("scale", "expected a number or [h, w], got " + raw.dump());
  std::array<double, 2> scale{};
  for (int a = 0; a < 2; ++a) {
    if (!values[a].is_number() || !(values[a].get<double>() > 0))
      reader.fail("scale", "expected positive numbers, got " + raw.dump());
    scale[a] = values[a].get<double>();
  }
  return scale;
}

}  // namespace

std::unique_ptr<Layer> make_resize_layer(LayerContext context, SpecReader& reader) {
  ResizeOptions options;
  reader.accept("scale");
  reader.accept("size");
  const bool has_ref = context.inputs.size() == 2;
  if (context.inputs.empty() || context.inputs.size() > 2)
    reader.fail("inputs", "resize takes [x] with scale or size, or [x, ref]");
  if (reader.has("scale") + reader.has("size") + has_ref != 1)
    reader.fail(reader.has("scale") ? "scale" : reader.has("size") ? "size" : "inputs",
                "give exactly one of scale, size or a second input (ref) whose size the output takes");
  if (reader.has("scale")) options.scale = read_scale(reader);
  if (reader.has("size")) options.size = reader.get_hw("size", {1, 1}, 1);
  options.align_corners = reader.get_bool("align_corners", false);
  return std::make_unique<ResizeLayer>(std::move(context), options);
}

}  // namespace fcn
