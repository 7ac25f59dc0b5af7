#pragma once
// Segmentation scores from one confusion matrix accumulated over a split,
// exactly as the FCN reference score.py (hist[gt][pred]):
//   acc      = diag.sum() / hist.sum()
//   acc_cls  = nanmean(diag / hist.sum(1))
//   iu       = diag / (hist.sum(1) + hist.sum(0) - diag)
//   mean_iu  = nanmean(iu)
//   freq     = hist.sum(1) / hist.sum()
//   fwavacc  = (freq[freq > 0] * iu[freq > 0]).sum()
// Pixels whose ground truth is outside [0, num_classes) (void, 255) are
// skipped and counted as ignored. NaN (0/0) means "undefined": a class absent
// from the ground truth has no accuracy, one absent from both no IoU.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace fcn {

class ConfusionMatrix {
 public:
  explicit ConfusionMatrix(int64_t num_classes);

  // Adds one image: `n` ground-truth and predicted class ids. A prediction
  // outside [0, num_classes) on a scored pixel is an Error.
  template <typename T>
  void add(const T* ground_truth, const T* prediction, size_t n);
  void merge(const ConfusionMatrix& other);
  // Every count as one flat buffer (the matrix row by row, then the ignored
  // pixels and the images) and back: distributed validation sums these
  // buffers across processes.
  std::vector<int64_t> raw_counts() const;
  void set_raw_counts(const std::vector<int64_t>& counts);

  int64_t num_classes() const { return num_classes_; }
  int64_t count(int64_t ground_truth, int64_t prediction) const { return counts_[ground_truth * num_classes_ + prediction]; }
  int64_t ignored_pixels() const { return ignored_pixels_; }
  int64_t num_images() const { return num_images_; }

 private:
  int64_t num_classes_;
  std::vector<int64_t> counts_;  // [ground truth, prediction]
  int64_t ignored_pixels_ = 0;
  int64_t num_images_ = 0;
};

struct ClassScore {
  int64_t id = 0;
  std::string name;
  std::optional<double> iou;  // none when the class is absent from both
  std::optional<double> acc;  // none when the class is absent from the ground truth
  int64_t gt_pixels = 0;
  int64_t pred_pixels = 0;
};

struct Scores {
  double pixel_acc = 0;  // NaN when nothing was scored
  double mean_acc = 0;
  double mean_iou = 0;
  double fwavacc = 0;
  int64_t num_images = 0;
  int64_t ignored_pixels = 0;
  std::vector<ClassScore> per_class;
};

// `class_names` may be shorter than the class count ("class_<id>" fills in).
Scores compute_scores(const ConfusionMatrix& matrix, const std::vector<std::string>& class_names);
// {"pixel_acc", "mean_acc", "mean_iou", "fwavacc", "num_images",
//  "ignored_pixels", "per_class": [{"id", "name", "iou", "acc", "gt_pixels",
//  "pred_pixels"}]}; undefined values are null.
nlohmann::json scores_to_json(const Scores& scores);
// The per-class table followed by the four overall figures, for humans.
std::string format_scores(const Scores& scores);

}  // namespace fcn
