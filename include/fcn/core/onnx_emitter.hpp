#pragma once
// What a layer sees of an ONNX model while it emits its own nodes
// (Layer::emit_onnx). The model is built by fcn/model/onnx_export.cpp, the
// only code that knows the protobuf classes; layers name ONNX operators,
// attributes and constants through this interface and never see the format.
//
// Value names: a layer gets the ONNX value names of its inputs and the name
// its output must have. Node names that a layer makes up start with
// "<layer>/" so that they never collide with another layer's. An empty
// input name is an omitted optional input (Resize's roi), as in ONNX.
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "fcn/core/error.hpp"
#include "fcn/core/tensor.hpp"

namespace fcn {

struct OnnxAttribute {
  std::string name;
  std::variant<int64_t, float, std::string, std::vector<int64_t>, std::vector<float>> value;
};

class OnnxEmitter {
 public:
  virtual ~OnnxEmitter() = default;

  // Whether the spatial axes (and N) are symbolic: shape-dependent values
  // must then be computed in the model (Shape, Slice), not written as constants.
  virtual bool dynamic() const = 0;
  // The shape an fcn blob has at the export size (the layer's inputs by
  // their fcn names, Layer::inputs()).
  virtual const Shape& blob_shape(const std::string& fcn_blob) const = 0;

  virtual void node(const std::string& op, const std::string& name, const std::vector<std::string>& inputs,
                    const std::string& output, const std::vector<OnnxAttribute>& attributes = {}) = 0;
  // Float initializers: a parameter (its own name) or a constant; return the value name.
  virtual std::string float_tensor(const std::string& name, const Shape& shape, const float* data) = 0;
  std::string float_tensor(const std::string& name, const Tensor& tensor) {
    return float_tensor(name, tensor.shape(), tensor.data());
  }
  virtual std::string int64_tensor(const std::string& name, const std::vector<int64_t>& values) = 0;
  std::string scalar(const std::string& name, float value) { return float_tensor(name, {}, &value); }
  // The layer is the identity at inference (dropout): its readers read `value`
  // instead. When its output is a model output the emitter adds an Identity.
  virtual void alias(const std::string& output, const std::string& value) = 0;
};

// What a layer type that has no exact ONNX form throws from emit_onnx;
// fcn export-onnx prints it as it is.
class OnnxUnsupported : public Error {
 public:
  OnnxUnsupported(const std::string& layer, const std::string& why)
      : Error("cannot export to ONNX: layer '" + layer + "': " + why) {}
};

}  // namespace fcn
