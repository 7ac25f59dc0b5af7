#include "fcn/eval/trained_model.hpp"

#include <spdlog/spdlog.h>

#include "fcn/data/dataset.hpp"
#include "fcn/core/error.hpp"
#include "fcn/eval/inference.hpp"
#include "fcn/io/safetensors.hpp"
#include "fcn/model/weights.hpp"

namespace fcn {

TrainedModel::TrainedModel(const std::string& config_file, const std::vector<std::string>& overrides,
                           std::string weights_file)
    : config_(load_config(config_file, overrides)), weights_file_(std::move(weights_file)) {
  const ModelConfig& model = config_.model;
  GraphOptions options;
  options.reuse_values = true;  // only the scores are read after forward
  graph_ = std::make_unique<Graph>(model_graph_spec(model), model.graph.is_null() ? "model" : "model.graph", options);
  class_names_ = resolve_class_names(config_.data, model.zoo.num_classes);
}

void TrainedModel::load_weights() {
  graph_->init_params(config_.solver.seed);  // frozen upsampling filters absent from the file keep their init
  const LoadReport report = load_params(*graph_, read_safetensors(weights_file_), weights_file_, LoadMode::strict);
  for (const auto& name : report.missing) {
    Param* p = graph_->find_param(name);
    if (p && !p->frozen())
      throw Error(weights_file_ + ": has no tensor for param " + name +
                  " (is it a checkpoint of this config's model? " + std::to_string(report.loaded.size()) +
                  " params matched)");
  }
  if (!report.unused.empty())
    spdlog::warn("{}: {} tensors match no param of the model (first: {})", weights_file_, report.unused.size(),
                 report.unused.front());
  loaded_ = true;
}

const Tensor& TrainedModel::scores(const Tensor& image) {
  if (!loaded_) {
    // params are sized at the first reshape, so reshape before loading
    std::map<std::string, Shape> shapes;
    for (const auto& name : graph_->input_names())
      shapes[name] = name == "data" ? image.shape() : Shape{1, graph_->input_channels(name), image.h(), image.w()};
    graph_->reshape(shapes);
    load_weights();
  }
  return infer_scores(*graph_, image);
}

Image TrainedModel::predict(const Image& image) {
  return argmax_mask(scores(image_to_tensor(image, config_.data)));
}

}  // namespace fcn
