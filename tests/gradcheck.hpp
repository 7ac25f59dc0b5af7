#pragma once
// The one numeric gradient checker every layer test uses (after Caffe's
// test_gradient_check_util.hpp).
//
// objective = sum_i output[i] * r[i] with fixed random weights r, accumulated
// in double. The analytic gradient comes from one backward() with
// output_grad = r into gradients PRE-FILLED with random values, which are
// then subtracted again: this checks the accumulate (+=) rule too. Numeric
// gradients are central differences (f(x+h) - f(x-h)) / 2h per element.
// Inputs with kinks (ReLU at 0, max-pool ties) must be generated away from
// them by the caller (see random_tensor's min_gap).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>
#include <sstream>
#include <vector>

#include "fcn/core/layer.hpp"
#include "fcn/layers/registry.hpp"

namespace fcn::testing {

// A [1, 3, h, w] network input of normal(0, 50) values, about the spread of
// mean-subtracted pixels (whole-net tests: import, export).
inline Tensor random_image(int64_t h, int64_t w, uint64_t seed) {
  Tensor image({1, 3, h, w});
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.f, 50.f);
  for (int64_t i = 0; i < image.numel(); ++i) image.data()[i] = normal(rng);
  return image;
}

// Uniform values in [lo, hi]; with min_gap > 0 the values are additionally
// kept at least min_gap apart from each other and from zero (for kinks).
inline Tensor random_tensor(const Shape& shape, std::mt19937_64& rng, float lo = -1.f, float hi = 1.f,
                            float min_gap = 0.f) {
  Tensor t(shape);
  std::uniform_real_distribution<float> uniform(lo, hi);
  if (min_gap <= 0.f) {
    for (int64_t i = 0; i < t.numel(); ++i) t[i] = uniform(rng);
    return t;
  }
  // a shuffled ladder of distinct values, none within min_gap of zero
  std::vector<float> values(t.numel());
  for (int64_t i = 0; i < t.numel(); ++i) {
    float v = (static_cast<float>(i) - t.numel() / 2.f) * 2.f * min_gap;
    if (std::fabs(v) < min_gap) v = v < 0 ? v - min_gap : v + min_gap;
    values[i] = v;
  }
  std::shuffle(values.begin(), values.end(), rng);
  for (int64_t i = 0; i < t.numel(); ++i) t[i] = values[i];
  return t;
}

struct GradCheckOptions {
  double step = 1e-2;
  double tolerance = 2e-3;  // |analytic - numeric| <= tolerance * max(1, |analytic|, |numeric|)
  int max_checks_per_tensor = 60;  // sampled positions per input/param (all when smaller)
  std::vector<size_t> skip_inputs;  // inputs without gradient (labels)
  Mode mode = Mode::test;
  uint64_t seed = 7;
};

inline double weighted_objective(Layer& layer, const std::vector<const Tensor*>& inputs, Tensor& output,
                                 const Tensor& weights, Mode mode, uint64_t rng_seed) {
  std::mt19937_64 rng(rng_seed);  // same draws (dropout masks) on every evaluation
  layer.set_rng(&rng);
  layer.forward(inputs, output, mode);
  layer.set_rng(nullptr);
  double total = 0;
  for (int64_t i = 0; i < output.numel(); ++i) total += static_cast<double>(output[i]) * weights[i];
  return total;
}

inline std::vector<int64_t> sample_positions(int64_t numel, int max_count, std::mt19937_64& rng) {
  std::vector<int64_t> positions;
  if (numel <= max_count) {
    for (int64_t i = 0; i < numel; ++i) positions.push_back(i);
  } else {
    std::uniform_int_distribution<int64_t> pick(0, numel - 1);
    for (int i = 0; i < max_count; ++i) positions.push_back(pick(rng));
  }
  return positions;
}

