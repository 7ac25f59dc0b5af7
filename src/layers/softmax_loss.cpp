#include "fcn/layers/softmax_loss.hpp"

#include <cmath>
#include <sstream>

#include "fcn/cpu/softmax.hpp"
#include "fcn/core/error.hpp"
#include "fcn/layers/registry.hpp"

namespace fcn {

SoftmaxLossLayer::SoftmaxLossLayer(LayerContext context, int64_t ignore_label, LossNormalization normalize,
                                   std::vector<float> class_weights, double loss_weight)
    : Layer(std::move(context)), ignore_label_(ignore_label), normalize_(normalize),
      class_weights_(std::move(class_weights)), loss_weight_(loss_weight) {}

Shape SoftmaxLossLayer::reshape(const std::vector<Shape>& input_shapes) {
  expect_inputs(input_shapes, 2);
  const Shape& score = input_shapes[0];
  const Shape& label = input_shapes[1];
  if (label[0] != score[0] || label[1] != 1 || label[2] != score[2] || label[3] != score[3])
    fail_shape("label must be [N, 1, H, W] with score's N, H, W", input_shapes);
  if (!class_weights_.empty() && static_cast<int64_t>(class_weights_.size()) != score[1])
    fail_shape("class_weights has " + std::to_string(class_weights_.size()) + " entries but the score has " +
                   std::to_string(score[1]) + " classes",
               input_shapes);
  prob_.reshape(score);
  return {};
}

void SoftmaxLossLayer::check_labels(const Tensor& label, int64_t classes) const {
  for (int64_t i = 0; i < label.numel(); ++i) {
    const float v = label[i];
    const bool is_class = v >= 0.f && v < static_cast<float>(classes) && v == std::floor(v);
    if (is_class || v == static_cast<float>(ignore_label_)) continue;
    std::ostringstream msg;
    msg << "layer '" << name() << "' (softmax_loss): label value " << v << " at index " << i
        << " is neither a class in [0, " << classes << ") nor the ignore label " << ignore_label_;
    throw Error(msg.str());
  }
}

double SoftmaxLossLayer::normalizer(double valid_weight, int64_t batch) const {
  switch (normalize_) {
    case LossNormalization::valid:
      return valid_weight;
    case LossNormalization::batch:
    case LossNormalization::none:
      break;
  }
  return static_cast<double>(batch);
}

namespace {

cpu::SoftmaxLossGeometry geometry(const Shape& score, int64_t ignore_label, const std::vector<float>& class_weights) {
  cpu::SoftmaxLossGeometry g;
  g.n = score[0];
  g.classes = score[1];
  g.pixels = score[2] * score[3];
  g.ignore_label = ignore_label;
  g.class_weights = class_weights.empty() ? nullptr : class_weights.data();
  return g;
}

std::vector<float> read_class_weights(SpecReader& reader) {
  reader.accept("class_weights");  // known to "did you mean" even when absent
  if (!reader.has("class_weights")) return {};
  std::vector<float> weights;
  for (double w : reader.get_number_list("class_weights", {})) {
    if (!std::isfinite(w) || w < 0)
      reader.fail("class_weights", "every class weight must be a finite number >= 0 (got " + std::to_string(w) + ")");
    weights.push_back(static_cast<float>(w));
  }
  if (weights.empty()) reader.fail("class_weights", "needs one weight per class");
  return weights;
}

}  // namespace

void SoftmaxLossLayer::forward(const std::vector<const Tensor*>& inputs, Tensor& output, Mode mode) {
  const Tensor& score = *inputs[0];
  const Tensor& label = *inputs[1];
  check_labels(label, score.c());
  const auto sum =
      cpu::softmax_loss_forward(geometry(score.shape(), ignore_label_, class_weights_), score.data(), label.data(),
                                prob_.data());
  norm_ = normalizer(sum.weight, score.n());
  output[0] = norm_ > 0 ? static_cast<float>(loss_weight_ * sum.loss / norm_) : 0.f;
}

void SoftmaxLossLayer::backward(const std::vector<const Tensor*>& inputs, const Tensor& output,
                                const Tensor& output_grad, const std::vector<Tensor*>& input_grads) {
  if (!input_grads[0] || norm_ <= 0) return;
  const float scale = static_cast<float>(output_grad[0] * loss_weight_ / norm_);
  cpu::softmax_loss_backward_accumulate(geometry(prob_.shape(), ignore_label_, class_weights_), prob_.data(),
                                        inputs[1]->data(), scale, input_grads[0]->data());
}

std::unique_ptr<Layer> make_softmax_loss_layer(LayerContext context, SpecReader& reader) {
  const int64_t ignore_label = reader.get_int("ignore_label", 255);
  const std::string normalize = reader.get_choice("normalize", {"valid", "batch", "none"}, "valid");
  const LossNormalization mode = normalize == "valid"   ? LossNormalization::valid
                                 : normalize == "batch" ? LossNormalization::batch
                                                        : LossNormalization::none;
  std::vector<float> class_weights = read_class_weights(reader);
  const double loss_weight = reader.get_number("loss_weight", 1.0, 0.0);
  return std::make_unique<SoftmaxLossLayer>(std::move(context), ignore_label, mode, std::move(class_weights),
                                            loss_weight);
}

CaffeMapped softmax_loss_from_caffe(CaffeLayer& layer) {
  layer.expect_bottoms(2);
  SpecReader loss = layer.param("loss_param");
  // without an ignore_label Caffe ignores nothing; 255 is VOC's void label, the reference's setting
  const int64_t ignore = loss.get_int("ignore_label", 255);
  std::string normalize = "valid";
  if (loss.has("normalization")) {
    const std::string mode = loss.get_choice("normalization", {"FULL", "VALID", "BATCH_SIZE", "NONE"}, "VALID");
    if (mode == "FULL") loss.fail("normalization", "is FULL (ignored pixels counted); fcn normalises by VALID, BATCH_SIZE or NONE");
    normalize = mode == "BATCH_SIZE" ? "batch" : mode == "NONE" ? "none" : "valid";
    loss.accept("normalize");  // Caffe ignores the deprecated field when normalization is set
  } else if (!loss.get_bool("normalize", true)) {
    normalize = "batch";  // Caffe's meaning of the deprecated normalize: false
  }
  layer.finish(loss);
  SpecReader softmax = layer.param("softmax_param");
  if (caffe_axis(layer, softmax, "axis", 1) != 1) softmax.fail("axis", "is not the channel axis; fcn's softmax runs over C");
  softmax.accept("engine");  // Caffe's or cuDNN's softmax: the same function
  layer.finish(softmax);
  CaffeMapped mapped{caffe_layer_spec(layer, "softmax_loss"), {}};
  mapped.spec.update({{"ignore_label", ignore}, {"normalize", normalize}});
  // Caffe's loss_weight (one top; unset: 1) scales the loss and its gradient, as fcn's option does
  if (layer.loss_weights.size() > 1) layer.fail("loss_weight: has " + std::to_string(layer.loss_weights.size()) +
                                                " values for the one top");
  if (!layer.loss_weights.empty() && layer.loss_weights[0] < 0.f) layer.fail("loss_weight: is negative");
  if (!layer.loss_weights.empty() && layer.loss_weights[0] != 1.f) mapped.spec["loss_weight"] = layer.loss_weights[0];
  return mapped;
}

}  // namespace fcn
