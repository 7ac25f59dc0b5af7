#pragma once
// A trained model ready for inference: the run's config, its graph and the
// weights, shared by eval and predict.
#include <memory>
#include <string>
#include <vector>

#include "fcn/model/config.hpp"
#include "fcn/graph/graph.hpp"
#include "fcn/io/image_io.hpp"

namespace fcn {

class TrainedModel {
 public:
  // Reads and validates the config (with --set overrides) and builds the
  // graph; the weights load at the first image (params are sized then).
  TrainedModel(const std::string& config_file, const std::vector<std::string>& overrides, std::string weights_file);

  const Config& config() const { return config_; }
  const std::vector<std::string>& class_names() const { return class_names_; }
  // Scores of one image tensor [1, 3, H, W] (mean subtracted).
  const Tensor& scores(const Tensor& image);
  // The predicted label map of a decoded BGR image, at its size.
  Image predict(const Image& image);

 private:
  void load_weights();
  Config config_;
  std::string weights_file_;
  std::unique_ptr<Graph> graph_;
  std::vector<std::string> class_names_;
  bool loaded_ = false;
};

}  // namespace fcn
