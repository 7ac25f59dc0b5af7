#pragma once
// An OnnxEmitter for layer tests: records the nodes a layer emits (type,
// inputs, attributes) and its constants, instead of building a model.
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "fcn/core/onnx_emitter.hpp"

namespace fcn::testing {

class RecordingEmitter : public OnnxEmitter {
 public:
  using OnnxEmitter::float_tensor;
  // `input`: the shape blob_shape gives for any blob
  RecordingEmitter(bool dynamic, Shape input) : dynamic_(dynamic), input_(std::move(input)) {}
  struct Node {
    std::string op;
    std::vector<std::string> inputs;
    std::map<std::string, OnnxAttribute> attributes;
    int64_t get(const std::string& name) const { return std::get<int64_t>(attributes.at(name).value); }
    std::vector<int64_t> ints(const std::string& name) const {
      return std::get<std::vector<int64_t>>(attributes.at(name).value);
    }
  };
  std::vector<Node> nodes;
  std::map<std::string, std::vector<int64_t>> int64s;
  std::map<std::string, std::vector<float>> floats;  // the float tensors by value name

  bool dynamic() const override { return dynamic_; }
  const Shape& blob_shape(const std::string&) const override { return input_; }
  void node(const std::string& op, const std::string&, const std::vector<std::string>& inputs, const std::string&,
            const std::vector<OnnxAttribute>& attributes) override {
    Node n{op, inputs, {}};
    for (const auto& a : attributes) n.attributes.emplace(a.name, a);
    nodes.push_back(n);
  }
  std::string float_tensor(const std::string& name, const Shape& shape, const float* data) override {
    floats[name].assign(data, data + shape_numel(shape));
    return name;
  }
  std::string int64_tensor(const std::string& name, const std::vector<int64_t>& values) override {
    int64s[name] = values;
    return name;
  }
  void alias(const std::string&, const std::string&) override {}

 private:
  bool dynamic_;
  Shape input_;
};

}  // namespace fcn::testing
