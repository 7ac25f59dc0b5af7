#include "fcn/layers/dropout.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "fcn/cpu/elementwise.hpp"
#include "fcn/core/error.hpp"
#include "fcn/layers/registry.hpp"

namespace fcn {

DropoutLayer::DropoutLayer(LayerContext context, double ratio) : Layer(std::move(context)), ratio_(ratio) {}

Shape DropoutLayer::reshape(const std::vector<Shape>& input_shapes) {
  expect_inputs(input_shapes, 1, 0);
  return input_shapes[0];
}

namespace {

// mask[i] = keep_scale where draw i's top 53 bits are >= keep_from, else 0,
// the draws taken from rng in order. They are drawn a buffer at a time, then
// compared: one loop doing both ran ~4x slower (FCN's fc6 mask, 1 M units on
// a Zen 5: 6.6 -> 1.5 ms), its store of the kept value a branch on a random
// bit and the generator's state kept in memory across the stores.
void draw_units(std::mt19937_64& rng, uint64_t keep_from, float keep_scale, float* mask, int64_t count) {
  constexpr int64_t kBuffered = 1024;
  uint64_t draws[kBuffered];
  for (int64_t first = 0; first < count; first += kBuffered) {
    const int64_t n = std::min(kBuffered, count - first);
    for (int64_t i = 0; i < n; ++i) draws[i] = rng();
    for (int64_t i = 0; i < n; ++i) mask[first + i] = (draws[i] >> 11) >= keep_from ? keep_scale : 0.f;
  }
}

}  // namespace

void DropoutLayer::draw_mask(int64_t count, int64_t batch) {
  if (!rng_) throw Error("layer '" + name() + "' (dropout): no random generator set for train mode");
  const bool per_image = image_rngs_ && !image_rngs_->empty();
  if (per_image && static_cast<int64_t>(image_rngs_->size()) != batch)
    throw Error("layer '" + name() + "' (dropout): " + std::to_string(image_rngs_->size()) +
                " per-image generators for a batch of " + std::to_string(batch));
  const float keep_scale = static_cast<float>(1.0 / (1.0 - ratio_));
  mask_.reshape({count});
  if (count == 0) return;
  // A unit is kept where u >= ratio, u = k 2^-53 uniform in [0, 1) from a
  // draw's top 53 bits k: where k >= ceil(ratio 2^53), exactly (ratio 2^53
  // is a double, k an integer below 2^53). The integer compare takes a
  // quarter off the draw, which runs on one thread.
  const uint64_t keep_from = static_cast<uint64_t>(std::ceil(ratio_ * 0x1.0p53));
  const int64_t per = per_image ? count / batch : count;
  for (int64_t n = 0; n < count / per; ++n) {
    std::mt19937_64& rng = per_image ? (*image_rngs_)[n] : *rng_;
    draw_units(rng, keep_from, keep_scale, mask_.data() + n * per, per);
  }
}

void DropoutLayer::forward(const std::vector<const Tensor*>& inputs, Tensor& output, Mode mode) {
  const Tensor& x = *inputs[0];
  mask_active_ = mode == Mode::train;
  if (!mask_active_) {
    if (output.data() != x.data()) std::memcpy(output.data(), x.data(), sizeof(float) * x.numel());
    return;
  }
  draw_mask(x.numel(), x.ndim() > 0 ? x.shape()[0] : 1);
  cpu::multiply(x.data(), mask_.data(), output.data(), x.numel());
}

void DropoutLayer::backward(const std::vector<const Tensor*>& inputs, const Tensor& output, const Tensor& output_grad,
                            const std::vector<Tensor*>& input_grads) {
  if (!input_grads[0]) return;
  // dx += dy * mask (dx += dy after a test-mode forward)
  if (mask_active_)
    cpu::multiply_accumulate(output_grad.data(), mask_.data(), input_grads[0]->data(), output_grad.numel());
  else
    cpu::axpy(output_grad.data(), 1.f, input_grads[0]->data(), output_grad.numel());
}

std::unique_ptr<Layer> make_dropout_layer(LayerContext context, SpecReader& reader) {
  const double ratio = reader.get_number("ratio", 0.5, 0.0);
  if (ratio >= 1.0) reader.fail("ratio", "must be < 1, got " + reader.raw("ratio").dump());
  return std::make_unique<DropoutLayer>(std::move(context), ratio);
}

// Caffe's dropout scales by 1 / (1 - ratio) in training, as fcn's.
CaffeMapped dropout_from_caffe(CaffeLayer& layer) {
  layer.expect_bottoms(1);
  SpecReader q = layer.param("dropout_param");
  const double ratio = q.get_number("dropout_ratio", 0.5);
  layer.finish(q);
  CaffeMapped mapped{caffe_layer_spec(layer, "dropout"), {}};
  mapped.spec["ratio"] = ratio;
  return mapped;
}

}  // namespace fcn
