#include "fcn/graph/graph.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <numeric>
#include <optional>

#include "fcn/core/environment.hpp"
#include "fcn/core/error.hpp"
#include "fcn/core/stopwatch.hpp"
#include "fcn/cpu/bf16_gemm.hpp"
#include "fcn/layers/registry.hpp"

namespace fcn {

namespace {

// A lifetime on the step timeline (both ends inclusive) and a size.
struct Interval {
  int64_t numel = 0;
  int start = 0, end = 0;
  bool overlaps(const Interval& o) const { return start <= o.end && o.start <= end; }
};

// Offsets (floats, 64-byte aligned) in one arena for intervals that must not
// share memory while both are alive: the largest first, each at the lowest
// offset clear of every placed interval whose lifetime overlaps its own
// ("greedy by size" offset planning, as TFLite's arena planner). Unlike
// whole-buffer reuse, a large gradient can take the room of several small
// dead values. Returns the offsets and the arena size.
std::pair<std::vector<int64_t>, int64_t> pack_intervals(const std::vector<Interval>& items) {
  constexpr int64_t kAlign = 16;
  const auto aligned = [](int64_t n) { return (n + kAlign - 1) / kAlign * kAlign; };
  std::vector<int> order(items.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return items[a].numel > items[b].numel; });
  std::vector<int64_t> offset(items.size(), -1);
  std::vector<int> placed;
  int64_t arena = 0;
  for (int item : order) {
    std::vector<std::pair<int64_t, int64_t>> taken;  // [begin, end) of live neighbours
    for (int other : placed)
      if (items[item].overlaps(items[other])) taken.push_back({offset[other], offset[other] + aligned(items[other].numel)});
    std::sort(taken.begin(), taken.end());
    int64_t at = 0;
    for (const auto& [begin, end] : taken) {
      if (begin - at >= items[item].numel) break;  // fits in the gap before this one
      at = std::max(at, end);
    }
    offset[item] = at;
    placed.push_back(item);
    arena = std::max(arena, at + aligned(items[item].numel));
  }
  return {offset, arena};
}

}  // namespace

Graph::Graph(const json& spec, const std::string& path, GraphOptions options) : options_(options) {
  if (env_flag("FCN_PROFILE", false)) options_.profile = true;
  if (options_.precision == Precision::bf16 && !options_.plan_only) cpu::require_bf16("model.precision");
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
    layer->set_image_rngs(&image_rngs_);
    layer->set_precision(options_.precision);
    layer->set_inference_only(options_.inference_only);
    layers_.push_back(std::move(layer));
    nodes_.push_back(node);
  }
  reader.finish();
  find_inference_layers();
  blobs_.resize(blob_names_.size());
  grads_.resize(blob_names_.size());
  blob_shapes_.resize(blob_names_.size());
  coord_maps_.resize(blob_names_.size());
  timings_.resize(layers_.size());
  // no ReLU fused until a memory plan puts one in place (fuse_relus); a graph without one keeps these
  rectifies_.assign(layers_.size(), false);
  rectified_.assign(layers_.size(), false);
  masks_for_.assign(layers_.size(), -1);
  grad_shared_with_.assign(blob_names_.size(), -1);
}

void Graph::find_inference_layers() {
  const size_t count = blob_names_.size();
  std::vector<int> consumers(count, 0);
  for (const Node& node : nodes_)
    for (int b : node.input_blobs) ++consumers[b];
  std::vector<bool> read(count, false);  // by inference
  bool any_loss = false;
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (!layers_[i]->is_loss()) continue;
    if (!any_loss) read[nodes_[i].input_blobs.front()] = true;  // the score blob
    any_loss = true;
  }
  inference_.assign(layers_.size(), false);
  for (size_t i = layers_.size(); i-- > 0;) {
    const int out = nodes_[i].output_blob;
    const bool output = consumers[out] == 0 && !layers_[i]->is_loss();
    inference_[i] = !any_loss || ((read[out] || output) && !layers_[i]->is_loss());
    if (inference_[i])
      for (int b : nodes_[i].input_blobs) read[b] = true;
  }
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

