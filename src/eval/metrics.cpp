#include "fcn/eval/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "fcn/core/error.hpp"

namespace fcn {

ConfusionMatrix::ConfusionMatrix(int64_t num_classes) : num_classes_(num_classes) {
  if (num_classes < 1) throw Error("confusion matrix: number of classes must be positive, got " + std::to_string(num_classes));
  counts_.assign(static_cast<size_t>(num_classes * num_classes), 0);
}

template <typename T>
void ConfusionMatrix::add(const T* ground_truth, const T* prediction, size_t n) {
  const auto classes = static_cast<T>(num_classes_);
  for (size_t i = 0; i < n; ++i) {
    const T gt = ground_truth[i];
    if (!(gt >= 0 && gt < classes)) {
      ++ignored_pixels_;
      continue;
    }
    const T pred = prediction[i];
    if (!(pred >= 0 && pred < classes))
      throw Error("predicted value " + std::to_string(pred) + " at pixel " + std::to_string(i) + " is not a class (0.." +
                  std::to_string(num_classes_ - 1) + ")");
    ++counts_[static_cast<size_t>(static_cast<int64_t>(gt) * num_classes_ + static_cast<int64_t>(pred))];
  }
  ++num_images_;
}

template void ConfusionMatrix::add<uint8_t>(const uint8_t*, const uint8_t*, size_t);
template void ConfusionMatrix::add<int32_t>(const int32_t*, const int32_t*, size_t);
template void ConfusionMatrix::add<int64_t>(const int64_t*, const int64_t*, size_t);
template void ConfusionMatrix::add<float>(const float*, const float*, size_t);

void ConfusionMatrix::merge(const ConfusionMatrix& other) {
  if (other.num_classes_ != num_classes_) throw Error("confusion matrix: cannot merge different class counts");
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  ignored_pixels_ += other.ignored_pixels_;
  num_images_ += other.num_images_;
}

std::vector<int64_t> ConfusionMatrix::raw_counts() const {
  std::vector<int64_t> out = counts_;
  out.push_back(ignored_pixels_);
  out.push_back(num_images_);
  return out;
}

void ConfusionMatrix::set_raw_counts(const std::vector<int64_t>& counts) {
  if (counts.size() != counts_.size() + 2)
    throw Error("confusion matrix: expected " + std::to_string(counts_.size() + 2) + " raw counts, got " +
                std::to_string(counts.size()));
  std::copy(counts.begin(), counts.end() - 2, counts_.begin());
  ignored_pixels_ = counts[counts.size() - 2];
  num_images_ = counts.back();
}

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// numpy's nanmean: the mean of the defined values, NaN when there are none.
double nanmean(const std::vector<double>& values) {
  double sum = 0;
  int count = 0;
  for (double v : values)
    if (!std::isnan(v)) {
      sum += v;
      ++count;
    }
  return count ? sum / count : kNaN;
}

std::optional<double> defined(double v) { return std::isnan(v) ? std::nullopt : std::optional<double>(v); }

double ratio(double num, double den) { return den != 0 ? num / den : kNaN; }

}  // namespace

Scores compute_scores(const ConfusionMatrix& matrix, const std::vector<std::string>& class_names) {
  const int64_t k = matrix.num_classes();
  std::vector<double> gt(k, 0), pred(k, 0), diag(k, 0), iu(k), acc(k);
  double total = 0;
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < k; ++j) {
      const auto c = static_cast<double>(matrix.count(i, j));
      gt[i] += c;  // hist.sum(1)
      pred[j] += c;  // hist.sum(0)
      total += c;
      if (i == j) diag[i] = c;
    }
  Scores s;
  double correct = 0;
  s.fwavacc = 0;
  for (int64_t i = 0; i < k; ++i) {
    correct += diag[i];
    acc[i] = ratio(diag[i], gt[i]);
    iu[i] = ratio(diag[i], gt[i] + pred[i] - diag[i]);
    if (gt[i] > 0) s.fwavacc += gt[i] / total * iu[i];
  }
  s.pixel_acc = ratio(correct, total);
  s.mean_acc = nanmean(acc);
  s.mean_iou = nanmean(iu);
  if (total == 0) s.fwavacc = kNaN;
  s.num_images = matrix.num_images();
  s.ignored_pixels = matrix.ignored_pixels();
  for (int64_t i = 0; i < k; ++i) {
    ClassScore c;
    c.id = i;
    c.name = i < static_cast<int64_t>(class_names.size()) ? class_names[i] : "class_" + std::to_string(i);
    c.iou = defined(iu[i]);
    c.acc = defined(acc[i]);
    c.gt_pixels = static_cast<int64_t>(gt[i]);
    c.pred_pixels = static_cast<int64_t>(pred[i]);
    s.per_class.push_back(c);
  }
  return s;
}

namespace {

nlohmann::json number_or_null(double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); }
nlohmann::json number_or_null(const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); }

std::string percent(const std::optional<double>& v) {
  if (!v || std::isnan(*v)) return "     -";
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%6.2f", 100 * *v);
  return buffer;
}

}  // namespace

nlohmann::json scores_to_json(const Scores& s) {
  nlohmann::json per_class = nlohmann::json::array();
  for (const ClassScore& c : s.per_class)
    per_class.push_back({{"id", c.id},
                         {"name", c.name},
                         {"iou", number_or_null(c.iou)},
                         {"acc", number_or_null(c.acc)},
                         {"gt_pixels", c.gt_pixels},
                         {"pred_pixels", c.pred_pixels}});
  return {{"pixel_acc", number_or_null(s.pixel_acc)},
          {"mean_acc", number_or_null(s.mean_acc)},
          {"mean_iou", number_or_null(s.mean_iou)},
          {"fwavacc", number_or_null(s.fwavacc)},
          {"num_images", s.num_images},
          {"ignored_pixels", s.ignored_pixels},
          {"per_class", per_class}};
}

std::string format_scores(const Scores& s) {
  size_t name_width = 5;
  for (const ClassScore& c : s.per_class) name_width = std::max(name_width, c.name.size());
  std::string out;
  char line[512];
  std::snprintf(line, sizeof(line), "%3s  %-*s  %6s  %6s  %12s  %12s\n", "id", static_cast<int>(name_width), "class",
                "IoU%", "acc%", "gt_pixels", "pred_pixels");
  out += line;
  for (const ClassScore& c : s.per_class) {
    std::snprintf(line, sizeof(line), "%3lld  %-*s  %s  %s  %12lld  %12lld\n", static_cast<long long>(c.id),
                  static_cast<int>(name_width), c.name.c_str(), percent(c.iou).c_str(), percent(c.acc).c_str(),
                  static_cast<long long>(c.gt_pixels), static_cast<long long>(c.pred_pixels));
    out += line;
  }
  std::snprintf(line, sizeof(line),
                "pixel acc %s%%  mean acc %s%%  mean IoU %s%%  fwavacc %s%%  (%lld images, %lld ignored pixels)\n",
                percent(s.pixel_acc).c_str(), percent(s.mean_acc).c_str(), percent(s.mean_iou).c_str(),
                percent(s.fwavacc).c_str(), static_cast<long long>(s.num_images),
                static_cast<long long>(s.ignored_pixels));
  out += line;
  return out;
}

}  // namespace fcn
