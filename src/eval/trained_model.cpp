#include "fcn/eval/trained_model.hpp"

#include <malloc.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

#include "fcn/core/error.hpp"
#include "fcn/data/augment.hpp"
#include "fcn/data/dataset.hpp"
#include "fcn/eval/inference.hpp"
#include "fcn/eval/memory_estimate.hpp"
#include "fcn/io/safetensors.hpp"
#include "fcn/model/weights.hpp"

namespace fcn {

TrainedModel::TrainedModel(const std::string& config_file, const std::vector<std::string>& overrides,
                           std::string weights_file, InferenceOptions options)
    : config_(load_config(config_file, overrides)), weights_file_(std::move(weights_file)), options_(std::move(options)) {
  const ModelConfig& model = config_.model;
  spec_ = model_graph_spec(model);
  GraphOptions graph_options;
  graph_options.reuse_values = true;  // only the scores are read after forward
  graph_options.skip_loss_in_test = true;
  graph_options.inference_only = true;
  graph_options.precision = model.precision;
  graph_ = std::make_unique<Graph>(spec_, model.graph.is_null() ? "model" : "model.graph", graph_options);
  require_bgr_image_input(*graph_);
  class_names_ = resolve_class_names(config_.data, model.zoo.num_classes);
  for (double scale : options_.tta_scales)
    if (!(scale > 0.05 && scale <= 8)) throw Error("--tta scales: " + std::to_string(scale) + " is not in (0.05, 8]");
}

void TrainedModel::load_weights() {
  graph_->init_params(config_.solver.seed);  // frozen upsampling filters absent from the file keep their init
  const LoadReport report = load_params(*graph_, read_safetensors(weights_file_), weights_file_, LoadMode::strict);
  for (const auto& name : report.missing) {
    Param* p = graph_->find_param(name);
    if (p && p->must_be_loaded())
      throw Error(weights_file_ + ": has no tensor for param " + name +
                  " (is it a checkpoint of this config's model? " + std::to_string(report.loaded.size()) +
                  " params matched)");
  }
  if (!report.unused.empty())
    spdlog::warn("{}: {} tensors match no param of the model (first: {})", weights_file_, report.unused.size(),
                 report.unused.front());
  // the file's tensors are freed by now, but glibc keeps freed heap pages
  // (tensors under its mmap threshold) resident: give them back, or they
  // would sit beside the activations, outside the memory estimate
  malloc_trim(0);
  resident_after_load_ = resident_memory_bytes();
  loaded_ = true;
}

void TrainedModel::ensure_loaded(const Shape& image_shape) {
  if (loaded_) return;
  // params are sized at the first reshape, so reshape before loading; a
  // small size does (the first real pass reshapes again)
  const int64_t h = std::min<int64_t>(image_shape[2], 64), w = std::min<int64_t>(image_shape[3], 64);
  graph_->reshape(graph_->input_shapes(h, w));
  margins_ = tile_margins(*graph_);
  classes_ = graph_->blob_shape(score_blob_name(*graph_)).at(1);
  load_weights();
}

int64_t TrainedModel::extra_bytes(int64_t height, int64_t width) const {
  if (!options_.tta()) return 0;
  // the probability sum and one variant's probabilities at the largest scale
  const double largest = *std::max_element(options_.tta_scales.begin(), options_.tta_scales.end());
  const auto pixels = static_cast<double>(height * width);
  return static_cast<int64_t>(static_cast<double>(classes_ * sizeof(float)) * pixels * (1 + 2 * largest * largest));
}

int64_t TrainedModel::pass_bytes(int64_t pass_height, int64_t pass_width, int64_t outside) const {
  // what the process holds already (the loaded model, the libraries, what
  // loading left behind) is measured, not estimated; the graph's share, from
  // its memory plan, gets a 20% allowance (allocator, kernel buffers
  // the plan does not see; measured 8-10% on full-width FCN-8s)
  // measured once, after loading: later the RSS also holds an earlier
  // image's buffers, which the next pass reuses rather than adds to
  const MemoryEstimate graph = estimate_inference_memory(spec_, pass_height, pass_width, config_.model.precision);
  // OpenBLAS and the OpenMP team allocate their buffers at the first pass,
  // after `resident` was measured (measured: about 128 MiB on 2 threads)
  const int64_t compute_buffers = int64_t{128} << 20;
  return std::max(resident_after_load_ + compute_buffers, graph.params + graph.runtime) +
         (graph.blobs + graph.scratch) * 12 / 10 + outside;
}

int64_t TrainedModel::held_bytes(int64_t height, int64_t width) const {
  return inference_image_bytes(height, width) + extra_bytes(height, width);
}

int64_t TrainedModel::whole_image_bytes(int64_t height, int64_t width) {
  ensure_loaded({1, 3, height, width});
  return pass_bytes(height, width, held_bytes(height, width));
}

TrainedModel::Plan TrainedModel::plan(int64_t height, int64_t width) {
  const auto known = plans_.find({height, width});
  if (known != plans_.end()) return known->second;
  Plan& p = plans_[{height, width}];
  p.whole_bytes = whole_image_bytes(height, width);
  const bool fits = options_.max_memory <= 0 || p.whole_bytes <= options_.max_memory;
  if (options_.tile <= 0 && fits) {
    p.tiles.push_back({0, 0, height, width, 0, 0, height, width});
    return p;
  }
  const int64_t stride = margins_.stride;
  if (options_.tile > 0) {
    p.core = (options_.tile + stride - 1) / stride * stride;
  } else {
    // the largest core whose tile, with the image's own buffers, fits
    const auto tile_bytes = [&](int64_t core) {
      const int64_t side = core + 2 * margins_.margin;
      return pass_bytes(side, side, held_bytes(height, width));
    };
    int64_t low = 1, high = std::max<int64_t>(1, (std::max(height, width) + stride - 1) / stride);
    if (tile_bytes(low * stride) > options_.max_memory)
      throw Error("an image of " + std::to_string(width) + "x" + std::to_string(height) + " needs at least " +
                  format_bytes(tile_bytes(low * stride)) + " even in the smallest tiles; raise --max-memory (now " +
                  format_bytes(options_.max_memory) + ")");
    while (low < high) {  // the largest multiple of the stride that fits
      const int64_t mid = (low + high + 1) / 2;
      if (tile_bytes(mid * stride) <= options_.max_memory) low = mid;
      else high = mid - 1;
    }
    p.core = low * stride;
  }
  p.tiles = plan_tiles(height, width, p.core, margins_);
  return p;
}

std::string TrainedModel::plan_description(int64_t height, int64_t width) {
  ensure_loaded({1, 3, height, width});
  const Plan p = plan(height, width);
  const std::string whole = "est. " + format_bytes(p.whole_bytes) + " whole";
  if (p.core == 0) return "whole (" + whole + ")";
  return std::to_string(p.tiles.size()) + " tiles of " + std::to_string(p.core) + " px (+" +
         std::to_string(margins_.margin) + " px margin; " + whole +
         (options_.tile > 0 ? ", --tile" : ", over --max-memory " + format_bytes(options_.max_memory)) + ")";
}

template <typename Take>
void TrainedModel::run_tiles(const Tensor& image, Take take) {
  ensure_loaded(image.shape());
  const Plan p = plan(image.h(), image.w());
  for (const Tile& tile : p.tiles) {
    if (p.core == 0) {
      take(infer_scores(*graph_, image), tile);
    } else {
      const Tensor input = crop_tile(image, tile);
      take(infer_scores(*graph_, input), tile);
    }
  }
}

Image TrainedModel::argmax_of(const Tensor& image) {
  Image mask(static_cast<int>(image.h()), static_cast<int>(image.w()), 1);
  run_tiles(image, [&](const Tensor& scores, const Tile& tile) {
    const int64_t plane = scores.h() * scores.w(), classes = scores.c();
    for (int64_t y = 0; y < tile.core_height; ++y)
      for (int64_t x = 0; x < tile.core_width; ++x) {
        const int64_t at = (tile.core_top - tile.top + y) * scores.w() + (tile.core_left - tile.left + x);
        int64_t best = 0;  // ties go to the lowest class id, as argmax_mask
        for (int64_t k = 1; k < classes; ++k)
          if (scores[k * plane + at] > scores[best * plane + at]) best = k;
        mask.at(static_cast<int>(tile.core_top + y), static_cast<int>(tile.core_left + x)) = static_cast<uint8_t>(best);
      }
  });
  return mask;
}

Tensor TrainedModel::probabilities_of(const Tensor& image) {
  Tensor probabilities;
  run_tiles(image, [&](const Tensor& scores, const Tile& tile) {
    if (probabilities.numel() == 0) probabilities.reshape({1, scores.c(), image.h(), image.w()});
    const int64_t plane = scores.h() * scores.w(), classes = scores.c(), out_plane = image.h() * image.w();
    for (int64_t y = 0; y < tile.core_height; ++y)
      for (int64_t x = 0; x < tile.core_width; ++x) {
        const int64_t at = (tile.core_top - tile.top + y) * scores.w() + (tile.core_left - tile.left + x);
        const int64_t out = (tile.core_top + y) * image.w() + tile.core_left + x;
        float largest = scores[at];
        for (int64_t k = 1; k < classes; ++k) largest = std::max(largest, scores[k * plane + at]);
        double sum = 0;
        for (int64_t k = 0; k < classes; ++k) sum += std::exp(static_cast<double>(scores[k * plane + at] - largest));
        for (int64_t k = 0; k < classes; ++k)
          probabilities[k * out_plane + out] = static_cast<float>(std::exp(scores[k * plane + at] - largest) / sum);
      }
  });
  return probabilities;
}

Tensor TrainedModel::tta_probability_sum(const Tensor& image, int& passes) {
  // every scale and flip, each brought back to the image's size
  passes = 0;
  const int h = static_cast<int>(image.h()), w = static_cast<int>(image.w());
  Tensor sum;
  for (double scale : options_.tta_scales)
    for (bool mirrored : {false, true}) {
      if (mirrored && !options_.tta_flip) continue;
      Tensor input = image;
      if (scale != 1.0)
        resize_bilinear(input, std::max(1, static_cast<int>(std::lround(h * scale))),
                        std::max(1, static_cast<int>(std::lround(w * scale))));
      if (mirrored) flip(input);
      Tensor probabilities = probabilities_of(input);
      if (mirrored) flip(probabilities);
      if (scale != 1.0) resize_bilinear(probabilities, h, w);
      if (sum.numel() == 0) {
        sum = std::move(probabilities);
      } else {
        for (int64_t i = 0; i < sum.numel(); ++i) sum[i] += probabilities[i];
      }
      ++passes;
    }
  return sum;
}

Image TrainedModel::predict_mask(const Tensor& image) {
  if (!options_.tta()) return argmax_of(image);
  int passes = 0;
  return argmax_mask(tta_probability_sum(image, passes));  // the sum's argmax is the mean's
}

Tensor TrainedModel::class_probabilities(const Tensor& image) {
  if (!options_.tta()) return probabilities_of(image);
  int passes = 0;
  Tensor mean = tta_probability_sum(image, passes);
  for (int64_t i = 0; i < mean.numel(); ++i) mean[i] /= static_cast<float>(passes);
  return mean;
}

Image TrainedModel::predict(const Image& image) { return predict_mask(image_to_tensor(image, config_.data)); }

}  // namespace fcn
