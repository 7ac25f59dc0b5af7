#pragma once
// Graph: named blobs, layers in topological (spec) order, forward in order,
// backward in reverse from the loss through the layers that need it.
//
// Gradient rule (see layer.hpp): backward() zeroes the blob gradients it owns
// once, then every layer adds into them, so fan-out sums; a layer that
// writes an input gradient whole (writes_fresh_input_grad) and is the first
// to reach it is told so instead, and writes it unzeroed. Parameter
// gradients are only zeroed by zero_param_grads() (the solver, once per
// step), so several backward passes accumulate (iter_size); deferred, the
// layers that write them whole (writes_param_grads) write them in their
// first backward instead.
//
// Memory plan (reuse_memory, the default): after reshape, every blob value
// and blob gradient gets a lifetime on the timeline forward layer 0..L-1,
// then backward layer L-1..0. A value lives from its producer's forward to
// its last reader (the last consumer's forward, the backward of a consumer
// that reads its inputs, like conv's weight gradient, or of a producer that
// reads its output, like ReLU), and at least until forward() returns. A
// gradient lives from the backward of its last consumer (where it is zeroed)
// to its producer's backward. Lifetimes that do not overlap share a buffer
// (offsets in one arena, largest first, greedy), so backward() reuses the buffers of values it no
// longer needs for gradients, and an in-place layer (ReLU) writes over its
// input blob when nothing else reads that blob (the two then hold the same,
// output, values). After forward() every blob holds its value; after
// backward() only the graph inputs, the blobs no layer reads and the inputs
// of loss layers are sure to; blob gradients are only valid inside
// backward(). reuse_values also lets values share buffers during forward()
// (for inference, where only the final blobs are read).
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "fcn/core/layer.hpp"

namespace fcn {

struct GraphOptions {
  // Give a gradient to every non-input blob, not only to those between the
  // loss and a trainable parameter (fcn forward --backward dumps them all).
  bool grad_all_blobs = false;
  // Share gradient buffers and run in-place layers over their input (see
  // above). Off (or grad_all_blobs): every blob and gradient keeps its own
  // buffer and its values, as `fcn forward` needs to dump them all.
  bool reuse_memory = true;
  // With reuse_memory, also let values share buffers during forward (see above).
  bool reuse_values = false;
  // Time every layer's forward and backward (layer_timings()); FCN_PROFILE=1
  // in the environment turns it on too.
  bool profile = false;
  // forward(Mode::test) runs only the inference layers (Graph::
  // inference_layer): not the losses, whose per-pixel softmax would cost as
  // much memory as the scores themselves, nor what feeds only them (an
  // auxiliary head): inference reads the scores only.
  bool skip_loss_in_test = false;
  // The graph only ever runs forward(Mode::test) (predict, eval): with
  // skip_loss_in_test, the blobs of the layers it skips get no memory (the
  // plan and its estimate count the inference only), and forward(Mode::train)
  // and backward() refuse to run. Every layer is told (Layer::set_inference_only):
  // a conv then takes F(4x4, 3x3) Winograd forward (cpu::forward_tile).
  bool inference_only = false;
  // With skip_loss_in_test and reuse_memory, forward(Mode::test) runs a conv
  // whose output only the batch_norm right after it reads as one conv with
  // that batch norm folded into its weights (Layer::forward_folded), writing
  // the batch norm's output; the conv's own output blob is then not written
  // (no forward hook may be set). Equal to the layers run apart to float rounding.
  bool fold_batch_norm = true;
  // reshape() plans the memory (blob_buffer_bytes) without allocating the
  // arena, so that the memory of an input too large for this machine can be
  // estimated; forward() and backward() then refuse to run.
  bool plan_only = false;
  // model.precision: every layer is told (Layer::set_precision); bf16 on a
  // CPU without native bf16 is refused at construction (unless plan_only).
  Precision precision = Precision::fp32;
};

// Accumulated wall-clock time of one layer (options.profile), and the CPU
// time of all threads in it (busy threads = CPU / wall: what the layer's
// parallel loops leave idle).
struct LayerTiming {
  double forward_s = 0, backward_s = 0;
  double forward_cpu_s = 0, backward_cpu_s = 0;
  int64_t forward_calls = 0, backward_calls = 0;
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
  // forward(Mode::test) for a pass that no backward() follows (inference,
  // a training run's validation): every layer is told so for this pass
  // (Layer::set_inference_only), as an inference_only graph's always are, so
  // a conv takes F(4x4, 3x3) Winograd forward and skips the equal-window
  // pass (cpu::conv_forward). Same scores as forward(Mode::test) to float
  // rounding; what fcn eval computes, in a graph that also trains.
  void forward_inference();
  // d(loss)/d(loss) = 1 for every loss layer (or for the last blob when the
  // graph has no loss layer), then reverse order.
  void backward();
  // Called by backward() right after layer `layer_index` (an index into
  // layers()) ran its backward: that layer's param gradients are final for
  // this pass (the data-parallel reducer starts sending them). Empty = none.
  void set_backward_hook(std::function<void(size_t layer_index)> hook) { backward_hook_ = std::move(hook); }
  // Called by forward() right after layer `layer_index` ran, with its output
  // (training diagnostics read activations there, before memory reuse
  // overwrites them). Empty = none.
  using ForwardHook = std::function<void(size_t layer_index, const Tensor& output)>;
  void set_forward_hook(ForwardHook hook) { forward_hook_ = std::move(hook); }
  // Zeroes the parameter gradients. `deferred`: those whose layer writes
  // them whole in its backward (Layer::writes_param_grads) are left for that
  // backward to write instead of add to (Param::grad_deferred); backward()
  // zeroes any it did not reach. Read the gradients after backward() then.
  void zero_param_grads(bool deferred = false);
  // Sum of the loss layers' outputs after forward.
  double loss() const;

