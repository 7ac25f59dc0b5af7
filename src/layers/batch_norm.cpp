#include "fcn/layers/batch_norm.hpp"

#include <cmath>

#include "fcn/core/error.hpp"
#include "fcn/layers/registry.hpp"

namespace fcn {

namespace {

// A running statistic: a param the solver never updates (lr_mult 0, decay 0).
Param running_statistic(const std::string& layer, const std::string& suffix, float initial) {
  Param p;
  p.name = layer + "." + suffix;
  p.data = Tensor({0});
  p.lr_mult = 0.f;
  p.decay_mult = 0.f;
  p.init = {{"type", "constant"}, {"value", initial}};
  p.learned_state = true;
  return p;
}

}  // namespace

BatchNormLayer::BatchNormLayer(LayerContext context, const BatchNormOptions& options, std::unique_ptr<Param> weight,
                               std::unique_ptr<Param> bias)
    : Layer(std::move(context)),
      options_(options),
      weight_(std::move(weight)),
      bias_(std::move(bias)),
      running_mean_(running_statistic(name(), "running_mean", 0.f)),
      running_var_(running_statistic(name(), "running_var", 1.f)) {}

std::vector<Param*> BatchNormLayer::params() {
  std::vector<Param*> out;
  if (weight_) out = {weight_.get(), bias_.get()};
  out.push_back(&running_mean_);
  out.push_back(&running_var_);
  return out;
}

void BatchNormLayer::ensure_params(int64_t channels) {
  if (running_mean_.data.shape() == Shape{channels}) return;
  std::mt19937_64 unused;  // every initialiser here is a constant
  for (Param* p : params()) {
    p->data = Tensor({channels});
    if (!p->frozen()) p->grad = Tensor({channels});
    initialise_param(*p, unused);
  }
}

Shape BatchNormLayer::reshape(const std::vector<Shape>& input_shapes) {
  expect_inputs(input_shapes, 1);
  const Shape& x = input_shapes[0];
  if (x[1] < 1) fail_shape("expects at least one channel", input_shapes);
  ensure_params(x[1]);
  geometry_ = {x[0], x[1], x[2] * x[3]};
  flops_ = 2.0 * static_cast<double>(shape_numel(x));
  return x;
}

std::vector<float> BatchNormLayer::gamma() const {
  if (weight_) return {weight_->data.data(), weight_->data.data() + weight_->data.numel()};
  return std::vector<float>(static_cast<size_t>(geometry_.channels), 1.f);
}

std::vector<float> BatchNormLayer::beta() const {
  if (bias_) return {bias_->data.data(), bias_->data.data() + bias_->data.numel()};
  return std::vector<float>(static_cast<size_t>(geometry_.channels), 0.f);
}

void BatchNormLayer::select_statistics(const Tensor& x, Mode mode) {
  const size_t channels = static_cast<size_t>(geometry_.channels);
  mean_.resize(channels);
  invstd_.resize(channels);
  batch_statistics_ = mode == Mode::train && !options_.frozen;
  if (!batch_statistics_) {
    for (size_t c = 0; c < channels; ++c) {
      mean_[c] = running_mean_.data[c];
      invstd_[c] = static_cast<float>(1.0 / std::sqrt(static_cast<double>(running_var_.data[c]) + options_.eps));
    }
    return;
  }
  const int64_t count = geometry_.per_channel();
  if (count < 2)
    fail_shape("expected more than 1 value per channel when training (N*H*W = " + std::to_string(count) + ")",
               {x.shape()});
  std::vector<double> mean(channels), var(channels);
  cpu::channel_moments(geometry_, x.data(), mean.data(), var.data());
  const double m = options_.momentum, unbiased = static_cast<double>(count) / static_cast<double>(count - 1);
  for (size_t c = 0; c < channels; ++c) {
    mean_[c] = static_cast<float>(mean[c]);
    invstd_[c] = static_cast<float>(1.0 / std::sqrt(var[c] + options_.eps));
    float& running_mean = running_mean_.data[c];
    float& running_var = running_var_.data[c];
    running_mean = static_cast<float>((1 - m) * running_mean + m * mean[c]);
    running_var = static_cast<float>((1 - m) * running_var + m * var[c] * unbiased);
  }
}

void BatchNormLayer::forward(const std::vector<const Tensor*>& inputs, Tensor& output, Mode mode) {
  select_statistics(*inputs[0], mode);
  const std::vector<float> g = gamma();
  const size_t channels = g.size();
  scale_.resize(channels);
  for (size_t c = 0; c < channels; ++c) scale_[c] = g[c] * invstd_[c];
  cpu::batch_norm_forward(geometry_, inputs[0]->data(), mean_.data(), scale_.data(), beta().data(), output.data(),
                          rectify_);
}

void BatchNormLayer::backward(const std::vector<const Tensor*>& inputs, const Tensor&, const Tensor& output_grad,
                              const std::vector<Tensor*>& input_grads) {
  Tensor* dx = input_grads[0];
  const size_t channels = mean_.size();
  std::vector<double> sum_dy(channels), dot(channels);
  const bool trains_gamma = weight_ && !weight_->frozen(), trains_beta = bias_ && !bias_->frozen();
  if (batch_statistics_ || trains_gamma || trains_beta)
    cpu::channel_gradient_sums(geometry_, inputs[0]->data(), output_grad.data(), mean_.data(), sum_dy.data(),
                               dot.data());
  // dgamma = sum dy * xhat = dot * invstd, dbeta = sum dy
  for (size_t c = 0; c < channels; ++c) {
    if (trains_gamma) weight_->grad[c] += static_cast<float>(dot[c] * invstd_[c]);
    if (trains_beta) bias_->grad[c] += static_cast<float>(sum_dy[c]);
  }
  if (!dx) return;
  if (batch_statistics_) {
    cpu::batch_norm_backward_data(geometry_, inputs[0]->data(), output_grad.data(), mean_.data(), invstd_.data(),
                                  scale_.data(), sum_dy.data(), dot.data(), dx->data());
  } else {
    cpu::channel_scale_accumulate(geometry_, output_grad.data(), scale_.data(), dx->data());
  }
}

void BatchNormLayer::emit_onnx(OnnxEmitter& onnx, const std::vector<std::string>& inputs,
                               const std::string& output) const {
  const Shape channels{geometry_.channels};
  // without affine params, constant ones and zeros
  const std::string scale = weight_ ? onnx.float_tensor(weight_->name, weight_->data)
                                    : onnx.float_tensor(name() + "/scale", channels, gamma().data());
  const std::string shift = bias_ ? onnx.float_tensor(bias_->name, bias_->data)
                                  : onnx.float_tensor(name() + "/shift", channels, beta().data());
  const std::string mean = onnx.float_tensor(running_mean_.name, running_mean_.data);
  const std::string var = onnx.float_tensor(running_var_.name, running_var_.data);
  // opset 13's BatchNormalization (version 9) in its inference form: the running statistics
  onnx.node("BatchNormalization", name(), {inputs[0], scale, shift, mean, var}, output,
            {{"epsilon", static_cast<float>(options_.eps)}});
}

void BatchNormLayer::fold_into_conv(Tensor& conv_weight, Tensor& conv_bias) const {
  const int64_t channels = geometry_.channels;
  if (conv_weight.ndim() < 1 || conv_weight.dim(0) != channels || conv_bias.shape() != Shape{channels})
    throw Error("layer '" + name() + "' (batch_norm): cannot fold " + std::to_string(channels) +
                " channels into a convolution with weight " + shape_str(conv_weight.shape()) + " and bias " +
                shape_str(conv_bias.shape()));
  const std::vector<float> g = gamma(), b = beta();
  cpu::fold_batch_norm(channels, conv_weight.numel() / channels, g.data(), b.data(), running_mean_.data.data(),
                       running_var_.data.data(), options_.eps, conv_weight.data(), conv_bias.data());
}

std::unique_ptr<Layer> make_batch_norm_layer(LayerContext context, SpecReader& reader) {
  BatchNormOptions options;
  options.eps = reader.get_number("eps", 1e-5, 0.0);
  if (!(options.eps > 0)) reader.fail("eps", "must be > 0");
  options.momentum = reader.get_number("momentum", 0.1, 0.0, 1.0);
  options.frozen = reader.get_choice("mode", {"train", "frozen"}, "train") == "frozen";
  options.affine = reader.get_bool("affine", true);
  std::unique_ptr<Param> weight, bias;
  if (options.affine) {
    // a frozen layer keeps gamma and beta fixed: lr_mult 0, which the spec may only repeat
    const float lr = options.frozen ? 0.f : 1.f;
    weight = std::make_unique<Param>(
        make_param(context.name, "weight", {0}, {{"type", "constant"}, {"value", 1.0}}, reader, "", lr, 0.f));
    bias = std::make_unique<Param>(make_param(context.name, "bias", {0}, {{"type", "zero"}}, reader, "bias_", lr, 0.f));
    weight->learned_state = bias->learned_state = true;
    if (options.frozen)
      for (const char* key : {"lr_mult", "bias_lr_mult"})
        if (reader.has(key) && reader.get_number(key, 0.0) != 0.0)
          reader.fail(key, "must be 0 in mode \"frozen\" (gamma and beta stay fixed)");
  }
  return std::make_unique<BatchNormLayer>(std::move(context), options, std::move(weight), std::move(bias));
}

// Caffe's BatchNorm stores the running sums mean*s and var*s and their
// weight s (blobs 0, 1, 2: Caffe accumulates with moving_average_fraction
// and divides by s when it normalises), and has no affine part: the Scale
// the importer folds in after it (layer.folded) gives gamma and beta.
CaffeMapped batch_norm_from_caffe(CaffeLayer& layer) {
  layer.expect_bottoms(1);
  SpecReader q = layer.param("batch_norm_param");
  const double eps = q.get_number("eps", 1e-5, 0.0);
  if (!(eps > 0)) q.fail("eps", "must be > 0");
  const double fraction = q.get_number("moving_average_fraction", 0.999, 0.0, 1.0);
  // unset: batch statistics in TRAIN, running ones in TEST, as fcn's "train"
  bool frozen = false;
  if (q.has("use_global_stats")) {
    frozen = q.get_bool("use_global_stats", false);
    if (!frozen)
      q.fail("use_global_stats", "is false: Caffe then normalises by the batch's statistics at test time too; "
                                 "fcn's batch_norm uses the running statistics at test time");
  }
  layer.finish(q);
  const int64_t channels = layer.bottom_shapes.at(0).at(1);
  CaffeMapped mapped{caffe_layer_spec(layer, "batch_norm"), {}};
  mapped.spec["eps"] = eps;
  mapped.spec["momentum"] = 1.0 - fraction;  // running = fraction*running + (1-fraction)*batch
  mapped.spec["mode"] = frozen ? "frozen" : "train";
  mapped.spec["affine"] = !layer.folded.empty();
  if (!layer.blobs.empty()) {
    if (layer.blobs.size() != 3) layer.fail("has " + std::to_string(layer.blobs.size()) + " blobs, expected 3");
    const float weight_sum = layer.blobs[2].numel() > 0 ? layer.blobs[2].data()[0] : 0.f;
    const float factor = weight_sum == 0.f ? 0.f : 1.f / weight_sum;  // Caffe's own rule for s = 0
    for (const auto& [index, suffix] : {std::pair<size_t, const char*>{0, "running_mean"}, {1, "running_var"}}) {
      Tensor statistic = layer.take_blob(index, {channels});
      for (int64_t c = 0; c < statistic.numel(); ++c) statistic.data()[c] *= factor;
      mapped.weights[layer.name + "." + suffix] = std::move(statistic);
    }
  }
  if (!layer.folded.empty()) {
    CaffeLayer& scale = layer.folded.front();
    SpecReader s = scale.param("scale_param");
    if (caffe_axis(scale, s, "axis", 1) != 1) s.fail("axis", "must be 1 (channels) for the Scale after a BatchNorm");
    if (s.get_int("num_axes", 1) != 1) s.fail("num_axes", "must be 1 (channels) for the Scale after a BatchNorm");
    const bool bias = s.get_bool("bias_term", false);
    s.accept("filler");  // initialisers: the file's blobs replace them
    s.accept("bias_filler");
    scale.finish(s);
    if (!scale.blobs.empty()) {
      if (scale.blobs.size() != (bias ? 2u : 1u))
        scale.fail("has " + std::to_string(scale.blobs.size()) + " blobs, expected " + (bias ? "2" : "1"));
      mapped.weights[layer.name + ".weight"] = scale.take_blob(0, {channels});
      if (bias) {
        mapped.weights[layer.name + ".bias"] = scale.take_blob(1, {channels});
      } else {
        Tensor zero({channels});
        zero.fill(0.f);
        mapped.weights[layer.name + ".bias"] = std::move(zero);
      }
    }
  }
  return mapped;
}

}  // namespace fcn
