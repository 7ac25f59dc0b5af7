#pragma once
// PyTorch parity of one layer type from a fixture written by
// tools/fixtures_layers.py: for every case, builds the layer from the stored
// spec, loads the stored param values (when the case has them), runs
// forward in the case's mode (test unless it says "train") and backward
// (into zeroed gradients) on the stored inputs and output gradient, and
// compares output, input gradients, the gradients of the trainable params
// and the param values after forward (running statistics, when stored) with
// PyTorch's at relative tolerance 1e-4.
#include <catch2/catch.hpp>
#include <string>

#include "fcn/io/safetensors.hpp"
#include "gradcheck.hpp"

namespace fcn::testing {

inline std::string fixture_path(const std::string& file) {
  return std::string(FCN_SOURCE_DIR) + "/tests/fixtures/" + file;
}

// Values only: the numpy writer stores a 0-d tensor (a loss) as shape [1].
inline void check_close(const std::string& what, const Tensor& actual, const Tensor& expected) {
  INFO(what << ": " << shape_str(actual.shape()) << " vs PyTorch " << shape_str(expected.shape()));
  REQUIRE(actual.numel() == expected.numel());
  for (int64_t i = 0; i < actual.numel(); ++i) {
    INFO(what << "[" << i << "]");
    REQUIRE(actual[i] == Approx(expected[i]).epsilon(1e-4).margin(1e-6));
  }
}

inline void check_parity(const std::string& file) {
  SafetensorsFile fixture = read_safetensors(fixture_path(file));
  const json cases = json::parse(fixture.metadata.at("cases"));
  REQUIRE(!cases.empty());
  for (const json& c : cases) {
    const std::string name = c.at("name").get<std::string>();
    INFO("case " << name);
    auto get = [&](const std::string& key) -> Tensor& { return fixture.tensors.at(name + "/" + key); };
    auto layer = make_test_layer(c.at("spec"));
    std::vector<const Tensor*> inputs;
    std::vector<Shape> shapes;
    for (size_t i = 0; fixture.tensors.count(name + "/in" + std::to_string(i)); ++i) {
      inputs.push_back(&get("in" + std::to_string(i)));
      shapes.push_back(inputs.back()->shape());
    }
    Tensor output(layer->reshape(shapes));
    for (Param* p : layer->params()) {
      auto stored = fixture.tensors.find(name + "/param/" + p->name);
      if (stored == fixture.tensors.end()) continue;
      REQUIRE(stored->second.shape() == p->data.shape());
      p->data = stored->second;
    }
    const Mode mode = c.value("mode", "test") == "train" ? Mode::train : Mode::test;
    layer->forward(inputs, output, mode);
    check_close("output", output, get("out"));
    for (Param* p : layer->params())
      if (fixture.tensors.count(name + "/after/" + p->name))
        check_close(p->name + " after forward", p->data, get("after/" + p->name));

    std::vector<Tensor> grads(inputs.size());
    std::vector<Tensor*> grad_ptrs(inputs.size(), nullptr);
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (!fixture.tensors.count(name + "/in" + std::to_string(i) + "_grad")) continue;
      grads[i] = Tensor(inputs[i]->shape());
      grad_ptrs[i] = &grads[i];
    }
    for (Param* p : layer->params()) p->grad.zero();
    layer->backward(inputs, output, get("out_grad"), grad_ptrs);
    for (size_t i = 0; i < inputs.size(); ++i)
      if (grad_ptrs[i])
        check_close("input " + std::to_string(i) + " grad", grads[i], get("in" + std::to_string(i) + "_grad"));
    for (Param* p : layer->params()) {
      INFO(p->name);
      REQUIRE(p->frozen() != static_cast<bool>(fixture.tensors.count(name + "/grad/" + p->name)));
      if (!p->frozen()) check_close(p->name + " grad", p->grad, get("grad/" + p->name));
    }
  }
}

}  // namespace fcn::testing
