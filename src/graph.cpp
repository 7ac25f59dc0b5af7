#include "fcn/graph.hpp"

#include "fcn/error.hpp"

namespace fcn {

Graph::Graph(const json& spec, const std::string& path, GraphOptions options) : options_(options) {
  SpecReader reader(spec, path);
  SpecReader inputs = reader.get_object("inputs");
  for (const auto& item : spec.at("inputs").items()) {
    SpecReader input = inputs.get_object(item.key());
    input_names_.push_back(item.key());
    input_channels_.push_back(input.get_int("channels", 1, 1));
    input.finish();
    blob_index_[item.key()] = static_cast<int>(blob_names_.size());
    blob_names_.push_back(item.key());
  }
  if (input_names_.empty()) inputs.fail("", "declare at least one input blob");

  const json& layer_specs = reader.raw("layers");
  if (!layer_specs.is_array() || layer_specs.empty())
    reader.fail("layers", "expected a non-empty list of layer objects");
  for (size_t i = 0; i < layer_specs.size(); ++i) {
    const std::string layer_path = reader.key_path("layers") + "[" + std::to_string(i) + "]";
    auto layer = create_layer(layer_specs[i], layer_path);
    Node node;
    for (size_t k = 0; k < layer->inputs().size(); ++k) {
      const std::string& input = layer->inputs()[k];
      auto it = blob_index_.find(input);
      if (it == blob_index_.end()) {
        const std::string hint = closest_match(input, blob_names_);
        throw Error(layer_path + ".inputs[" + std::to_string(k) + "]: layer '" + layer->name() +
                    "' reads blob '" + input + "', which no earlier layer or graph input produces" +
                    (hint.empty() ? "" : "; did you mean '" + hint + "'?"));
      }
      node.input_blobs.push_back(it->second);
    }
    if (blob_index_.count(layer->name()))
      throw Error(layer_path + ".name: duplicate name '" + layer->name() +
                  "' (every layer's output blob is named after it and must be unique)");
    node.output_blob = static_cast<int>(blob_names_.size());
    blob_index_[layer->name()] = node.output_blob;
    blob_names_.push_back(layer->name());
    layer->set_rng(&rng_);
    layers_.push_back(std::move(layer));
    nodes_.push_back(node);
  }
  reader.finish();
  blobs_.resize(blob_names_.size());
  grads_.resize(blob_names_.size());
  coord_maps_.resize(blob_names_.size());
}

void Graph::plan_gradients() {
  // A blob carries a gradient when a trainable parameter lies upstream of it
  // (or always, with grad_all_blobs) and it reaches a loss.
  const size_t count = blob_names_.size();
  std::vector<bool> upstream_trainable(count, false);
  for (size_t i = 0; i < layers_.size(); ++i) {
    bool trainable = options_.grad_all_blobs;
    for (Param* p : layers_[i]->params()) trainable = trainable || !p->frozen();
    for (int b : nodes_[i].input_blobs) trainable = trainable || upstream_trainable[b];
    upstream_trainable[nodes_[i].output_blob] = trainable;
  }
  bool any_loss = false;
  for (const auto& layer : layers_) any_loss = any_loss || layer->is_loss();
  std::vector<bool> reaches_loss(count, false);
  for (size_t i = layers_.size(); i-- > 0;) {
    const int out = nodes_[i].output_blob;
    if (layers_[i]->is_loss() || (!any_loss && i + 1 == layers_.size())) reaches_loss[out] = true;
    if (reaches_loss[out])
      for (int b : nodes_[i].input_blobs) reaches_loss[b] = true;
  }
  has_grad_.assign(count, false);
  for (size_t b = input_names_.size(); b < count; ++b) has_grad_[b] = upstream_trainable[b] && reaches_loss[b];
  for (size_t i = 0; i < layers_.size(); ++i) nodes_[i].runs_backward = has_grad_[nodes_[i].output_blob];
}

int Graph::blob_id(const std::string& name) const {
  auto it = blob_index_.find(name);
  if (it == blob_index_.end()) {
    const std::string hint = closest_match(name, blob_names_);
    throw Error("no blob named '" + name + "'" + (hint.empty() ? "" : "; did you mean '" + hint + "'?"));
  }
  return it->second;
}

int64_t Graph::input_channels(const std::string& name) const {
  for (size_t i = 0; i < input_names_.size(); ++i)
    if (input_names_[i] == name) return input_channels_[i];
  throw Error("no graph input named '" + name + "'");
}

void Graph::reshape(const std::map<std::string, Shape>& input_shapes) {
  if (input_shapes == last_input_shapes_) return;
  for (size_t i = 0; i < input_names_.size(); ++i) {
    auto it = input_shapes.find(input_names_[i]);
    if (it == input_shapes.end()) throw Error("graph input '" + input_names_[i] + "' was not given a shape");
    const Shape& s = it->second;
    if (s.size() != 4 || s[1] != input_channels_[i])
      throw Error("graph input '" + input_names_[i] + "': expected shape [N, " +
                  std::to_string(input_channels_[i]) + ", H, W], got " + shape_str(s));
    blobs_[i].reshape(s);
    coord_maps_[i] = CoordMap{};
  }
  for (const auto& item : input_shapes) blob_id(item.first);  // rejects unknown names
  for (size_t i = 0; i < layers_.size(); ++i) {
    std::vector<Shape> shapes;
    std::vector<CoordMap> maps;
    for (int b : nodes_[i].input_blobs) {
      shapes.push_back(blobs_[b].shape());
      maps.push_back(coord_maps_[b]);
    }
    layers_[i]->set_input_coord_maps(maps);
    const Shape out = layers_[i]->reshape(shapes);
    const int ob = nodes_[i].output_blob;
    blobs_[ob].reshape(out);
    coord_maps_[ob] = (maps.empty() ? CoordMap{} : maps[0]).then(layers_[i]->coord_map());
  }
  // Layers may size their parameters in reshape (input channels), so the
  // gradient plan follows the shapes.
  plan_gradients();
  for (size_t b = 0; b < blobs_.size(); ++b)
    if (has_grad_[b]) grads_[b].reshape(blobs_[b].shape());
  last_input_shapes_ = input_shapes;
}

void Graph::forward(Mode mode) {
  if (last_input_shapes_.empty()) throw Error("graph: reshape() must run before forward()");
  for (size_t i = 0; i < layers_.size(); ++i) {
    std::vector<const Tensor*> inputs;
    for (int b : nodes_[i].input_blobs) inputs.push_back(&blobs_[b]);
    layers_[i]->forward(inputs, blobs_[nodes_[i].output_blob], mode);
  }
}

void Graph::backward() {
  if (last_input_shapes_.empty()) throw Error("graph: reshape() must run before backward()");
  for (size_t b = 0; b < grads_.size(); ++b)
    if (has_grad_[b]) grads_[b].zero();
  bool any_loss = false;
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (!layers_[i]->is_loss()) continue;
    any_loss = true;
    const int ob = nodes_[i].output_blob;
    if (has_grad_[ob]) grads_[ob].fill(1.f);
  }
  if (!any_loss && !layers_.empty()) {
    const int ob = nodes_.back().output_blob;
    if (has_grad_[ob]) grads_[ob].fill(1.f);
  }
  for (size_t i = layers_.size(); i-- > 0;) {
    const Node& node = nodes_[i];
    if (!node.runs_backward) continue;
    std::vector<const Tensor*> inputs;
    std::vector<Tensor*> input_grads;
    for (int b : node.input_blobs) {
      inputs.push_back(&blobs_[b]);
      input_grads.push_back(has_grad_[b] ? &grads_[b] : nullptr);
    }
    layers_[i]->backward(inputs, blobs_[node.output_blob], grads_[node.output_blob], input_grads);
    if (backward_hook_) backward_hook_(i);
  }
}

