#pragma once
// The layer contract.
//
// * `reshape(input_shapes)` validates the inputs and returns the output shape;
//   errors name the layer, its type and the offending shapes (`fail_shape`).
// * `forward(inputs, output, mode)` writes the output blob.
// * `backward(...)` ACCUMULATES: it adds (+=) into every non-null input
//   gradient and into the grad of every non-frozen parameter. The graph zeroes
//   blob gradients once per backward pass and the solver zeroes parameter
//   gradients once per step, so a blob read by two layers (a skip connection)
//   receives the sum of both contributions without split layers.
//   A null `input_grads[i]` means nobody needs that gradient: skip the work.
//   A frozen parameter (lr_mult 0) gets no gradient, but the layer still
//   passes gradients to its inputs.
// * Every layer has exactly one output blob, named after the layer.
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "fcn/core/constant_frame.hpp"
#include "fcn/core/precision.hpp"
#include "fcn/core/onnx_emitter.hpp"
#include "fcn/core/spec_reader.hpp"
#include "fcn/core/tensor.hpp"

namespace fcn {

enum class Mode { train, test };

struct Param {
  std::string name;  // "<layer>.weight", "<layer>.bias"
  Tensor data;
  Tensor grad;  // same shape as data; untouched while frozen
  float lr_mult = 1.f;
  float decay_mult = 1.f;
  json init;  // initialiser spec, e.g. {"type": "gaussian", "std": 0.01}
  // Values that come from training although the solver never updates them
  // (a batch norm's running statistics, a frozen batch norm's affine): a
  // weights file for inference must hold them, where a missing frozen
  // upsampling filter is simply re-initialised.
  bool learned_state = false;
  // Graph::zero_param_grads(deferred) left this gradient unzeroed for its
  // layer's backward to write (Layer::writes_param_grads); that backward
  // clears the flag, and Graph::backward zeroes any gradient still flagged.
  bool grad_deferred = false;
  bool frozen() const { return lr_mult == 0.f; }
  bool must_be_loaded() const { return !frozen() || learned_state; }
};

// Spatial coordinate map of one layer, per axis (h, w): a point at input
// coordinate x lands at output coordinate a*x + b (Caffe's coord_map).
struct CoordMap {
  std::array<double, 2> scale{1.0, 1.0};
  std::array<double, 2> shift{0.0, 0.0};
  CoordMap then(const CoordMap& next) const;  // apply this, then `next`
};

// What every layer is built with: the keys common to all layers (name,
// inputs), read by create_layer before the type's builder reads the rest.
struct LayerContext {
  std::string name;
  std::vector<std::string> inputs;
};

class Layer {
 public:
  Layer(LayerContext context) : name_(std::move(context.name)), inputs_(std::move(context.inputs)) {}
  virtual ~Layer() = default;
  Layer(const Layer&) = delete;
  Layer& operator=(const Layer&) = delete;

  virtual std::string type() const = 0;
  const std::string& name() const { return name_; }
  const std::vector<std::string>& inputs() const { return inputs_; }

  virtual Shape reshape(const std::vector<Shape>& input_shapes) = 0;
  virtual void forward(const std::vector<const Tensor*>& inputs, Tensor& output, Mode mode) = 0;
  virtual void backward(const std::vector<const Tensor*>& inputs, const Tensor& output,
                        const Tensor& output_grad, const std::vector<Tensor*>& input_grads) = 0;

  virtual std::vector<Param*> params() { return {}; }
  // Fills every parameter from its `init` spec (called once after construction).
  // Virtual for layers whose weight shape is only known at reshape (conv,
  // deconv): they draw their seed here and initialise when they allocate.
  virtual void init_params(std::mt19937_64& rng);

