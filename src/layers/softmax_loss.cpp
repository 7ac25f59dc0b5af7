#include "fcn/layers/softmax_loss.hpp"

#include <cmath>
#include <sstream>

#include "fcn/cpu/softmax.hpp"
#include "fcn/core/error.hpp"
#include "fcn/layers/registry.hpp"

namespace fcn {

SoftmaxLossLayer::SoftmaxLossLayer(LayerContext context, int64_t ignore_label, LossNormalization normalize)
    : Layer(std::move(context)), ignore_label_(ignore_label), normalize_(normalize) {}

Shape SoftmaxLossLayer::reshape(const std::vector<Shape>& input_shapes) {
  expect_inputs(input_shapes, 2);
  const Shape& score = input_shapes[0];
  const Shape& label = input_shapes[1];
  if (label[0] != score[0] || label[1] != 1 || label[2] != score[2] || label[3] != score[3])
    fail_shape("label must be [N, 1, H, W] with score's N, H, W", input_shapes);
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

double SoftmaxLossLayer::normalizer(int64_t valid, int64_t batch) const {
  switch (normalize_) {
    case LossNormalization::valid:
      return static_cast<double>(valid);
    case LossNormalization::batch:
      return static_cast<double>(batch);
    case LossNormalization::none:
      break;
  }
  return 1.0;
}

namespace {

cpu::SoftmaxLossGeometry geometry(const Shape& score, int64_t ignore_label) {
  cpu::SoftmaxLossGeometry g;
  g.n = score[0];
  g.classes = score[1];
  g.pixels = score[2] * score[3];
  g.ignore_label = ignore_label;
  return g;
}

}  // namespace

void SoftmaxLossLayer::forward(const std::vector<const Tensor*>& inputs, Tensor& output, Mode mode) {
  const Tensor& score = *inputs[0];
  const Tensor& label = *inputs[1];
  check_labels(label, score.c());
  const auto sum =
      cpu::softmax_loss_forward(geometry(score.shape(), ignore_label_), score.data(), label.data(), prob_.data());
  norm_ = normalizer(sum.valid, score.n());
  output[0] = norm_ > 0 ? static_cast<float>(sum.loss / norm_) : 0.f;
}

void SoftmaxLossLayer::backward(const std::vector<const Tensor*>& inputs, const Tensor& output,
                                const Tensor& output_grad, const std::vector<Tensor*>& input_grads) {
  if (!input_grads[0] || norm_ <= 0) return;
  const float scale = static_cast<float>(output_grad[0] / norm_);
  cpu::softmax_loss_backward_accumulate(geometry(prob_.shape(), ignore_label_), prob_.data(), inputs[1]->data(), scale,
                                        input_grads[0]->data());
}

std::unique_ptr<Layer> make_softmax_loss_layer(LayerContext context, SpecReader& reader) {
  const int64_t ignore_label = reader.get_int("ignore_label", 255);
  const std::string normalize = reader.get_choice("normalize", {"valid", "batch", "none"}, "valid");
  const LossNormalization mode = normalize == "valid"   ? LossNormalization::valid
                                 : normalize == "batch" ? LossNormalization::batch
                                                        : LossNormalization::none;
  return std::make_unique<SoftmaxLossLayer>(std::move(context), ignore_label, mode);
}

}  // namespace fcn