std::map<std::string, Shape> Graph::input_shapes(int64_t height, int64_t width, int64_t batch) const {
  std::map<std::string, Shape> shapes;
  for (size_t i = 0; i < input_names_.size(); ++i) shapes[input_names_[i]] = {batch, input_channels_[i], height, width};
  return shapes;
}

const std::string& Graph::image_input() const {
  for (const auto& name : input_names_)
    if (name == "data") return name;
  return input_names_.front();
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
    if (!options_.plan_only) blobs_[i].reshape(s);  // a plan holds no memory, not even the inputs
    coord_maps_[i] = CoordMap{};
  }
  for (const auto& item : input_shapes) blob_id(item.first);  // rejects unknown names
  std::vector<Shape> blob_shapes(blobs_.size());
  for (size_t i = 0; i < input_names_.size(); ++i) blob_shapes[i] = input_shapes.at(input_names_[i]);
  std::vector<ConstantFrame> frames(blobs_.size());  // the graph inputs have none
  for (size_t i = 0; i < layers_.size(); ++i) {
    std::vector<Shape> shapes;
    std::vector<CoordMap> maps;
    std::vector<ConstantFrame> input_frames;
    for (int b : nodes_[i].input_blobs) {
      shapes.push_back(blob_shapes[b]);
      maps.push_back(coord_maps_[b]);
      input_frames.push_back(frames[b]);
    }
    layers_[i]->set_input_coord_maps(maps);
    const int ob = nodes_[i].output_blob;
    blob_shapes[ob] = layers_[i]->reshape(shapes);
    try {
      shape_numel(blob_shapes[ob]);  // an impossibly large output must not reach the next layer's arithmetic
    } catch (const Error& e) {
      throw Error("layer '" + layers_[i]->name() + "' (" + layers_[i]->type() + "): output " + e.what());
    }
    coord_maps_[ob] = (maps.empty() ? CoordMap{} : maps[0]).then(layers_[i]->coord_map());
    frames[ob] = layers_[i]->output_frame(input_frames, blob_shapes[ob]);
  }
  // Layers may size their parameters in reshape (input channels), so the
  // gradient plan follows the shapes.
  plan_gradients();
  last_input_shapes_.clear();  // until the plan is in place (a throw leaves the graph un-reshaped)
  blob_shapes_ = blob_shapes;
  if (reusing_memory()) {
    for (size_t b = input_names_.size(); b < blobs_.size(); ++b)
      grads_[b].release();  // the plan points the live ones into its buffers
    plan_memory();
  } else {
    for (size_t b = input_names_.size(); b < blobs_.size(); ++b) {
      blobs_[b].reshape(blob_shapes[b]);
      if (has_grad_[b]) grads_[b].reshape(blob_shapes[b]);
    }
  }
  last_input_shapes_ = input_shapes;
}

// A ReLU (slope 0) in place over the output of a layer that can rectify it
// (conv, batch norm, sum): that layer writes max(y, 0)
// as it writes y, and the ReLU only records its bits (one pass less over a
// large blob). `group` maps each blob to the buffer it shares, `producer`
// to the layer that writes it.
void Graph::fuse_relus(const std::vector<int>& group, const std::vector<int>& producer) {
  const int inputs = static_cast<int>(input_names_.size());
  for (auto& layer : layers_) layer->rectify_output(false);
  rectifies_.assign(layers_.size(), false);
  rectified_.assign(layers_.size(), false);
  for (size_t i = 0; i < layers_.size(); ++i) {
    Layer& rectifier = *layers_[i];
    if (!rectifier.is_rectifier()) continue;
    const int in = nodes_[i].input_blobs[0], out = nodes_[i].output_blob;
    const bool in_place = in >= inputs && group[out] == group[in];
    const bool fused = in_place && layers_[producer[in]]->rectify_output(true);
    if (fused) rectifies_[producer[in]] = rectified_[i] = true;
    rectifier.set_input_rectified(fused);
  }
}