  // Input index of a blob whose values backward never reads, so the graph may
  // let the output overwrite it (ReLU). -1: not in-place capable.
  virtual int in_place_input() const { return -1; }
  // Asks the layer to write max(y, 0) instead of its output y, or to stop
  // (on false); returns whether it does. The graph asks when a ReLU runs in
  // place over the output, to save that ReLU a pass over the blob.
  virtual bool rectify_output(bool on) { return false; }
  // The other side of that fusion: a layer that computes max(x, 0) in place
  // (a ReLU of slope 0) says so here, and is told by set_input_rectified
  // whether its producer has already written the rectified values.
  virtual bool is_rectifier() const { return false; }
  virtual void set_input_rectified(bool on) {}
  // Folding such a rectifier's backward into the layer that reads its output:
  // that layer's backward writes the gradient of its input 0 and can apply
  // the rectifier's bits as it writes (masks_input_grad); the graph then
  // hands it the bits before each backward (set_input_grad_kept) and tells
  // the rectifier to skip its own pass (set_backward_folded), the two
  // gradients sharing one buffer. conv1's ReLUs each cost a read and a write
  // of 125 MB of gradients a step.
  virtual bool masks_input_grad() const { return false; }
  void set_input_grad_kept(const uint16_t* kept) { input_grad_kept_ = kept; }
  // A rectifier's bits from its last forward (bit j of word i: output 16i + j
  // is positive; cpu::relu_mask_words words), or null.
  virtual const uint16_t* kept_bits() const { return nullptr; }
  virtual void set_backward_folded(bool on) {}
  // Inference folding (Graph, Mode::test of an inference graph): a layer
  // whose test-mode forward is a per-channel affine map (batch_norm on its
  // running statistics) folds itself into the weight [C, ...] and bias [C]
  // of the layer before it, so that they compute both; false: it cannot.
  virtual bool fold_into(Tensor& weight, Tensor& bias) const { return false; }
  // Whether fold_into can succeed: the graph plans a fold only then, so that
  // no layer copies its weights for a fold that cannot happen (a VGG conv
  // before its ReLU).
  virtual bool can_fold_into() const { return false; }
  // The other side: a layer with a weight and bias per output channel (conv)
  // runs its test-mode forward with `next` folded in (next.fold_into), then
  // max(y, 0) when rectify, writing what `next` would output; false: it
  // cannot, and wrote nothing. Next's params are `next`'s own to change:
  // the layer refolds when they or its own params differ from the last fold.
  virtual bool forward_folded(const std::vector<const Tensor*>& inputs, Tensor& output, Layer& next, bool rectify) {
    return false;
  }
  // The graph's precision (GraphOptions::precision). A layer that has a bf16
  // path (conv) computes in it from then on; the others stay in float.
  virtual void set_precision(Precision precision) {}
  // The graph never runs backward (GraphOptions::inference_only): a layer may
  // take forward algorithms whose decisions no backward could follow (conv:
  // F(4x4, 3x3) Winograd, see cpu::winograd_forward_tile).
  virtual void set_inference_only(bool on) {}
  // Whether backward can write input k's gradient whole instead of adding to
  // it. A graph that plans its memory tells such a layer, before each
  // backward, which input gradients hold nothing yet (set_fresh_input_grads)
  // and does not zero those: the layer writes them. Others are zeroed and
  // added to, as always. Worth it for passes over large blobs (ReLU: a
  // memset and a read of conv1's 125 MB gradients saved).
  virtual bool writes_fresh_input_grad(size_t k) const { return false; }
  void set_fresh_input_grads(std::vector<char> fresh) { fresh_input_grads_ = std::move(fresh); }
  // Whether backward writes its parameter gradients whole when they are
  // flagged grad_deferred (and clears the flag), instead of adding to them:
  // then zero_param_grads(deferred) leaves them unzeroed. fc6's weight
  // gradient is 411 MB: zeroing it and reading it back into the GEMM that
  // adds to it was ~3% of a VGG16 step.
  virtual bool writes_param_grads() const { return false; }
  // Whether backward reads the input values (false lets the graph free them).
  virtual bool backward_needs_inputs() const { return true; }
  virtual bool backward_needs_output() const { return false; }
  virtual bool is_loss() const { return false; }
  virtual CoordMap coord_map() const { return {}; }
  // Called by the graph before reshape with the coordinate maps of the input
  // blobs (relative to the graph inputs); crop "auto" derives its offset here.
  virtual void set_input_coord_maps(const std::vector<CoordMap>& input_maps) {}
  // Called by the graph after reshape with the constant frames of the input
  // blobs (fcn/core/constant_frame.hpp) and the output's shape; returns the
  // output's frame, a region the layer guarantees to fill with one value per
  // channel (bit for bit) in every forward. A layer may use its input's to
  // skip work there (conv). By default a frame ends, except through a
  // rectifier: max(x, 0) of equal numbers is equal.
  virtual ConstantFrame output_frame(const std::vector<ConstantFrame>& input_frames, const Shape& output_shape) {
    return is_rectifier() && !input_frames.empty() ? input_frames[0] : ConstantFrame{};
  }
  // Receptive field, per axis (h, w): how many pixels of its first input one
  // output pixel reads (a 3x3 conv dilated 2: 5; a pointwise layer: 1).
  // fcn describe and the tiling margin follow it through the graph.
  virtual std::array<double, 2> input_extent() const = 0;
  // Multiply-adds x 2 of the last reshape (for describe, bench); 0 for a
  // layer that only moves data.
  virtual double forward_flops() const = 0;
  // Bytes of the scratch buffer the layer's kernels need at the current
  // shapes (the im2col columns of a convolution), for memory estimates.
  virtual int64_t scratch_bytes() const { return 0; }
  // Adds the layer's inference-mode computation to an ONNX model: `inputs`
  // are the ONNX values of its inputs, `output` the value it must produce.
  // A type without an exact ONNX form throws OnnxUnsupported saying why.
  virtual void emit_onnx(OnnxEmitter& onnx, const std::vector<std::string>& inputs,
                         const std::string& output) const = 0;
  // Random draws (dropout) come from this generator; the graph seeds it.
  void set_rng(std::mt19937_64* rng) { rng_ = rng; }
  // Per-image generators (Graph::seed_images): when set and not empty,
  // image n of a batch draws from (*rngs)[n] instead, so that each image's
  // draws are those it gets in a batch of one.
  void set_image_rngs(std::vector<std::mt19937_64>* rngs) { image_rngs_ = rngs; }

