// fcn export-onnx: an fcn graph with its weights as an ONNX ModelProto,
// built with the classes generated from proto/onnx_subset.proto.
#include "fcn/model/onnx_export.hpp"

#include <sys/stat.h>

#include <cstring>
#include <set>

#include "fcn/core/error.hpp"
#include "fcn/io/safetensors.hpp"
#include "fcn/layers/crop.hpp"
#include "onnx_subset.pb.h"

namespace fcn {

namespace {

constexpr int64_t kOpset = 13;     // MaxPool's ceil_mode and Slice with tensor inputs are both in 13
constexpr int64_t kIrVersion = 7;  // the IR version of opset 13

// An int or [h, w] option of a layer spec.
std::array<int64_t, 2> spec_hw(const json& layer, const char* key, std::array<int64_t, 2> fallback) {
  if (!layer.contains(key)) return fallback;
  const json& v = layer[key];
  if (v.is_number_integer()) return {v.get<int64_t>(), v.get<int64_t>()};
  return {v.at(0).get<int64_t>(), v.at(1).get<int64_t>()};
}

class OnnxBuilder {
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

  bool dynamic() const { return options_.height == 0; }

  // fcn blob -> ONNX value name: the image input and the score output get
  // the model's public names.
  std::string value(const std::string& blob) const {
    auto it = names_.find(blob);
    return it == names_.end() ? blob : it->second;
  }
  void name_value(const std::string& blob, const std::string& name) { names_[blob] = name; }