// A fused ReLU (fuse_relus) whose output one layer reads, as its input 0,
// and whose gradient that layer's backward can mask (Layer::masks_input_grad:
// conv, max pooling): the ReLU's backward folds into that layer's. Both
// gradients of the ReLU then share one buffer (plan_memory), which the
// reader writes already masked, and the ReLU's backward does nothing.
void Graph::fold_rectifier_backwards(const std::vector<int>& consumers) {
  masks_for_.assign(layers_.size(), -1);
  grad_shared_with_.assign(blobs_.size(), -1);
  for (auto& layer : layers_) layer->set_backward_folded(false);
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (!rectified_[i] || !nodes_[i].runs_backward) continue;
    const int in = nodes_[i].input_blobs[0], out = nodes_[i].output_blob;
    if (!has_grad_[in] || !has_grad_[out] || consumers[out] != 1) continue;
    for (size_t r = i + 1; r < layers_.size(); ++r) {
      const std::vector<int>& reads = nodes_[r].input_blobs;
      if (std::find(reads.begin(), reads.end(), out) == reads.end()) continue;
      // the one reader: out must be its input 0 and no other of its inputs
      const bool foldable = reads[0] == out && std::count(reads.begin(), reads.end(), out) == 1 &&
                            nodes_[r].runs_backward && layers_[r]->masks_input_grad();
      if (foldable) {
        masks_for_[r] = static_cast<int>(i);
        grad_shared_with_[in] = out;
        layers_[i]->set_backward_folded(true);
      }
      break;
    }
  }
}

// Layer i writes layer i + 1's output at step i (GraphOptions::fold_batch_norm)
// when i + 1 reads only i's output, nothing else reads that, and i's inputs
// (read at step i) do not share memory with i + 1's output (which the plan
// only keeps free from step i + 1 on), and i + 1 can fold (can_fold_into);
// whether i takes the fold is asked at the forward (Layer::forward_folded).
void Graph::plan_folds(const std::vector<int>& consumers, const std::vector<int64_t>& value_offset) {
  folds_next_.assign(layers_.size(), false);
  if (!options_.skip_loss_in_test || !options_.fold_batch_norm) return;
  const int inputs = static_cast<int>(input_names_.size());
  const auto overlap = [&](int a, int b) {
    if (a < inputs || b < inputs) return false;  // graph inputs have their own storage
    const int64_t a0 = value_offset[a], b0 = value_offset[b];
    return a0 < b0 + shape_numel(blob_shapes_[b]) && b0 < a0 + shape_numel(blob_shapes_[a]);
  };
  for (size_t i = 0; i + 1 < layers_.size(); ++i) {
    const Node &node = nodes_[i], &next = nodes_[i + 1];
    if (next.input_blobs.size() != 1 || next.input_blobs[0] != node.output_blob) continue;
    if (consumers[node.output_blob] != 1 || !inference_[i + 1] || !layers_[i + 1]->can_fold_into()) continue;
    bool safe = true;
    for (int b : node.input_blobs) safe = safe && !overlap(b, next.output_blob);
    folds_next_[i] = safe;
  }
}