 protected:
  [[noreturn]] void fail_shape(const std::string& problem, const std::vector<Shape>& input_shapes) const;
  void expect_inputs(const std::vector<Shape>& input_shapes, size_t count, int ndim = 4) const;
  std::mt19937_64* rng_ = nullptr;
  std::vector<std::mt19937_64>* image_rngs_ = nullptr;
  // In backward: whether input k's gradient holds nothing yet and must be
  // written, not added to (only for inputs writes_fresh_input_grad accepts).
  bool input_grad_fresh(size_t k) const { return k < fresh_input_grads_.size() && fresh_input_grads_[k]; }
  // In backward: the bits to apply to input 0's gradient (masks_input_grad), or null.
  const uint16_t* input_grad_kept() const { return input_grad_kept_; }

 private:
  std::string name_;
  std::vector<std::string> inputs_;
  std::vector<char> fresh_input_grads_;
  const uint16_t* input_grad_kept_ = nullptr;
};

// Creates a param with shape and init, and the common lr/decay keys.
// `prefix` is "" for the weight and "bias_" for the bias.
Param make_param(const std::string& layer_name, const std::string& suffix, const Shape& shape, json init,
                 SpecReader& reader, const std::string& prefix, float default_lr_mult, float default_decay_mult);
// Reads an initialiser spec: "msra" or {"type": "gaussian", "std": 0.01}.
json read_init(SpecReader& reader, const std::string& key, const json& fallback,
               const std::vector<std::string>& allowed);
// Fills `param.data` from `param.init` (fan-in/out from the weight shape).
void initialise_param(Param& param, std::mt19937_64& rng);

}  // namespace fcn
