#pragma once
// A trained model ready for inference: the run's config, its graph and the
// weights, shared by eval and predict. Masks come from a whole-image pass
// when its memory estimate fits the budget, else from overlapping tiles
// (tiling.hpp); test-time augmentation averages the class probabilities of
// flipped and rescaled inputs.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "fcn/eval/tiling.hpp"
#include "fcn/graph/graph.hpp"
#include "fcn/io/image_io.hpp"
#include "fcn/model/config.hpp"

namespace fcn {

struct InferenceOptions {
  int64_t max_memory = 0;            // bytes for one image; 0: no limit
  int64_t tile = 0;                  // > 0: always tiles with cores of this size (rounded up to the stride)
  bool tta_flip = false;             // also run the mirrored image
  std::vector<double> tta_scales{1.0};  // run the image rescaled by each factor
  bool tta() const { return tta_flip || tta_scales.size() != 1 || tta_scales[0] != 1.0; }
};

class TrainedModel {
 public:
  // Reads and validates the config (with --set overrides) and builds the
  // graph; the weights load at the first image (params are sized then).
  TrainedModel(const std::string& config_file, const std::vector<std::string>& overrides, std::string weights_file,
               InferenceOptions options = {});

  const Config& config() const { return config_; }
  const std::vector<std::string>& class_names() const { return class_names_; }
  // The mask of one image tensor [1, 3, H, W] (mean subtracted), at its size.
  Image predict_mask(const Tensor& image);
  // The predicted label map of a decoded BGR image, at its size.
  Image predict(const Image& image);
  // The class probabilities [1, K, H, W] of an image tensor [1, 3, H, W]
  // (softmax over K; with TTA the mean over the passes): predict_mask is
  // their per-pixel argmax.
  Tensor class_probabilities(const Tensor& image);
  // How an image of this size runs, for logs: "whole (est. 1.2 GiB)" or
  // "12 tiles of 1024 px (+224 px margin; est. 5.1 GiB whole, over 4.0 GiB)".
  std::string plan_description(int64_t height, int64_t width);
  // The memory a whole-image pass at this size needs by the estimate (the
  // process's resident size after loading, the graph's plan, the image's
  // buffers): what InferenceOptions::max_memory is compared with.
  int64_t whole_image_bytes(int64_t height, int64_t width);

 private:
  struct Plan {
    std::vector<Tile> tiles;  // one tile covering the image when it runs whole
    int64_t core = 0;         // 0: whole
    int64_t whole_bytes = 0;  // the estimate of a whole-image pass
  };
  void ensure_loaded(const Shape& image_shape);
  void load_weights();
  Plan plan(int64_t height, int64_t width);
  int64_t extra_bytes(int64_t height, int64_t width) const;
  // Held outside the graph while an image of this size runs: the image, the mask, the TTA buffers.
  int64_t held_bytes(int64_t height, int64_t width) const;
  // A pass over a pass_height x pass_width input (the image or a tile) while `outside` is held.
  int64_t pass_bytes(int64_t pass_height, int64_t pass_width, int64_t outside) const;
  // Runs every tile of `image` and hands its scores [1, K, h, w] to `take`.
  template <typename Take>
  void run_tiles(const Tensor& image, Take take);
  Image argmax_of(const Tensor& image);
  Tensor probabilities_of(const Tensor& image);  // [1, K, H, W], softmax over K
  // The sum of the TTA passes' probabilities at the image's size; `passes` counts them.
  Tensor tta_probability_sum(const Tensor& image, int& passes);

  Config config_;
  json spec_;
  std::string weights_file_;
  InferenceOptions options_;
  std::unique_ptr<Graph> graph_;
  std::vector<std::string> class_names_;
  TileMargins margins_;
  int64_t classes_ = 0;
  bool loaded_ = false;
  int64_t resident_after_load_ = 0;  // the process's RSS once the weights are in
  std::map<std::pair<int64_t, int64_t>, Plan> plans_;  // by image size: a split has few
};

}  // namespace fcn