void Graph::zero_param_grads() {
  for (Param* p : params())
    if (!p->frozen()) p->grad.zero();
}

double Graph::loss() const {
  double total = 0;
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (!layers_[i]->is_loss()) continue;
    const Tensor& out = blobs_[nodes_[i].output_blob];
    for (int64_t k = 0; k < out.numel(); ++k) total += out[k];
  }
  return total;
}

void Graph::init_params(uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (auto& layer : layers_) layer->init_params(rng);
}

std::vector<std::string> Graph::blob_names() const { return blob_names_; }

Tensor& Graph::blob(const std::string& name) { return blobs_[blob_id(name)]; }
const Tensor& Graph::blob(const std::string& name) const { return blobs_[blob_id(name)]; }

const Tensor* Graph::blob_grad(const std::string& name) const {
  const int b = blob_id(name);
  return has_grad_[b] ? &grads_[b] : nullptr;
}

CoordMap Graph::blob_coord_map(const std::string& name) const { return coord_maps_[blob_id(name)]; }

Layer* Graph::find_layer(const std::string& name) {
  for (auto& layer : layers_)
    if (layer->name() == name) return layer.get();
  return nullptr;
}

std::vector<Param*> Graph::params() {
  std::vector<Param*> out;
  for (auto& layer : layers_)
    for (Param* p : layer->params()) out.push_back(p);
  return out;
}

Param* Graph::find_param(const std::string& name) {
  for (auto& layer : layers_)
    for (Param* p : layer->params())
      if (p->name == name) return p;
  return nullptr;
}

double Graph::forward_flops() const {
  double total = 0;
  for (const auto& layer : layers_) total += layer->forward_flops();
  return total;
}

}  // namespace fcn
