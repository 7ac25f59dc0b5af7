// fcn export-onnx: an fcn graph with its weights as an ONNX ModelProto,
// built with the classes generated from proto/onnx_subset.proto.
#include "fcn/model/onnx_export.hpp"

#include <sys/stat.h>

#include <cstring>
#include <set>
#include <type_traits>
#include <variant>

#include "fcn/core/error.hpp"
#include "fcn/io/safetensors.hpp"
#include "onnx_subset.pb.h"

namespace fcn {

namespace {

constexpr int64_t kOpset = 13;     // MaxPool's ceil_mode and Slice with tensor inputs are both in 13
constexpr int64_t kIrVersion = 7;  // the IR version of opset 13

class OnnxBuilder final : public OnnxEmitter {
 public:
  OnnxBuilder(Graph& graph, const OnnxExportOptions& options) : graph_(graph), options_(options) {
    model_.set_ir_version(kIrVersion);
    model_.set_producer_name("fcn");
    auto* opset = model_.add_opset_import();
    opset->set_domain("");
    opset->set_version(kOpset);
    g_ = model_.mutable_graph();
    g_->set_name("fcn");
  }

  bool dynamic() const override { return options_.height == 0; }
  const Shape& blob_shape(const std::string& fcn_blob) const override { return graph_.blob_shape(fcn_blob); }

  void node(const std::string& op, const std::string& name, const std::vector<std::string>& inputs,
            const std::string& output, const std::vector<OnnxAttribute>& attributes) override {
    auto* n = g_->add_node();
    n->set_op_type(op);
    n->set_name(name);
    for (const auto& in : inputs) n->add_input(in);
    n->add_output(output);
    for (const auto& attribute : attributes) add_attribute(n, attribute);
  }

  std::string float_tensor(const std::string& name, const Shape& shape, const float* data) override {
    auto* t = g_->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    int64_t count = 1;
    for (int64_t d : shape) {
      t->add_dims(d);
      count *= d;
    }
    t->set_raw_data(reinterpret_cast<const char*>(data), sizeof(float) * count);  // x86: little-endian already
    return name;
  }
  std::string int64_tensor(const std::string& name, const std::vector<int64_t>& values) override {
    auto* t = g_->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    t->add_dims(static_cast<int64_t>(values.size()));
    t->set_raw_data(reinterpret_cast<const char*>(values.data()), sizeof(int64_t) * values.size());
    return name;
  }

  void alias(const std::string& output, const std::string& value) override {
    // a public name (the model's output) must be produced by a node
    if (public_names_.count(current_)) {
      node("Identity", current_, {value}, output, {});
    } else {
      public_names_[current_] = value;
    }
  }

  std::string build() {
    const std::string score = score_blob_name(graph_);
    const std::string data = graph_.image_input();
    public_names_[data] = "image";
    public_names_[score] = "score";
    std::set<std::string> done = {data};
    for (size_t i = 0; i < graph_.layers().size(); ++i) {
      // training only: the losses and what feeds only them (an auxiliary head); the model ends at the score
      if (!graph_.inference_layer(i)) continue;
      const auto& layer = graph_.layers()[i];
      std::vector<std::string> in;
      for (const auto& blob : layer->inputs()) {
        if (!done.count(blob))
          throw Error("export-onnx: layer '" + layer->name() + "' reads '" + blob +
                      "', which is neither the image nor computed from it");
        in.push_back(value(blob));
      }
      current_ = layer->name();
      layer->emit_onnx(*this, in, value(layer->name()));
      done.insert(layer->name());
    }
    if (!done.count(score)) throw Error("export-onnx: the score blob '" + score + "' is not computed from the image");
    const Shape& in_shape = graph_.blob_shape(data);
    const Shape& score_shape = graph_.blob_shape(score);
    value_info(g_->add_input(), "image", in_shape, {"N", "", "H", "W"});
    // FCN crops its scores to the image; any other net's score size gets its own symbols
    const bool image_sized = score_shape.size() == 4 && in_shape.size() == 4 && score_shape[2] == in_shape[2] &&
                             score_shape[3] == in_shape[3];
    value_info(g_->add_output(), "score", score_shape,
               image_sized ? std::vector<std::string>{"N", "", "H", "W"}
                           : std::vector<std::string>{"N", "", "score_H", "score_W"});
    std::string bytes;
    if (!model_.SerializeToString(&bytes)) throw Error("export-onnx: the model does not serialize (over 2 GiB?)");
    return bytes;
  }

 private:
  // fcn blob -> ONNX value name: the image input and the score output have
  // the model's public names; an identity layer's output is its input's value.
  std::string value(const std::string& blob) const {
    auto it = public_names_.find(blob);
    return it == public_names_.end() ? blob : it->second;
  }

  static void add_attribute(onnx::NodeProto* n, const OnnxAttribute& attribute) {
    auto* a = n->add_attribute();
    a->set_name(attribute.name);
    std::visit(
        [a](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, int64_t>) {
            a->set_type(onnx::AttributeProto::INT);
            a->set_i(v);
          } else if constexpr (std::is_same_v<T, float>) {
            a->set_type(onnx::AttributeProto::FLOAT);
            a->set_f(v);
          } else if constexpr (std::is_same_v<T, std::string>) {
            a->set_type(onnx::AttributeProto::STRING);
            a->set_s(v);
          } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
            a->set_type(onnx::AttributeProto::INTS);
            for (int64_t x : v) a->add_ints(x);
          } else {
            a->set_type(onnx::AttributeProto::FLOATS);
            for (float x : v) a->add_floats(x);
          }
        },
        attribute.value);
  }

  // `symbols` name the dynamic axes (all but the channels).
  void value_info(onnx::ValueInfoProto* info, const std::string& name, const Shape& shape,
                  const std::vector<std::string>& symbols) {
    info->set_name(name);
    auto* tensor = info->mutable_type()->mutable_tensor_type();
    tensor->set_elem_type(onnx::TensorProto::FLOAT);
    auto* s = tensor->mutable_shape();
    for (size_t i = 0; i < shape.size(); ++i) {
      auto* d = s->add_dim();
      if (dynamic() && i != 1 && i < symbols.size()) {
        d->set_dim_param(symbols[i]);
      } else {
        d->set_dim_value(shape[i]);
      }
    }
  }

  Graph& graph_;
  OnnxExportOptions options_;
  onnx::ModelProto model_;
  onnx::GraphProto* g_ = nullptr;
  std::map<std::string, std::string> public_names_;
  std::string current_;  // the layer emitting
};

}  // namespace

std::string onnx_model_bytes(Graph& graph, const OnnxExportOptions& options) {
  if ((options.height == 0) != (options.width == 0) || options.height < 0 || options.width < 0)
    throw Error("export-onnx: --size needs two positive integers H W");
  OnnxBuilder builder(graph, options);
  return builder.build();
}

void export_onnx(Graph& graph, const std::string& filename, const OnnxExportOptions& options) {
  struct stat st {};
  if (::stat(filename.c_str(), &st) == 0) throw Error(filename + ": exists; choose another --out or delete it");
  const std::string bytes = onnx_model_bytes(graph, options);
  write_file_atomic(filename, bytes);
}

}  // namespace fcn
