#pragma once
// fcn's public C++ API: the one header a program includes to run, train and
// score fcn models. It is what the `fcn` command line is built on, so the
// same inputs give the same masks, runs and scores as `fcn predict`,
// `fcn train` and `fcn eval --json`.
//
//   #include <fcn/fcn.hpp>
//   fcn::Model model("runs/demo/config.json", "runs/demo/final.safetensors");
//   cv::Mat mask = model.predict(cv::imread("photo.jpg"));  // CV_8UC1, class ids
//   fcn::write_mask_png("mask.png", mask);                   // as fcn predict --out
//
// CMake: find_package(fcn 0.1 REQUIRED) then target_link_libraries(app PRIVATE
// fcn::fcn) (libfcn.so; fcn::fcn_static is libfcn.a, with
// find_package(fcn COMPONENTS static)). pkg-config: `pkg-config --cflags --libs fcn`.
//
// Errors: every function reports bad input (a missing file, a config key that
// does not parse, weights of another model, an image of the wrong type) by
// throwing fcn::Error, whose what() is the one line `fcn` prints after
// "error: ". Out of memory is std::bad_alloc.
//
// Only the standard library, OpenCV's core module and fcn/core/error.hpp (the
// exception type) are included here; nothing else of fcn's internals is part
// of this interface or its ABI.
#include <opencv2/core.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "fcn/core/error.hpp"

namespace fcn {

// The library's version, "MAJOR.MINOR.PATCH" (as `fcn --version` prints).
std::string version();

// How a Model loads and runs (the inference options of `fcn predict`).
struct ModelOptions {
  // Config keys to override, "a.b=VALUE" each, as `--set`.
  std::vector<std::string> overrides;
  // Memory for one image in bytes: an image whose estimate exceeds it runs in
  // overlapping tiles, with the same mask. -1: 80% of the memory available
  // when the Model is made (the command's default); 0: no limit.
  int64_t max_memory = -1;
  // > 0: always run in tiles with cores of this many pixels (--tile).
  int64_t tile = 0;
  // Test-time augmentation (--tta): also run the mirrored image, and the
  // image rescaled by each factor; the class probabilities are averaged.
  bool tta_flip = false;
  std::vector<double> tta_scales{1.0};
  // > 0: set the process's compute threads (OpenMP and OpenBLAS, both
  // process-wide) to this many when the Model is made; 0: leave them as they
  // are (the libraries' default: every core).
  int threads = 0;
};

// A trained model: its config (a run's config.json), the network and its
// weights (.safetensors).
//
// Thread safety: every const member may be called from several threads at
// once on one Model. predict() and probabilities() share one network, so
// concurrent calls run one after the other (a mutex); for parallel
// throughput give each thread its own Model.
class Model {
 public:
  // Reads and checks the config and builds the network. The weights load at
  // the first image (the network's parameters are sized then), so a weights
  // file of another model fails in the first predict().
  Model(const std::string& config_file, const std::string& weights_file, const ModelOptions& options = {});
  ~Model();
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;

  // The label mask of an 8-bit BGR image (CV_8UC3, any size, as cv::imread
  // gives): CV_8UC1 of the image's size, pixel = class id (0..K-1). Equal to
  // the mask `fcn predict` writes for the same image and options.
  cv::Mat predict(const cv::Mat& bgr) const;
  // The class probabilities (softmax over the classes, averaged over the TTA
  // passes) of an 8-bit BGR image: K single-channel CV_32FC1 maps of the
  // image's size, element k for class k. predict() is their per-pixel argmax.
  std::vector<cv::Mat> probabilities(const cv::Mat& bgr) const;

  // How an image of this size runs, for logs: "whole (est. 1.2 GiB)" or
  // "12 tiles of 1024 px (+224 px margin; est. 5.1 GiB whole, over 4.0 GiB)".
  std::string plan_description(int height, int width) const;

  int num_classes() const;
  // K names, class_names()[id] (the config's data.class_names, else VOC's).
  const std::vector<std::string>& class_names() const;