void Graph::plan_memory() {
  const int L = static_cast<int>(layers_.size());
  const int end_of_step = 2 * L;  // after the last backward
  const size_t inputs = input_names_.size(), count = blobs_.size();
  const auto backward_step = [L](size_t layer) { return 2 * L - 1 - static_cast<int>(layer); };
  // an inference-only graph never runs the layers forward(Mode::test) skips:
  // they read nothing, and their blobs take no room
  const auto never_runs = [this](int layer) {
    return options_.inference_only && options_.skip_loss_in_test && !inference_[layer];
  };
  std::vector<int> producer(count, -1), consumers(count, 0);
  for (size_t i = 0; i < layers_.size(); ++i) {
    producer[nodes_[i].output_blob] = static_cast<int>(i);
    if (never_runs(static_cast<int>(i))) continue;
    for (int b : nodes_[i].input_blobs) ++consumers[b];
  }

  // Values: the last step that reads each blob.
  std::vector<int> last_read(count, -1);
  for (size_t b = inputs; b < count; ++b) {
    const int p = producer[b];
    last_read[b] = p;
    if (consumers[b] == 0) last_read[b] = end_of_step;  // a graph output
    if (nodes_[p].runs_backward && layers_[p]->backward_needs_output())
      last_read[b] = std::max(last_read[b], backward_step(p));
  }
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (never_runs(static_cast<int>(i))) continue;
    for (int b : nodes_[i].input_blobs) {
      if (b < static_cast<int>(inputs)) continue;
      int last = static_cast<int>(i);
      if (layers_[i]->is_loss()) last = end_of_step;  // the scores stay readable
      if (nodes_[i].runs_backward && layers_[i]->backward_needs_inputs()) last = std::max(last, backward_step(i));
      last_read[b] = std::max(last_read[b], last);
    }
  }
  // In place: a layer may write over an input that only it reads, whose
  // producer's backward does not read it, and that is not a graph input.
  std::vector<int> group(count);
  std::iota(group.begin(), group.end(), 0);
  for (size_t i = 0; i < layers_.size(); ++i) {
    const int k = layers_[i]->in_place_input();
    if (k < 0 || k >= static_cast<int>(nodes_[i].input_blobs.size())) continue;
    const int in = nodes_[i].input_blobs[k], out = nodes_[i].output_blob;
    const int p = producer[in];
    if (in < static_cast<int>(inputs) || consumers[in] != 1) continue;
    if (nodes_[p].runs_backward && layers_[p]->backward_needs_output()) continue;
    if (shape_numel(blob_shapes_[in]) != shape_numel(blob_shapes_[out])) continue;
    group[out] = group[in];
  }
  fuse_relus(group, producer);
  fold_rectifier_backwards(consumers);

  if (!options_.reuse_values)  // every value stays readable until forward() returns
    for (size_t b = inputs; b < count; ++b) last_read[b] = std::max(last_read[b], L - 1);
  // One interval per value group and one per gradient.
  std::vector<Interval> items;
  std::vector<int> value_item(count, -1), grad_item(count, -1);
  for (size_t b = inputs; b < count; ++b) {
    const int root = group[b];
    // a blob inference never writes (a loss's, an auxiliary head's) takes no room
    const int64_t numel = never_runs(producer[b]) ? 0 : shape_numel(blob_shapes_[b]);
    const Interval own{numel, producer[b], last_read[b]};
    if (value_item[root] < 0) {
      value_item[root] = static_cast<int>(items.size());
      items.push_back(own);
    } else {
      Interval& merged = items[value_item[root]];
      merged.numel = std::max(merged.numel, own.numel);
      merged.start = std::min(merged.start, own.start);
      merged.end = std::max(merged.end, own.end);
    }
    value_item[b] = value_item[root];
  }
  for (auto& node : nodes_) node.grads_born.clear();
  std::vector<int> seeded;
  for (size_t i = 0; i < layers_.size(); ++i)
    if (layers_[i]->is_loss()) seeded.push_back(nodes_[i].output_blob);
  if (seeded.empty() && !layers_.empty()) seeded.push_back(nodes_.back().output_blob);
  for (size_t b = inputs; b < count; ++b) {
    if (!has_grad_[b]) continue;
    const int p = producer[b];
    int first_writer = -1;  // the consumer whose backward runs first
    for (size_t i = 0; i < layers_.size(); ++i)
      for (int in : nodes_[i].input_blobs)
        if (in == static_cast<int>(b) && nodes_[i].runs_backward) first_writer = static_cast<int>(i);
    const bool is_seed = std::find(seeded.begin(), seeded.end(), static_cast<int>(b)) != seeded.end();
    int birth = backward_step(p);
    if (first_writer >= 0) {
      birth = backward_step(first_writer);
      nodes_[first_writer].grads_born.push_back(static_cast<int>(b));
    } else if (!is_seed) {
      nodes_[p].grads_born.push_back(static_cast<int>(b));  // nobody adds to it: zero for its producer
    }
    if (is_seed) birth = L;  // filled with 1 as backward starts
    grad_item[b] = static_cast<int>(items.size());
    items.push_back({shape_numel(blob_shapes_[b]), birth, backward_step(p)});
  }
  // a folded ReLU's input gradient is its output gradient's buffer, alive
  // until the input's producer has read it
  for (size_t b = inputs; b < count; ++b) {
    const int shared = grad_shared_with_[b];
    if (shared < 0) continue;
    Interval& own = items[grad_item[b]];
    Interval& merged = items[grad_item[shared]];
    merged.end = std::max(merged.end, own.end);
    own.numel = 0;
    grad_item[b] = grad_item[shared];
  }

  const auto [offset, arena_numel] = pack_intervals(items);
  std::vector<int64_t> value_offset(count, 0);
  for (size_t b = inputs; b < count; ++b) value_offset[b] = offset[value_item[b]];
  plan_folds(consumers, value_offset);
  if (options_.plan_only) {
    planned_arena_floats_ = arena_numel;
    return;
  }
  arena_.reshape({arena_numel});
  for (size_t b = inputs; b < count; ++b) {
    if (never_runs(producer[b])) {
      blobs_[b].release();
      continue;
    }
    blobs_[b].share_storage(arena_.data() + offset[value_item[b]], blob_shapes_[b]);
    if (grad_item[b] >= 0) grads_[b].share_storage(arena_.data() + offset[grad_item[b]], blob_shapes_[b]);
  }
}