inline void compare_gradient(const std::string& what, int64_t index, double analytic, double numeric,
                             double tolerance) {
  const double scale = std::max({1.0, std::fabs(analytic), std::fabs(numeric)});
  if (std::fabs(analytic - numeric) > tolerance * scale) {
    std::ostringstream msg;
    msg << what << "[" << index << "]: analytic " << analytic << " vs numeric " << numeric;
    FAIL(msg.str());
  }
}

// Checks d(objective)/d(input) for every input not skipped and d/d(param) for
// every trainable param. The layer must already be constructed; it is
// reshaped here for the inputs' shapes.
inline void check_gradients(Layer& layer, std::vector<Tensor>& inputs, const GradCheckOptions& options = {}) {
  std::mt19937_64 rng(options.seed);
  std::vector<Shape> shapes;
  std::vector<const Tensor*> input_ptrs;
  for (auto& t : inputs) {
    shapes.push_back(t.shape());
    input_ptrs.push_back(&t);
  }
  Tensor output;
  output.reshape(layer.reshape(shapes));
  const Tensor weights = random_tensor(output.shape(), rng);
  const uint64_t rng_seed = options.seed + 1;
  weighted_objective(layer, input_ptrs, output, weights, options.mode, rng_seed);

  auto skipped = [&](size_t i) {
    return std::find(options.skip_inputs.begin(), options.skip_inputs.end(), i) != options.skip_inputs.end();
  };
  // Analytic gradients, accumulated onto random pre-filled values.
  std::vector<Tensor> input_grads(inputs.size()), prefill_inputs(inputs.size());
  std::vector<Tensor*> input_grad_ptrs(inputs.size(), nullptr);
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (skipped(i)) continue;
    prefill_inputs[i] = random_tensor(inputs[i].shape(), rng);
    input_grads[i] = prefill_inputs[i];
    input_grad_ptrs[i] = &input_grads[i];
  }
  std::vector<Tensor> prefill_params;
  for (Param* p : layer.params()) {
    if (p->frozen()) {
      prefill_params.emplace_back();
      continue;
    }
    prefill_params.push_back(random_tensor(p->data.shape(), rng));
    p->grad = prefill_params.back();
  }
  std::mt19937_64 backward_rng(rng_seed);
  layer.set_rng(&backward_rng);
  layer.backward(input_ptrs, output, weights, input_grad_ptrs);
  layer.set_rng(nullptr);

  auto numeric_derivative = [&](float& value) {
    const float saved = value;
    value = static_cast<float>(saved + options.step);
    const double plus = weighted_objective(layer, input_ptrs, output, weights, options.mode, rng_seed);
    value = static_cast<float>(saved - options.step);
    const double minus = weighted_objective(layer, input_ptrs, output, weights, options.mode, rng_seed);
    value = saved;
    return (plus - minus) / (2 * options.step);
  };
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (skipped(i)) continue;
    for (int64_t k : sample_positions(inputs[i].numel(), options.max_checks_per_tensor, rng)) {
      const double analytic = static_cast<double>(input_grads[i][k]) - prefill_inputs[i][k];
      compare_gradient(layer.name() + " input " + std::to_string(i), k, analytic, numeric_derivative(inputs[i][k]),
                       options.tolerance);
    }
  }
  const auto params = layer.params();
  for (size_t pi = 0; pi < params.size(); ++pi) {
    Param* p = params[pi];
    if (p->frozen()) {
      CHECK(p->grad.numel() == 0);  // frozen params never get a gradient
      continue;
    }
    for (int64_t k : sample_positions(p->data.numel(), options.max_checks_per_tensor, rng)) {
      const double analytic = static_cast<double>(p->grad[k]) - prefill_params[pi][k];
      compare_gradient(p->name, k, analytic, numeric_derivative(p->data[k]), options.tolerance);
    }
  }
}

// Builds a layer from a JSON spec for tests.
inline std::unique_ptr<Layer> make_test_layer(const json& spec, uint64_t init_seed = 3) {
  auto layer = create_layer(spec, "test");
  std::mt19937_64 rng(init_seed);
  layer->init_params(rng);
  return layer;
}

}  // namespace fcn::testing