  onnx::NodeProto* node(const std::string& op, const std::string& name, const std::vector<std::string>& inputs,
                        const std::string& output) {
    auto* n = g_->add_node();
    n->set_op_type(op);
    n->set_name(name);
    for (const auto& in : inputs) n->add_input(in);
    n->add_output(output);
    return n;
  }
  static void ints(onnx::NodeProto* n, const std::string& name, const std::vector<int64_t>& values) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t v : values) a->add_ints(v);
  }
  static void int_attr(onnx::NodeProto* n, const std::string& name, int64_t value) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(value);
  }
  static void float_attr(onnx::NodeProto* n, const std::string& name, float value) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(value);
  }

  void float_initializer(const std::string& name, const Shape& shape, const float* data) {
    auto* t = g_->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    int64_t count = 1;
    for (int64_t d : shape) {
      t->add_dims(d);
      count *= d;
    }
    t->set_raw_data(reinterpret_cast<const char*>(data), sizeof(float) * count);  // x86: little-endian already
  }
  std::string int64_constant(const std::string& name, const std::vector<int64_t>& values) {
    auto* t = g_->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    t->add_dims(static_cast<int64_t>(values.size()));
    t->set_raw_data(reinterpret_cast<const char*>(values.data()), sizeof(int64_t) * values.size());
    return name;
  }
  std::string scalar_constant(const std::string& name, float value) {
    float_initializer(name, {}, &value);
    return name;
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

  void params(const Layer& layer, std::vector<std::string>& inputs, bool bias) {
    Param* weight = graph_.find_param(layer.name() + ".weight");
    if (!weight) throw Error("export-onnx: layer '" + layer.name() + "' has no weight");
    float_initializer(weight->name, weight->data.shape(), weight->data.data());
    inputs.push_back(weight->name);
    if (bias) {
      Param* b = graph_.find_param(layer.name() + ".bias");
      float_initializer(b->name, b->data.shape(), b->data.data());
      inputs.push_back(b->name);
    }
  }

  void convolution(const Layer& layer, const json& spec, const std::string& in, const std::string& out,
                   bool transposed) {
    const auto kernel = spec_hw(spec, "kernel", {1, 1}), stride = spec_hw(spec, "stride", {1, 1});
    const auto pad = spec_hw(spec, "pad", {0, 0}), dilation = spec_hw(spec, "dilation", {1, 1});
    const bool bias = spec.value("bias", true);
    std::vector<std::string> inputs = {in};
    params(layer, inputs, bias);
    auto* n = node(transposed ? "ConvTranspose" : "Conv", layer.name(), inputs, out);
    ints(n, "kernel_shape", {kernel[0], kernel[1]});
    ints(n, "strides", {stride[0], stride[1]});
    ints(n, "pads", {pad[0], pad[1], pad[0], pad[1]});
    ints(n, "dilations", {dilation[0], dilation[1]});
    int_attr(n, "group", spec.value("groups", int64_t{1}));
    if (transposed) {
      const auto op = spec_hw(spec, "output_padding", {0, 0});
      if (op[0] || op[1]) ints(n, "output_padding", {op[0], op[1]});
    }
  }

  void max_pool(const Layer& layer, const json& spec, const std::string& in, const std::string& out) {
    const auto kernel = spec_hw(spec, "kernel", {1, 1});
    const auto stride = spec_hw(spec, "stride", kernel), pad = spec_hw(spec, "pad", {0, 0});
    const bool ceil_mode = spec.value("ceil_mode", true);
    // fcn (as PyTorch) drops a last window that starts in the padding; ONNX
    // keeps it. Without padding the two agree whenever kernel >= stride.
    if (ceil_mode && (pad[0] || pad[1] || kernel[0] < stride[0] || kernel[1] < stride[1]))
      throw Error("export-onnx: layer '" + layer.name() +
                  "': ceil-mode max_pool with padding or a kernel smaller than its stride has no exact ONNX MaxPool");
    auto* n = node("MaxPool", layer.name(), {in}, out);
    ints(n, "kernel_shape", {kernel[0], kernel[1]});
    ints(n, "strides", {stride[0], stride[1]});
    ints(n, "pads", {pad[0], pad[1], pad[0], pad[1]});
    int_attr(n, "ceil_mode", ceil_mode ? 1 : 0);
  }

  void crop(const Layer& layer, const json& spec, const std::string& in, const std::string& ref,
            const std::string& ref_blob, const std::string& out) {
    const auto& crop_layer = dynamic_cast<const CropLayer&>(layer);
    const int64_t axis = spec.value("axis", int64_t{2});
    std::vector<int64_t> axes, starts, ends;
    const Shape& ref_shape = graph_.blob_shape(ref_blob);
    for (int64_t a = axis; a < 4; ++a) {
      axes.push_back(a);
      starts.push_back(crop_layer.offsets()[a]);
      ends.push_back(crop_layer.offsets()[a] + ref_shape[a]);
    }
    const std::string prefix = layer.name() + "/";
    std::string ends_name;
    if (dynamic()) {
      // ends = offsets + shape(ref)[axis:4], computed at run time
      node("Shape", prefix + "ref_shape", {ref}, prefix + "ref_shape");
      auto* s = node("Slice", prefix + "ref_dims", {prefix + "ref_shape", int64_constant(prefix + "dims_from", {axis}),
                                                    int64_constant(prefix + "dims_to", {4})},
                     prefix + "ref_dims");
      (void)s;
      node("Add", prefix + "ends", {prefix + "ref_dims", int64_constant(prefix + "starts", starts)}, prefix + "ends");
      ends_name = prefix + "ends";
    } else {
      int64_constant(prefix + "starts", starts);
      ends_name = int64_constant(prefix + "ends", ends);
    }
    node("Slice", layer.name(), {in, prefix + "starts", ends_name, int64_constant(prefix + "axes", axes)}, out);
  }

  std::string build(const json& spec) {
    const std::string score = score_blob_name(graph_);
    const std::string data = graph_.has_blob("data") ? "data" : graph_.input_names().front();
    name_value(data, "image");
    name_value(score, "score");
    const auto& layers = graph_.layers();
    const json& specs = spec.at("layers");
    std::set<std::string> done = {data};
    for (size_t i = 0; i < layers.size(); ++i) {
      const Layer& layer = *layers[i];
      const json& s = specs.at(i);
      const std::string type = layer.type();
      if (layer.is_loss()) continue;
      std::vector<std::string> in;
      for (const auto& blob : layer.inputs()) {
        if (!done.count(blob))
          throw Error("export-onnx: layer '" + layer.name() + "' reads '" + blob +
                      "', which is neither the image nor computed from it");
        in.push_back(value(blob));
      }
      const std::string out = value(layer.name());
      if (type == "conv" || type == "deconv") {
        convolution(layer, s, in[0], out, type == "deconv");
      } else if (type == "max_pool") {
        max_pool(layer, s, in[0], out);
      } else if (type == "relu") {
        const double slope = s.value("negative_slope", 0.0);
        auto* n = node(slope == 0 ? "Relu" : "LeakyRelu", layer.name(), in, out);
        if (slope != 0) float_attr(n, "alpha", static_cast<float>(slope));
      } else if (type == "dropout") {
        // the identity in test mode: omitted, its readers read its input
        if (names_.count(layer.name())) {
          node("Identity", layer.name(), in, out);  // it is the model's output: keep the name
        } else {
          names_[layer.name()] = in[0];
        }
      } else if (type == "crop") {
        crop(layer, s, in[0], in[1], layer.inputs()[1], out);
      } else if (type == "scale") {
        Param* learned = graph_.find_param(layer.name() + ".weight");
        const float factor = learned ? learned->data.data()[0] : static_cast<float>(s.value("value", 1.0));
        node("Mul", layer.name(), {in[0], scalar_constant(layer.name() + "/value", factor)}, out);
      } else if (type == "sum") {
        std::vector<double> coeffs(in.size(), 1.0);
        if (s.contains("coeffs")) coeffs = s["coeffs"].get<std::vector<double>>();
        std::vector<std::string> terms;
        for (size_t k = 0; k < in.size(); ++k) {
          if (coeffs[k] == 1.0) {
            terms.push_back(in[k]);
            continue;
          }
          const std::string name = layer.name() + "/term" + std::to_string(k);
          node("Mul", name, {in[k], scalar_constant(name + "/coeff", static_cast<float>(coeffs[k]))}, name);
          terms.push_back(name);
        }
        std::string acc = terms[0];
        for (size_t k = 1; k < terms.size(); ++k) {
          const std::string name = k + 1 == terms.size() ? out : layer.name() + "/partial" + std::to_string(k);
          node("Add", k + 1 == terms.size() ? layer.name() : name, {acc, terms[k]}, name);
          acc = name;
        }
        if (terms.size() == 1) node("Identity", layer.name(), {acc}, out);
      } else {
        throw Error("export-onnx: layer '" + layer.name() + "' has type '" + type + "', which has no ONNX export");
      }
      done.insert(layer.name());
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
  Graph& graph_;
  OnnxExportOptions options_;
  onnx::ModelProto model_;
  onnx::GraphProto* g_ = nullptr;
  std::map<std::string, std::string> names_;
};

}  // namespace

std::string onnx_model_bytes(Graph& graph, const json& spec, const OnnxExportOptions& options) {
  if ((options.height == 0) != (options.width == 0) || options.height < 0 || options.width < 0)
    throw Error("export-onnx: --size needs two positive integers H W");
  if (!spec.contains("layers") || spec["layers"].size() != graph.layers().size())
    throw Error("export-onnx: the spec does not describe this graph");
  OnnxBuilder builder(graph, options);
  return builder.build(spec);
}

void export_onnx(Graph& graph, const json& spec, const std::string& filename, const OnnxExportOptions& options) {
  struct stat st {};
  if (::stat(filename.c_str(), &st) == 0) throw Error(filename + ": exists; choose another --out or delete it");
  const std::string bytes = onnx_model_bytes(graph, spec, options);
  write_file_atomic(filename, bytes);
}

}  // namespace fcn