  // The mask in the palette's colours (CV_8UC3, BGR).
  cv::Mat colorize(const cv::Mat& mask) const;
  // `bgr` blended with the coloured mask, with a legend of the classes
  // present on the right: the image `fcn predict --overlay` writes.
  cv::Mat overlay(const cv::Mat& bgr, const cv::Mat& mask) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Pascal VOC's colour map, 256 entries in BGR order: class id = index
// (0 background black, 1 aeroplane dark red, ..., 255 void cream).
const std::vector<cv::Vec3b>& palette();

// Writes a CV_8UC1 mask as an 8-bit palette PNG with VOC's colours (pixel
// value = class id): the file `fcn predict --out` writes, byte for byte.
void write_mask_png(const std::string& path, const cv::Mat& mask);

// Training ----------------------------------------------------------------

// Where a training run is, after each iteration.
struct TrainProgress {
  int64_t iteration = 0;  // iterations done, 1-based
  int64_t max_iter = 0;   // the config's solver.max_iter
  double loss = 0;        // the mean loss of this iteration's samples
  double eta_seconds = 0; // estimated time to max_iter at the pace so far
};

// Stops a run from any thread: after the current iteration, with the
// checkpoint and the "stopped" state that Ctrl-C gives. Copies share one flag.
class StopToken {
 public:
  StopToken() : flag_(std::make_shared<std::atomic<bool>>(false)) {}
  void request_stop() const { flag_->store(true); }
  bool stop_requested() const { return flag_->load(); }

 private:
  std::shared_ptr<std::atomic<bool>> flag_;
};

// The options of `fcn train` beside --config and --out.
struct TrainSettings {
  std::vector<std::string> overrides;  // "a.b=VALUE" each, as --set
  std::string resume;                  // checkpoint to continue from (--resume)
  std::string init_weights;            // weights to start from (--init)
  bool overwrite = false;              // remove an earlier run's files in the directory first (--overwrite)
  // SIGINT/SIGTERM stop the run after the current iteration (as the command
  // does) while train() runs; the previous handlers come back after it.
  bool handle_signals = true;
  // Called after every iteration on the calling thread; returning false
  // stops the run as the StopToken does.
  std::function<bool(const TrainProgress&)> on_progress;
  StopToken stop;
};

struct TrainSummary {
  int64_t iterations = 0;     // iterations done
  bool stopped = false;       // ended early: StopToken, on_progress or a signal
  int stop_signal = 0;        // SIGINT/SIGTERM when a signal (or a stop request, SIGINT) ended it
  std::string checkpoint;     // the newest checkpoint (resume from it)
  std::string final_weights;  // out_dir/final.safetensors; "" when stopped
  double loss = 0;            // of the last iteration
};

// Trains the config (overrides applied) into run directory `out_dir` exactly
// as `fcn train --config config_file --out out_dir` does: the same files
// (config.json, run.json, metrics.jsonl, checkpoints/, final.safetensors, ...)
// and, with the same config, seed and thread count, the same numbers. Logs
// and the progress line go to stderr as the command's do.
TrainSummary train(const std::string& config_file, const std::string& out_dir, const TrainSettings& settings = {});

// Evaluation ----------------------------------------------------------------

struct ClassEvaluation {
  int id = 0;
  std::string name;
  double iou = 0;       // NaN when the class is in neither ground truth nor prediction
  double accuracy = 0;  // NaN when the class is not in the ground truth
  int64_t gt_pixels = 0;
  int64_t pred_pixels = 0;
};

// The scores of `fcn eval` (as the FCN reference score.py; void pixels ignored).
struct Evaluation {
  double pixel_accuracy = 0;
  double mean_accuracy = 0;
  double mean_iou = 0;
  double frequency_weighted_iou = 0;
  int64_t num_images = 0;
  int64_t ignored_pixels = 0;
  std::vector<ClassEvaluation> per_class;
  std::string json;  // the JSON `fcn eval --json` writes, same text
};

struct EvalSettings {
  ModelOptions model;
  std::string split;  // a split of the validation sources' datasets; "" = the config's data.val (--split)
  // Called after each image: (images done, images in the split).
  std::function<void(int64_t done, int64_t total)> on_progress;
};

// Scores the model over a split: `fcn eval --config --weights --json`.
Evaluation evaluate(const std::string& config_file, const std::string& weights_file,
                    const EvalSettings& settings = {});

}  // namespace fcn