namespace {

// Zeroes the tensors in parallel chunks: VGG16's parameter gradients are
// half a gigabyte, and an activation gradient at conv1 125 MB (one thread's
// memset of the activation gradients was ~3% of a train step).
void zero_in_parallel(const std::vector<Tensor*>& tensors) {
  constexpr int64_t kChunk = int64_t{1} << 20;
  std::vector<std::pair<float*, int64_t>> chunks;
  for (Tensor* t : tensors)
    for (int64_t at = 0; at < t->numel(); at += kChunk) chunks.push_back({t->data() + at, std::min(kChunk, t->numel() - at)});
#pragma omp parallel for schedule(static) if (chunks.size() > 1)
  for (size_t i = 0; i < chunks.size(); ++i) std::memset(chunks[i].first, 0, sizeof(float) * chunks[i].second);
}

}  // namespace

void Graph::refuse_if_inference_only() const {
  if (options_.inference_only)
    throw Error("graph: built for inference only (GraphOptions::inference_only); it cannot train");
}

void Graph::forward(Mode mode) {
  if (last_input_shapes_.empty()) throw Error("graph: reshape() must run before forward()");
  if (options_.plan_only) throw Error("graph: built to plan memory only (GraphOptions::plan_only); it cannot run");
  if (mode != Mode::test) refuse_if_inference_only();
  const bool folding = mode == Mode::test && !forward_hook_ && folds_next_.size() == layers_.size();
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (mode == Mode::test && options_.skip_loss_in_test && !inference_[i]) continue;
    // a fused ReLU's output is written; its bits serve only a backward, which this graph never runs
    if (options_.inference_only && rectified_[i]) {
      if (forward_hook_) forward_hook_(i, blobs_[nodes_[i].output_blob]);
      continue;
    }
    std::vector<const Tensor*> inputs;
    for (int b : nodes_[i].input_blobs) inputs.push_back(&blobs_[b]);
    std::optional<Stopwatch> watch;
    if (options_.profile) watch.emplace();
    const bool folded = folding && folds_next_[i] &&
                        layers_[i]->forward_folded(inputs, blobs_[nodes_[i + 1].output_blob], *layers_[i + 1],
                                                   rectifies_[i + 1]);
    if (!folded) layers_[i]->forward(inputs, blobs_[nodes_[i].output_blob], mode);
    if (options_.profile) {
      timings_[i].forward_s += watch->wall_s();
      timings_[i].forward_cpu_s += watch->cpu_s();
      ++timings_[i].forward_calls;
    }
    if (folded) ++i;  // layer i + 1's output is written (and no hook is set)
    else if (forward_hook_) forward_hook_(i, blobs_[nodes_[i].output_blob]);
  }
}

