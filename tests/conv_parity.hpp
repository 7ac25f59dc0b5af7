#pragma once
// Shared by test_conv and test_deconv: PyTorch parity from the fixtures of
// tools/fixtures_conv.py (x, weight, bias, grad_out -> y, grad_x,
// grad_weight, grad_bias; the layer spec in the metadata), and the output
// size tables measured with PyTorch.
#include <catch2/catch.hpp>

#include <string>

#include "fcn/io/safetensors.hpp"
#include "gradcheck.hpp"

namespace fcn::testing {

inline SafetensorsFile read_conv_fixture(const std::string& file) {
  return read_safetensors(std::string(FCN_SOURCE_DIR) + "/tests/fixtures/" + file);
}

// |actual - expected| <= 1e-4 * max(1, |expected|) elementwise, same shape.
inline void require_close_to_torch(const std::string& what, const Tensor& actual, const Tensor& expected) {
  INFO(what << ": " << shape_str(actual.shape()) << " vs PyTorch " << shape_str(expected.shape()));
  REQUIRE(actual.shape() == expected.shape());
  for (int64_t i = 0; i < actual.numel(); ++i) {
    INFO(what << "[" << i << "]");
    REQUIRE(actual[i] == Approx(expected[i]).epsilon(1e-4).margin(1e-4));
  }
}

// Builds the fixture's layer, loads its weight and bias, runs forward and
// backward (into zeroed gradients) and compares everything with PyTorch.
inline void check_conv_parity(const std::string& file) {
  INFO("fixture " << file);
  SafetensorsFile fixture = read_conv_fixture(file);
  auto get = [&](const std::string& key) -> const Tensor& { return fixture.tensors.at(key); };
  auto layer = make_test_layer(json::parse(fixture.metadata.at("spec")));
  const Tensor& x = get("x");
  Tensor y(layer->reshape({x.shape()}));
  const auto params = layer->params();
  REQUIRE(params.size() == (fixture.tensors.count("bias") ? 2u : 1u));
  for (Param* p : params) {
    const Tensor& value = get(p->name == layer->name() + ".weight" ? "weight" : "bias");
    REQUIRE(p->data.shape() == value.shape());
    p->data = value;
    p->grad.zero();
  }
  layer->forward({&x}, y, Mode::test);
  require_close_to_torch("y", y, get("y"));

  Tensor x_grad(x.shape());
  layer->backward({&x}, y, get("grad_out"), {&x_grad});
  require_close_to_torch("grad_x", x_grad, get("grad_x"));
  require_close_to_torch("grad_weight", params[0]->grad, get("grad_weight"));
  if (params.size() == 2) require_close_to_torch("grad_bias", params[1]->grad, get("grad_bias"));
}

// Rows (in, kernel, stride, pad, dilation, output_padding, out) of a size table.
template <typename SizeFn>
void check_size_table(const std::string& file, SizeFn size_fn) {
  const Tensor rows = read_conv_fixture(file).tensors.at("rows");  // [count, 7]
  REQUIRE(rows.dim(0) > 100);
  for (int64_t r = 0; r < rows.dim(0); ++r) {
    const float* v = rows.data() + r * 7;
    auto i = [&](int k) { return static_cast<int64_t>(v[k]); };
    INFO("in " << i(0) << " kernel " << i(1) << " stride " << i(2) << " pad " << i(3) << " dilation " << i(4)
               << " output_padding " << i(5));
    REQUIRE(size_fn(i(0), i(1), i(2), i(3), i(4), i(5)) == i(6));
  }
}

// {"name": name, "type": type, "inputs": ["x"]} plus the options.
inline json layer_spec(const std::string& type, const json& options, const std::string& name = "c") {
  json spec = {{"name", name}, {"type", type}, {"inputs", {"x"}}};
  spec.update(options);
  return spec;
}

}  // namespace fcn::testing
