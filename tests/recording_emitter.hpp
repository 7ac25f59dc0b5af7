#pragma once
// An OnnxEmitter for layer tests: records the nodes a layer emits (type,
// inputs, attributes) and its constants instead of building a model, and
// checks that every value is defined before a node reads it.
#include <catch2/catch.hpp>

#include <map>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "fcn/core/onnx_emitter.hpp"

namespace fcn::testing {

class RecordingEmitter final : public OnnxEmitter {
 public:
  using OnnxEmitter::float_tensor;

  // `shapes`: the layer's input blobs (their fcn names are their ONNX values)
  RecordingEmitter(std::map<std::string, Shape> shapes, bool dynamic)
      : shapes_(std::move(shapes)), dynamic_(dynamic) {
    for (const auto& entry : shapes_) defined.insert(entry.first);
  }

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
  std::vector<std::string> ops;  // the nodes' types, in order
  std::set<std::string> defined;
  std::map<std::string, std::vector<float>> floats;  // constants by value name
  std::map<std::string, std::vector<int64_t>> int64s;

  bool dynamic() const override { return dynamic_; }
  const Shape& blob_shape(const std::string& blob) const override { return shapes_.at(blob); }
  void node(const std::string& op, const std::string& name, const std::vector<std::string>& inputs,
            const std::string& output, const std::vector<OnnxAttribute>& attributes) override {
    for (const auto& in : inputs) {
      if (in.empty()) continue;  // an omitted optional input (ONNX's convention)
      INFO(op << " node '" << name << "' reads '" << in << "'");
      CHECK(defined.count(in));
    }
    CHECK(!name.empty());
    Node n{op, inputs, {}};
    for (const auto& a : attributes) n.attributes.emplace(a.name, a);
    nodes.push_back(std::move(n));
    ops.push_back(op);
    defined.insert(output);
  }
  std::string float_tensor(const std::string& name, const Shape& shape, const float* data) override {
    floats[name].assign(data, data + shape_numel(shape));
    defined.insert(name);
    return name;
  }
  std::string int64_tensor(const std::string& name, const std::vector<int64_t>& values) override {
    int64s[name] = values;
    defined.insert(name);
    return name;
  }
  void alias(const std::string& output, const std::string& value) override {
    CHECK(defined.count(value));
    defined.insert(output);
  }

 private:
  std::map<std::string, Shape> shapes_;
  bool dynamic_;
};

}  // namespace fcn::testing
