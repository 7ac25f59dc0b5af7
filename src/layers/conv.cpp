#include "fcn/layers/conv.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

#include "fcn/cpu/convolution.hpp"
#include "fcn/cpu/elementwise.hpp"
#include "fcn/core/error.hpp"
#include "fcn/layers/registry.hpp"

namespace fcn {

int64_t conv_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation) {
  // in 128 bits: a huge pad, kernel or dilation from a bad spec must not overflow (too large
  // results saturate, and the blob's shape check rejects them)
  const __int128 span = static_cast<__int128>(in) + 2 * static_cast<__int128>(pad) -
                        static_cast<__int128>(dilation) * (kernel - 1) - 1;
  if (span < 0) return 0;  // C++ division truncates toward zero, the formula floors
  const __int128 out = span / stride + 1;
  return out > INT64_MAX ? INT64_MAX : static_cast<int64_t>(out);
}

ConvolutionBase::ConvolutionBase(LayerContext context, SpecReader& reader, const std::vector<std::string>& inits)
    : Layer(std::move(context)), geometry_(std::make_unique<cpu::ConvGeometry>()) {
  options_.num_output = reader.get_int("num_output");
  if (options_.num_output < 1)
    reader.fail("num_output", "expected positive integer, got " + std::to_string(options_.num_output));
  if (!reader.has("kernel")) reader.fail("kernel", "missing required key");
  options_.kernel = reader.get_hw("kernel", {1, 1}, 1);
  options_.stride = reader.get_hw("stride", {1, 1}, 1);
  options_.pad = reader.get_hw("pad", {0, 0}, 0);
  options_.dilation = reader.get_hw("dilation", {1, 1}, 1);
  options_.groups = reader.get_int("groups", 1, 1);
  options_.bias = reader.get_bool("bias", true);
  json weight_init = read_init(reader, "weight_init", {{"type", "msra"}}, inits);
  json bias_init = read_init(reader, "bias_init", {{"type", "zero"}}, {"zero", "constant", "gaussian"});
  // the weight's input-channel extent is only known at reshape (see conv.hpp)
  weight_ = make_param(name(), "weight", {0}, std::move(weight_init), reader, "", 1.f, 1.f);
  // biases learn at twice the rate without decay, as the FCN reference
  bias_ = make_param(name(), "bias", {options_.num_output}, std::move(bias_init), reader, "bias_", 2.f, 0.f);
}

ConvolutionBase::~ConvolutionBase() = default;

std::vector<Param*> ConvolutionBase::params() {
  if (options_.bias) return {&weight_, &bias_};
  return {&weight_};
}

void ConvolutionBase::init_params(std::mt19937_64& rng) {
  init_seed_ = rng();
  initialise_allocated();
}

void ConvolutionBase::initialise_allocated() {
  if (!init_seed_ || weight_.data.numel() == 0) return;
  std::mt19937_64 rng(*init_seed_);
  for (Param* p : params()) initialise_param(*p, rng);
}

void ConvolutionBase::ensure_weight(const Shape& shape) {
  if (weight_.data.shape() == shape) return;
  weight_.data = Tensor(shape);
  if (trains_weight()) weight_.grad = Tensor(shape);
  initialise_allocated();
}

void ConvolutionBase::check_groups(int64_t in_channels, const std::vector<Shape>& input_shapes) const {
  if (in_channels < 1) fail_shape("expects at least one input channel", input_shapes);
  const int64_t g = options_.groups;
  if (in_channels % g != 0 || options_.num_output % g != 0)
    fail_shape("groups = " + std::to_string(g) + " must divide both the input channels (" +
                   std::to_string(in_channels) + ") and num_output (" + std::to_string(options_.num_output) + ")",
               input_shapes);
}

int64_t ConvolutionBase::scratch_bytes() const {
  return cpu::conv_scratch_floats(*geometry_, batch_) * static_cast<int64_t>(sizeof(float));
}

void ConvolutionBase::set_geometry(const std::array<int64_t, 3>& image, const std::array<int64_t, 3>& output) {
  cpu::ConvGeometry& g = *geometry_;
  g.channels = image[0];
  g.height = image[1];
  g.width = image[2];
  g.out_channels = output[0];
  g.out_h = output[1];
  g.out_w = output[2];
  g.kernel_h = options_.kernel[0];
  g.kernel_w = options_.kernel[1];
  g.stride_h = options_.stride[0];
  g.stride_w = options_.stride[1];
  g.pad_h = options_.pad[0];
  g.pad_w = options_.pad[1];
  g.dilation_h = options_.dilation[0];
  g.dilation_w = options_.dilation[1];
  g.groups = options_.groups;
  g.precision = gemm_precision();
}