void Graph::forward_inference() {
  if (options_.inference_only) return forward(Mode::test);
  // a training graph: its layers go back to training's forward afterwards, also when the pass throws
  struct Restore {
    std::vector<std::unique_ptr<Layer>>& layers;
    ~Restore() {
      for (auto& layer : layers) layer->set_inference_only(false);
    }
  } restore{layers_};
  for (auto& layer : layers_) layer->set_inference_only(true);
  forward(Mode::test);
}

void Graph::backward() {
  if (last_input_shapes_.empty()) throw Error("graph: reshape() must run before backward()");
  refuse_if_inference_only();
  const bool planned = reusing_memory();  // planned gradients are zeroed as they come to life
  if (!planned) {
    std::vector<Tensor*> all;
    for (size_t b = 0; b < grads_.size(); ++b)
      if (has_grad_[b]) all.push_back(&grads_[b]);
    zero_in_parallel(all);
  }
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
    std::optional<Stopwatch> watch;
    if (options_.profile) watch.emplace();
    if (planned) {
      // a gradient born here is zeroed, unless the layer writes it whole (an input it reads once)
      std::vector<Tensor*> born;
      std::vector<char> fresh(node.input_blobs.size(), 0);
      for (int b : node.grads_born) {
        const auto& in = node.input_blobs;
        const auto at = std::find(in.begin(), in.end(), b);
        const size_t k = static_cast<size_t>(at - in.begin());
        if (at != in.end() && std::count(in.begin(), in.end(), b) == 1 && layers_[i]->writes_fresh_input_grad(k))
          fresh[k] = 1;
        else
          born.push_back(&grads_[b]);
      }
      zero_in_parallel(born);
      layers_[i]->set_fresh_input_grads(std::move(fresh));
    }
    layers_[i]->set_input_grad_kept(masks_for_[i] >= 0 ? layers_[masks_for_[i]]->kept_bits() : nullptr);
    layers_[i]->backward(inputs, blobs_[node.output_blob], grads_[node.output_blob], input_grads);
    if (options_.profile) {
      timings_[i].backward_s += watch->wall_s();
      timings_[i].backward_cpu_s += watch->cpu_s();
      ++timings_[i].backward_calls;
    }
    if (backward_hook_) backward_hook_(i);
  }
  // deferred gradients no backward wrote (a layer the loss does not reach) are zero
  std::vector<Tensor*> unwritten;
  for (Param* p : params())
    if (p->grad_deferred) {
      unwritten.push_back(&p->grad);
      p->grad_deferred = false;
    }
  zero_in_parallel(unwritten);
}


