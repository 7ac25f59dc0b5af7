#pragma once
// Graph: named blobs, layers in topological (spec) order, forward in order,
// backward in reverse from the loss through the layers that need it.
//
// Gradient rule (see layer.hpp): backward() zeroes the blob gradients it owns
// once, then every layer adds into them, so fan-out sums. Parameter gradients
// are only zeroed by zero_param_grads() (the solver, once per step), so
// several backward passes accumulate (iter_size).
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "fcn/layer.hpp"

namespace fcn {

struct GraphOptions {
  // Give a gradient to every non-input blob, not only to those between the
  // loss and a trainable parameter (fcn forward --backward dumps them all).
  bool grad_all_blobs = false;
};

class Graph {
 public:
  // spec: {"inputs": {"data": {"channels": 3}, ...}, "layers": [...]};
  // `path` names the spec in errors ("model.graph").
  Graph(const json& spec, const std::string& path = "graph", GraphOptions options = {});

  // Infers every blob's shape for these input shapes (NCHW). Cheap when the
  // shapes did not change.
  void reshape(const std::map<std::string, Shape>& input_shapes);
  void forward(Mode mode);
  // d(loss)/d(loss) = 1 for every loss layer (or for the last blob when the
  // graph has no loss layer), then reverse order.
  void backward();
  // Called by backward() right after layer `layer_index` (an index into
  // layers()) ran its backward: that layer's param gradients are final for
  // this pass (the data-parallel reducer starts sending them). Empty = none.
  void set_backward_hook(std::function<void(size_t layer_index)> hook) { backward_hook_ = std::move(hook); }
  void zero_param_grads();
  // Sum of the loss layers' outputs after forward.
  double loss() const;

  // Fills every parameter from its initialiser. Layers size their
  // parameters in reshape (input channels), so reshape() must run first.
  void init_params(uint64_t seed);

  const std::vector<std::string>& input_names() const { return input_names_; }
  int64_t input_channels(const std::string& name) const;
  std::vector<std::string> blob_names() const;  // inputs first, then layer outputs in order
  bool has_blob(const std::string& name) const { return blob_index_.count(name) > 0; }
  Tensor& blob(const std::string& name);
  const Tensor& blob(const std::string& name) const;
  // Null when the blob carries no gradient.
  const Tensor* blob_grad(const std::string& name) const;
  const Shape& blob_shape(const std::string& name) const { return blob(name).shape(); }
  CoordMap blob_coord_map(const std::string& name) const;

  const std::vector<std::unique_ptr<Layer>>& layers() const { return layers_; }
  Layer* find_layer(const std::string& name);
  std::vector<Param*> params();
  Param* find_param(const std::string& name);
  double forward_flops() const;

  // Random source for layers that draw (dropout); reseed for exact resume.
  std::mt19937_64& rng() { return rng_; }

 private:
  struct Node {
    std::vector<int> input_blobs;
    int output_blob = -1;
    bool runs_backward = false;
  };
  int blob_id(const std::string& name) const;
  void plan_gradients();

  GraphOptions options_;
  std::vector<std::string> input_names_;
  std::vector<int64_t> input_channels_;
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<Node> nodes_;
  std::map<std::string, int> blob_index_;
  std::vector<std::string> blob_names_;
  std::vector<Tensor> blobs_;
  std::vector<Tensor> grads_;
  std::vector<bool> has_grad_;
  std::vector<CoordMap> coord_maps_;
  std::map<std::string, Shape> last_input_shapes_;
  std::mt19937_64 rng_{1337};
  std::function<void(size_t)> backward_hook_;
};

}  // namespace fcn