// bf16 pays where a GEMM's depth does: a conv whose outputs sum fewer than
// 32 products (VGG16's conv1_1, 3 channels x 3x3 = 27) keeps fp32. There
// bf16 gains nothing (conv1_1 at 500x500, forward + backward, Zen 5 with
// AVX512-BF16, alternated three times: 52-55 ms in bf16, 51-52 in fp32:
// rounding its columns costs what the GEMM saves), and fp32 keeps the
// first layer's numbers exact.
constexpr int64_t kMinBf16Depth = 32;

Precision ConvolutionBase::gemm_precision() const {
  const cpu::ConvGeometry& g = *geometry_;
  const int64_t depth = g.channels / std::max<int64_t>(1, g.groups) * g.kernel_h * g.kernel_w;
  return precision_ == Precision::bf16 && depth < kMinBf16Depth ? Precision::fp32 : precision_;
}

std::string ConvolutionBase::options_str() const {
  auto hw = [](const std::array<int64_t, 2>& v) { return std::to_string(v[0]) + "x" + std::to_string(v[1]); };
  return "kernel " + hw(options_.kernel) + ", stride " + hw(options_.stride) + ", pad " + hw(options_.pad) +
         ", dilation " + hw(options_.dilation);
}

void ConvolutionBase::emit_convolution(OnnxEmitter& onnx, const std::string& op, const std::string& input,
                                       const std::string& output, std::vector<OnnxAttribute> extra) const {
  std::vector<std::string> inputs = {input, onnx.float_tensor(weight_.name, weight_.data)};
  if (options_.bias) inputs.push_back(onnx.float_tensor(bias_.name, bias_.data));
  const auto& k = options_.kernel;
  const auto& s = options_.stride;
  const auto& p = options_.pad;
  const auto& d = options_.dilation;
  std::vector<OnnxAttribute> attributes = {{"kernel_shape", std::vector<int64_t>{k[0], k[1]}},
                                           {"strides", std::vector<int64_t>{s[0], s[1]}},
                                           {"pads", std::vector<int64_t>{p[0], p[1], p[0], p[1]}},
                                           {"dilations", std::vector<int64_t>{d[0], d[1]}},
                                           {"group", options_.groups}};
  attributes.insert(attributes.end(), extra.begin(), extra.end());
  onnx.node(op, name(), inputs, output, attributes);
}

ConvLayer::ConvLayer(LayerContext context, SpecReader& reader)
    : ConvolutionBase(std::move(context), reader, {"gaussian", "xavier", "msra", "zero", "constant"}) {}

Shape ConvLayer::reshape(const std::vector<Shape>& input_shapes) {
  expect_inputs(input_shapes, 1);
  const Shape& x = input_shapes[0];  // [N, C, H, W]
  const ConvOptions& o = options_;
  check_groups(x[1], input_shapes);
  const int64_t out_h = conv_output_size(x[2], o.kernel[0], o.stride[0], o.pad[0], o.dilation[0]);
  const int64_t out_w = conv_output_size(x[3], o.kernel[1], o.stride[1], o.pad[1], o.dilation[1]);
  if (out_h < 1 || out_w < 1)
    fail_shape("the dilated kernel does not fit the padded input (" + options_str() + ")", input_shapes);
  set_geometry({x[1], x[2], x[3]}, {o.num_output, out_h, out_w});
  batch_ = x[0];
  input_frame_ = {};  // a frame of other shapes would mislead forward
  ensure_weight({o.num_output, x[1] / o.groups, o.kernel[0], o.kernel[1]});
  // multiply-adds: every output element sums (C/g)*kh*kw products
  flops_ = 2.0 * x[0] * o.num_output * out_h * out_w * (x[1] / o.groups) * o.kernel[0] * o.kernel[1];
  return {x[0], o.num_output, out_h, out_w};
}

// bf16 operands, float accumulation, weights and gradients (fcn/core/precision.hpp)
void ConvLayer::set_precision(Precision precision) {
  precision_ = precision;
  geometry_->precision = gemm_precision();
}

void ConvLayer::set_inference_only(bool on) { geometry_->inference = on; }

bool ConvLayer::writes_fresh_input_grad(size_t k) const {
  return k == 0 && geometry_ && cpu::backward_data_writes_whole(*geometry_, batch_);
}

void ConvLayer::convolve_images(const Tensor& x, const float* weight, const float* bias, bool rectify,
                                Tensor& output) const {
  cpu::conv_forward_images(*geometry_, x.n(), weight, x.data(), output.data(), bias, rectify, &input_frame_);
}