void Graph::zero_param_grads(bool deferred) {
  std::map<const Param*, int> owners;  // a param two layers share is zeroed: the one that runs first may add
  for (auto& layer : layers_)
    for (Param* p : layer->params()) ++owners[p];
  std::vector<Tensor*> grads;
  for (auto& layer : layers_)
    for (Param* p : layer->params()) {
      if (p->frozen() || p->grad_deferred) continue;
      if (deferred && layer->writes_param_grads() && owners[p] == 1)
        p->grad_deferred = true;
      else if (std::find(grads.begin(), grads.end(), &p->grad) == grads.end())
        grads.push_back(&p->grad);
    }
  zero_in_parallel(grads);
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

const Shape& Graph::blob_shape(const std::string& name) const { return blob_shapes_[blob_id(name)]; }

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

double Graph::inference_flops() const {
  double total = 0;
  for (size_t i = 0; i < layers_.size(); ++i)
    if (inference_[i]) total += layers_[i]->forward_flops();
  return total;
}

int64_t Graph::blob_buffer_bytes() const {
  int64_t floats = 0;
  floats += options_.plan_only ? planned_arena_floats_ : arena_.capacity();
  if (options_.plan_only)  // the inputs a running graph would allocate
    for (size_t i = 0; i < input_names_.size(); ++i) floats += shape_numel(blob_shapes_[i]);
  for (const Tensor& t : blobs_) floats += t.capacity();  // own storage only (views have none)
  for (const Tensor& t : grads_) floats += t.capacity();
  return floats * static_cast<int64_t>(sizeof(float));
}

int64_t Graph::scratch_bytes() const {
  int64_t largest = 0;
  for (const auto& layer : layers_) largest = std::max(largest, layer->scratch_bytes());
  return largest;
}

void Graph::reset_timings() { std::fill(timings_.begin(), timings_.end(), LayerTiming{}); }

std::string Graph::timing_table() const {
  double total = 0;
  for (const LayerTiming& t : timings_) total += t.forward_s + t.backward_s;
  double total_cpu = 0;
  for (const LayerTiming& t : timings_) total_cpu += t.forward_cpu_s + t.backward_cpu_s;
  std::string out;
  char line[256];
  // busy: threads at work on average (CPU time of all threads / wall time)
  std::snprintf(line, sizeof line, "%-16s %-12s %11s %11s %7s %5s %5s\n", "layer", "type", "forward ms",
                "backward ms", "share", "busy", "busy");
  out += line;
  const auto per_call = [](double s, int64_t calls) { return calls ? 1e3 * s / static_cast<double>(calls) : 0.0; };
  const auto busy = [](double cpu, double wall) { return wall > 0 ? cpu / wall : 0.0; };
  for (size_t i = 0; i < layers_.size(); ++i) {
    const LayerTiming& t = timings_[i];
    std::snprintf(line, sizeof line, "%-16s %-12s %11.2f %11.2f %6.1f%% %5.2f %5.2f\n", layers_[i]->name().c_str(),
                  layers_[i]->type().c_str(), per_call(t.forward_s, t.forward_calls),
                  per_call(t.backward_s, t.backward_calls),
                  total > 0 ? 100.0 * (t.forward_s + t.backward_s) / total : 0.0, busy(t.forward_cpu_s, t.forward_s),
                  busy(t.backward_cpu_s, t.backward_s));
    out += line;
  }
  std::snprintf(line, sizeof line, "%-29s %11.3f s in all, %.2f threads busy\n", "total", total,
                busy(total_cpu, total));
  return out + line;
}

std::string score_blob_name(const Graph& graph) {
  for (const auto& layer : graph.layers())
    if (layer->is_loss()) return layer->inputs().front();
  return graph.layers().back()->name();
}

void Graph::seed_images(const std::vector<uint64_t>& seeds) {
  image_rngs_.clear();
  for (uint64_t seed : seeds) image_rngs_.emplace_back(seed);
}

void require_bgr_image_input(const Graph& graph) {
  const std::string& name = graph.image_input();
  const int64_t channels = graph.input_channels(name);
  if (channels != 3)
    throw Error("the model's input '" + name + "' has " + std::to_string(channels) + " channel" +
                (channels == 1 ? "" : "s") +
                " while VOC-layout images are 3-channel BGR; run this model with fcn forward --input " + name + "=FILE");
}

}  // namespace fcn