  // Fills every parameter from its initialiser. Layers size their
  // parameters in reshape (input channels), so reshape() must run first.
  void init_params(uint64_t seed);

  const std::vector<std::string>& input_names() const { return input_names_; }
  int64_t input_channels(const std::string& name) const;
  // Every graph input at batch x channels x height x width: the shapes to
  // reshape to for an image of that size (labels get the image's size too).
  std::map<std::string, Shape> input_shapes(int64_t height, int64_t width, int64_t batch = 1) const;
  // The input that holds the image: "data", else the first declared input.
  const std::string& image_input() const;
  std::vector<std::string> blob_names() const;  // inputs first, then layer outputs in order
  bool has_blob(const std::string& name) const { return blob_index_.count(name) > 0; }
  Tensor& blob(const std::string& name);
  const Tensor& blob(const std::string& name) const;
  // Null when the blob carries no gradient.
  const Tensor* blob_grad(const std::string& name) const;
  // The shape of the last reshape, also in a plan-only graph, whose blobs
  // (inputs included) hold no memory.
  const Shape& blob_shape(const std::string& name) const;
  CoordMap blob_coord_map(const std::string& name) const;

  const std::vector<std::unique_ptr<Layer>>& layers() const { return layers_; }
  Layer* find_layer(const std::string& name);
  std::vector<Param*> params();
  Param* find_param(const std::string& name);
  double forward_flops() const;
  // Whether layer `index` (into layers()) computes something inference reads:
  // it is no loss, and its output leads to the score blob (score_blob_name)
  // or to a blob no layer reads. Without a loss layer, every layer is.
  bool inference_layer(size_t index) const { return inference_[index]; }
  // forward_flops() of the inference layers only
  double inference_flops() const;

  // Bytes of the buffers holding blob values and gradients (not params,
  // not layer-internal state or scratch), planned or allocated.
  int64_t blob_buffer_bytes() const;
  // The largest scratch buffer a layer needs at the current shapes
  // (Layer::scratch_bytes): the kernels keep one, grown to the largest.
  int64_t scratch_bytes() const;

  bool profiling() const { return options_.profile; }
  // One entry per layer, in layers() order.
  const std::vector<LayerTiming>& layer_timings() const { return timings_; }
  void reset_timings();
  // Per-layer milliseconds per call and share of the total, for humans.
  std::string timing_table() const;

  // Random source for layers that draw (dropout); reseed for exact resume.
  std::mt19937_64& rng() { return rng_; }
  // One generator per image of the next batches, seeded with `seeds` (the
  // trainer: from each image's global sample index), so that a layer's
  // draws for an image do not depend on the batch it is in; empty: every
  // draw from rng().
  void seed_images(const std::vector<uint64_t>& seeds);

 private:
  struct Node {
    std::vector<int> input_blobs;
    int output_blob = -1;
    bool runs_backward = false;
    std::vector<int> grads_born;  // gradients first written by this layer's backward: zeroed before it
  };
  int blob_id(const std::string& name) const;
  void plan_gradients();
  bool reusing_memory() const { return options_.reuse_memory && !options_.grad_all_blobs; }
  void plan_memory();
  void fuse_relus(const std::vector<int>& group, const std::vector<int>& producer);
  void fold_rectifier_backwards(const std::vector<int>& consumers);
  void plan_folds(const std::vector<int>& consumers, const std::vector<int64_t>& value_offset);
  // Throws when the graph is GraphOptions::inference_only (a training call).
  void refuse_if_inference_only() const;
  void find_inference_layers();

  GraphOptions options_;
  std::vector<std::string> input_names_;
  std::vector<int64_t> input_channels_;
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<Node> nodes_;
  std::vector<bool> inference_;  // per layer: inference_layer()
  std::map<std::string, int> blob_index_;
  std::vector<std::string> blob_names_;
  std::vector<Tensor> blobs_;
  std::vector<Tensor> grads_;
  std::vector<bool> has_grad_;
  std::vector<CoordMap> coord_maps_;
  std::map<std::string, Shape> last_input_shapes_;
  int64_t planned_arena_floats_ = 0;  // options_.plan_only: the arena reshape would allocate
  std::mt19937_64 rng_{1337};
  std::vector<std::mt19937_64> image_rngs_;
  std::function<void(size_t)> backward_hook_;
  ForwardHook forward_hook_;
  std::vector<Shape> blob_shapes_;  // of the last reshape, for the memory plan
  Tensor arena_;                    // the memory plan's storage: blobs and gradients at offsets
  std::vector<LayerTiming> timings_;
  std::vector<bool> rectifies_;   // per layer: writes max(y, 0) for the ReLU in place over its output
  std::vector<bool> rectified_;   // per layer: a ReLU in place over such an output (it only records its bits)
  // per layer: the fused ReLU whose bits it applies to its input 0's gradient
  // (fold_rectifier_backwards), or -1
  std::vector<int> masks_for_;
  // per blob: the blob whose gradient buffer it shares (a folded ReLU's
  // input, sharing its output's), or -1
  std::vector<int> grad_shared_with_;
  std::vector<bool> folds_next_;  // per layer: forward(Mode::test) may fold layer i + 1 into it
};

// The blob predictions are read from: the first input of the first loss
// layer (the reference's crop "score"), else the last layer's output.
std::string score_blob_name(const Graph& graph);

// Throws unless the graph's image input has 3 channels: training, eval and
// predict read VOC-layout images, which are 3-channel BGR (an imported Caffe
// net of another channel count runs with `fcn forward` only).
void require_bgr_image_input(const Graph& graph);

}  // namespace fcn