void ConvLayer::forward(const std::vector<const Tensor*>& inputs, Tensor& output, Mode mode) {
  const int64_t batch = inputs[0]->n();
  const bool hold = geometry_->precision == Precision::bf16 && cpu::gemms_read_weight(*geometry_, batch);
  // a training step's backward-data reads a large weight pair-interleaved, rounded in the same pass
  const int64_t interleaved_rows = mode == Mode::train ? cpu::backward_data_interleaved_rows(*geometry_, batch) : 0;
  if (hold) rounded_weight_.hold(geometry_->precision, weight_.data.data(), weight_.data.numel(), interleaved_rows);
  convolve_images(*inputs[0], weight_.data.data(), options_.bias ? bias_.data.data() : nullptr, rectify_, output);
  if (!hold || mode != Mode::train) rounded_weight_.release();  // no backward follows to read it
}

bool ConvLayer::forward_folded(const std::vector<const Tensor*>& inputs, Tensor& output, Layer& next, bool rectify) {
  if (!folded_.update(weight_, options_.bias ? &bias_ : nullptr, next)) return false;
  convolve_images(*inputs[0], folded_.weight().data(), folded_.bias().data(), rectify, output);
  return true;
}

ConstantFrame ConvLayer::output_frame(const std::vector<ConstantFrame>& input_frames, const Shape&) {
  input_frame_ = input_frames.empty() ? ConstantFrame{} : input_frames[0];
  return cpu::conv_output_frame(*geometry_, input_frame_);
}

void ConvLayer::backward(const std::vector<const Tensor*>& inputs, const Tensor&, const Tensor& output_grad,
                         const std::vector<Tensor*>& input_grads) {
  const cpu::ConvGeometry& g = *geometry_;
  const Tensor& x = *inputs[0];
  Tensor* x_grad = input_grads[0];
  // deferred gradients (Graph::zero_param_grads) are written, not added to
  if (std::exchange(bias_.grad_deferred, false)) bias_.grad.zero();
  // the weight gradient's pass sums the bias gradient too (next to the frame's sums, which reread the planes)
  float* bias_grad = trains_bias() ? bias_.grad.data() : nullptr;
  if (bias_grad && !trains_weight()) cpu::add_bias_grad_images(g, x.n(), output_grad.data(), bias_grad);
  const bool weight_deferred = std::exchange(weight_.grad_deferred, false);
  if (trains_weight())
    cpu::conv_backward_weight_images(g, x.n(), x.data(), output_grad.data(), weight_.grad.data(), &input_frame_,
                                     !weight_deferred, bias_grad);
  if (x_grad)
    cpu::conv_backward_data_images(g, x.n(), weight_.data.data(), output_grad.data(), x_grad->data(),
                                   !input_grad_fresh(0), input_grad_kept());
  rounded_weight_.release();  // the solver changes the weight next
}

std::array<double, 2> ConvLayer::input_extent() const {
  const auto& k = options_.kernel;
  const auto& d = options_.dilation;
  return {static_cast<double>(d[0] * (k[0] - 1) + 1), static_cast<double>(d[1] * (k[1] - 1) + 1)};
}

void ConvLayer::emit_onnx(OnnxEmitter& onnx, const std::vector<std::string>& inputs,
                          const std::string& output) const {
  emit_convolution(onnx, "Conv", inputs[0], output, {});
}

CoordMap ConvLayer::coord_map() const {
  CoordMap map;
  for (int axis = 0; axis < 2; ++axis) {
    const double s = static_cast<double>(options_.stride[axis]);
    // the output pixel o sees input o*s - pad + d(k-1)/2 at its kernel centre
    map.scale[axis] = 1.0 / s;
    map.shift[axis] = (options_.pad[axis] - options_.dilation[axis] * (options_.kernel[axis] - 1) / 2.0) / s;
  }
  return map;
}

std::unique_ptr<Layer> make_conv_layer(LayerContext context, SpecReader& reader) {
  return std::make_unique<ConvLayer>(std::move(context), reader);
}

// Caffe's weight and bias blobs and their multipliers as conv/deconv
// params; Caffe's default multipliers are 1 for both blobs, fcn's bias
// defaults differ, so all four are written.
namespace {

void convolution_params_from_caffe(CaffeLayer& layer, const Shape& weight_shape, bool bias, CaffeMapped& mapped) {
  mapped.spec["lr_mult"] = layer.param_spec(0).lr_mult;
  mapped.spec["decay_mult"] = layer.param_spec(0).decay_mult;
  mapped.spec["bias_lr_mult"] = layer.param_spec(1).lr_mult;
  mapped.spec["bias_decay_mult"] = layer.param_spec(1).decay_mult;
  if (layer.blobs.empty()) return;  // structure only (a deploy net without weights)
  if (layer.blobs.size() != (bias ? 2u : 1u))
    layer.fail("has " + std::to_string(layer.blobs.size()) + " blobs, expected " + (bias ? "2" : "1"));
  mapped.weights[layer.name + ".weight"] = layer.take_blob(0, weight_shape);
  if (bias) mapped.weights[layer.name + ".bias"] = layer.take_blob(1, {mapped.spec["num_output"].get<int64_t>()});
}

}  // namespace

