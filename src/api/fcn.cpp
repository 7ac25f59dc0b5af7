// The public API (include/fcn/fcn.hpp) over the engine: TrainedModel for
// inference, Trainer for training, evaluate_split for scores. Only the
// conversions between cv::Mat and fcn's own types live here.
#include "fcn/fcn.hpp"

#include <csignal>
#include <cstring>
#include <limits>
#include <mutex>
#include <optional>

#include "fcn/core/version.hpp"
#include "fcn/cpu/threads.hpp"
#include "fcn/data/dataset.hpp"
#include "fcn/eval/evaluate_split.hpp"
#include "fcn/eval/memory_estimate.hpp"
#include "fcn/eval/metrics.hpp"
#include "fcn/eval/trained_model.hpp"
#include "fcn/io/image_io.hpp"
#include "fcn/io/palette.hpp"
#include "fcn/train/trainer.hpp"

namespace fcn {

namespace {

Image image_from_mat(const cv::Mat& mat, int channels, const char* what) {
  if (mat.empty()) throw Error(std::string(what) + ": the image is empty");
  if (mat.depth() != CV_8U || mat.channels() != channels)
    throw Error(std::string(what) + ": expected an 8-bit " + std::to_string(channels) + "-channel image (CV_8UC" +
                std::to_string(channels) + "), got depth " + std::to_string(mat.depth()) + " with " +
                std::to_string(mat.channels()) + " channels");
  Image image(mat.rows, mat.cols, channels);
  const size_t row_bytes = static_cast<size_t>(mat.cols) * channels;
  for (int y = 0; y < mat.rows; ++y) std::memcpy(image.row(y), mat.ptr(y), row_bytes);
  return image;
}

cv::Mat mat_from_image(const Image& image) {
  cv::Mat mat(image.height, image.width, CV_8UC(image.channels));
  std::memcpy(mat.data, image.pixels.data(), image.pixels.size());
  return mat;
}

InferenceOptions inference_options(const ModelOptions& options) {
  if (options.max_memory < -1) throw Error("max_memory: expected -1 (default), 0 (no limit) or a byte count");
  if (options.tile < 0) throw Error("tile: expected 0 (tile only over max_memory) or a tile size in pixels");
  if (options.tta_scales.empty()) throw Error("tta_scales: give at least one factor (1.0: the image as it is)");
  InferenceOptions inference;
  inference.max_memory = options.max_memory == -1 ? default_max_memory() : options.max_memory;
  inference.tile = options.tile;
  inference.tta_flip = options.tta_flip;
  inference.tta_scales = options.tta_scales;
  return inference;
}

// Sets the process's compute threads when asked to, before the model is built.
void apply_threads(int threads) {
  if (threads < 0) throw Error("threads: expected 0 (leave as is) or a thread count");
  if (threads > 0) set_threads(threads);
}

double nan_if_none(const std::optional<double>& value) {
  return value ? *value : std::numeric_limits<double>::quiet_NaN();
}

Evaluation evaluation_from(const Scores& scores) {
  Evaluation evaluation;
  evaluation.pixel_accuracy = scores.pixel_acc;
  evaluation.mean_accuracy = scores.mean_acc;
  evaluation.mean_iou = scores.mean_iou;
  evaluation.frequency_weighted_iou = scores.fwavacc;
  evaluation.num_images = scores.num_images;
  evaluation.ignored_pixels = scores.ignored_pixels;
  for (const ClassScore& c : scores.per_class)
    evaluation.per_class.push_back({static_cast<int>(c.id), c.name, nan_if_none(c.iou), nan_if_none(c.acc),
                                    c.gt_pixels, c.pred_pixels});
  evaluation.json = scores_to_json(scores).dump();
  return evaluation;
}

}  // namespace

std::string version() { return version_string(); }

struct Model::Impl {
  std::mutex mutex;  // one graph: passes run one at a time
  TrainedModel model;

  Impl(const std::string& config_file, const std::string& weights_file, const ModelOptions& options)
      : model(config_file, options.overrides, weights_file, inference_options(options)) {}
};

Model::Model(const std::string& config_file, const std::string& weights_file, const ModelOptions& options) {
  apply_threads(options.threads);
  impl_ = std::make_unique<Impl>(config_file, weights_file, options);
}

Model::~Model() = default;
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;

cv::Mat Model::predict(const cv::Mat& bgr) const {
  const Image image = image_from_mat(bgr, 3, "predict");
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return mat_from_image(impl_->model.predict(image));
}

std::vector<cv::Mat> Model::probabilities(const cv::Mat& bgr) const {
  const Image image = image_from_mat(bgr, 3, "probabilities");
  Tensor probabilities;
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    probabilities = impl_->model.class_probabilities(image_to_tensor(image, impl_->model.config().data));
  }
  const int64_t plane = probabilities.h() * probabilities.w();
  std::vector<cv::Mat> maps;
  for (int64_t k = 0; k < probabilities.c(); ++k) {
    cv::Mat map(bgr.rows, bgr.cols, CV_32FC1);
    std::memcpy(map.data, probabilities.data() + k * plane, plane * sizeof(float));
    maps.push_back(map);
  }
  return maps;
}

std::string Model::plan_description(int height, int width) const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->model.plan_description(height, width);
}

int Model::num_classes() const { return static_cast<int>(impl_->model.class_names().size()); }

const std::vector<std::string>& Model::class_names() const { return impl_->model.class_names(); }

cv::Mat Model::colorize(const cv::Mat& mask) const { return mat_from_image(colorize_label(image_from_mat(mask, 1, "colorize"))); }

cv::Mat Model::overlay(const cv::Mat& bgr, const cv::Mat& mask) const {
  const Image image = image_from_mat(bgr, 3, "overlay"), label = image_from_mat(mask, 1, "overlay mask");
  if (image.height != label.height || image.width != label.width)
    throw Error("overlay: the mask is " + std::to_string(label.width) + "x" + std::to_string(label.height) +
                " but the image is " + std::to_string(image.width) + "x" + std::to_string(image.height));
  return mat_from_image(overlay_label(image, label, impl_->model.class_names()));
}

const std::vector<cv::Vec3b>& palette() {
  static const std::vector<cv::Vec3b> bgr = [] {
    std::vector<cv::Vec3b> colours;
    for (const Rgb& rgb : voc_palette()) colours.emplace_back(rgb[2], rgb[1], rgb[0]);
    return colours;
  }();
  return bgr;
}

void write_mask_png(const std::string& path, const cv::Mat& mask) {
  write_label_png(path, image_from_mat(mask, 1, path.c_str()));
}

TrainSummary train(const std::string& config_file, const std::string& out_dir, const TrainSettings& settings) {
  if (out_dir.empty()) throw Error("train: give the run directory (out_dir)");
  if (settings.overwrite && !settings.resume.empty())
    throw Error("overwrite and resume: overwrite removes the run that resume would continue; give one");
  TrainOptions options;
  options.config = load_config(config_file, settings.overrides);
  options.out_dir = out_dir;
  options.resume = settings.resume;
  options.init_weights = settings.init_weights;
  options.overwrite = settings.overwrite;
  options.command = "fcn::train(\"" + config_file + "\", \"" + out_dir + "\")";
  options.handle_signals = settings.handle_signals;
  const int64_t max_iter = options.config.solver.max_iter;
  options.on_step = [&settings, max_iter](int64_t iter, double loss, double eta_seconds) {
    bool go_on = !settings.stop.stop_requested();
    if (go_on && settings.on_progress) go_on = settings.on_progress({iter, max_iter, loss, eta_seconds});
    // the path Ctrl-C takes: checkpoint, "stopped" state
    if (!go_on) request_stop(SIGINT);
  };
  Trainer trainer(std::move(options));
  const TrainResult result = trainer.run();
  return {result.iter, result.stop_signal != 0, result.stop_signal, result.checkpoint, result.final_weights,
          result.loss};
}

Evaluation evaluate(const std::string& config_file, const std::string& weights_file, const EvalSettings& settings) {
  apply_threads(settings.model.threads);
  TrainedModel trained(config_file, settings.model.overrides, weights_file, inference_options(settings.model));
  const DataConfig& data = trained.config().data;
  const int64_t classes = trained.config().model.zoo.num_classes;
  const Dataset dataset = evaluation_dataset(data, settings.split, classes);
  const auto total = static_cast<int64_t>(dataset.size());
  const auto count = [&](int64_t position, const Sample&, const Image&, const Image&) {
    if (settings.on_progress) settings.on_progress(position + 1, total);
  };
  const ConfusionMatrix matrix = evaluate_split(
      dataset, data, classes, [&trained](const Tensor& image) { return trained.predict_mask(image); }, 0, -1, count);
  return evaluation_from(compute_scores(matrix, trained.class_names()));
}

}  // namespace fcn