CaffeMapped convolution_from_caffe(CaffeLayer& layer, bool transposed) {
  layer.expect_bottoms(1);
  SpecReader q = layer.param("convolution_param");
  const int64_t outputs = q.get_int("num_output", 0, 0);
  if (outputs < 1) q.fail("num_output", "must be set (at least 1)");
  const bool bias = q.get_bool("bias_term", true);
  const auto kernel = caffe_hw(q, "kernel_size", "kernel", 0);
  if (kernel[0] < 1 || kernel[1] < 1) q.fail("kernel_size", "must be set (at least 1)");
  const auto stride = caffe_hw(q, "stride", "stride", 1);
  const auto pad = caffe_hw(q, "pad", "pad", 0);
  const auto dilation = caffe_hw(q, "dilation", "dilation", 1);
  const int64_t groups = q.get_int("group", 1, 1);
  if (caffe_axis(layer, q, "axis", 1) != 1)
    q.fail("axis", "is not the channel axis; fcn convolves N, C, H, W blobs over C (axis 1)");
  // fillers initialise a net Caffe trains from scratch: the file's blobs replace them
  q.accept("weight_filler");
  q.accept("bias_filler");
  // which implementation Caffe runs (its im2col, cuDNN, the N-d im2col): the same convolution
  q.accept("engine");
  q.accept("force_nd_im2col");
  layer.finish(q);
  CaffeMapped mapped{caffe_layer_spec(layer, transposed ? "deconv" : "conv"), {}};
  mapped.spec.update({{"num_output", outputs}, {"kernel", hw_json(kernel)}, {"stride", hw_json(stride)},
                      {"pad", hw_json(pad)}, {"bias", bias}});
  if (dilation[0] != 1 || dilation[1] != 1) mapped.spec["dilation"] = hw_json(dilation);
  if (groups != 1) mapped.spec["groups"] = groups;
  const int64_t in_channels = layer.bottom_shapes[0].at(1);
  // Caffe's layouts are PyTorch's: conv [out, in/g, kh, kw], deconv [in, out/g, kh, kw]
  const Shape shape = transposed ? Shape{in_channels, outputs / groups, kernel[0], kernel[1]}
                                 : Shape{outputs, in_channels / groups, kernel[0], kernel[1]};
  convolution_params_from_caffe(layer, shape, bias, mapped);
  return mapped;
}

CaffeMapped conv_from_caffe(CaffeLayer& layer) { return convolution_from_caffe(layer, false); }

// InnerProduct from axis 1 over an N, C, H, W bottom is a convolution whose
// kernel covers the whole H x W (Caffe flattens C, H, W in a conv weight's
// order): the reference's net surgery, fully convolutional at other sizes.
CaffeMapped inner_product_from_caffe(CaffeLayer& layer) {
  layer.expect_bottoms(1);
  SpecReader q = layer.param("inner_product_param");
  const int64_t outputs = q.get_int("num_output", 0, 0);
  if (outputs < 1) q.fail("num_output", "must be set (at least 1)");
  const bool bias = q.get_bool("bias_term", true);
  const bool transpose = q.get_bool("transpose", false);
  if (caffe_axis(layer, q, "axis", 1) != 1)
    q.fail("axis", "keeps axes after N apart, which no convolution over N, C, H, W does (fcn maps axis 1)");
  q.accept("weight_filler");  // initialisers only (see convolution_from_caffe)
  q.accept("bias_filler");
  layer.finish(q);
  const Shape& in = layer.bottom_shapes[0];
  std::array<int64_t, 2> kernel{in.at(2), in.at(3)};
  const int64_t columns = in[1] * in[2] * in[3];
  if (!layer.blobs.empty() && layer.blobs[0].numel() != outputs * columns) {
    // a net without a declared input size (a data layer): the square kernel its weight implies
    const int64_t per_channel = layer.blobs[0].numel() / std::max<int64_t>(1, outputs * in[1]);
    const auto k = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(per_channel))));
    if (k * k * in[1] * outputs == layer.blobs[0].numel()) kernel = {k, k};
  }
  if (transpose && !layer.blobs.empty()) {
    // stored as [inputs, outputs] (Caffe multiplies by its transpose): only a layout
    const Tensor stored = std::move(layer.blobs[0]);
    layer.blobs[0] = Tensor({outputs, stored.numel() / outputs});
    cpu::transpose(stored.data(), layer.blobs[0].data(), stored.numel() / outputs, outputs);
  }
  CaffeMapped mapped{caffe_layer_spec(layer, "conv"), {}};
  mapped.spec.update({{"num_output", outputs}, {"kernel", hw_json(kernel)}, {"bias", bias}});
  convolution_params_from_caffe(layer, {outputs, in[1], kernel[0], kernel[1]}, bias, mapped);
  return mapped;
}

}  // namespace fcn
