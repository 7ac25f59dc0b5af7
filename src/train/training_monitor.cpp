#include "fcn/train/training_monitor.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace fcn {

namespace {

// A validation "predicts one class" when that class takes this share of the
// predicted pixels.
constexpr double kSingleClassShare = 0.995;
// The loss "has not moved" when the two halves' means differ by less than this, relatively.
constexpr double kPlateauTolerance = 0.01;

double mean_of(const std::deque<std::pair<int64_t, double>>& points, int64_t from_iter, int64_t to_iter) {
  double sum = 0;
  int64_t count = 0;
  for (const auto& [iter, loss] : points)
    if (iter > from_iter && iter <= to_iter && std::isfinite(loss)) {
      sum += loss;
      ++count;
    }
  return count ? sum / static_cast<double>(count) : std::nan("");
}

}  // namespace

TrainingMonitor::TrainingMonitor(const SolverConfig& solver, std::set<std::string> already_given)
    : solver_(solver), given_(std::move(already_given)) {}

std::optional<TrainingWarning> TrainingMonitor::once(const std::string& kind, const std::string& message) {
  if (!given_.insert(kind).second) return std::nullopt;
  return TrainingWarning{kind, message};
}

std::optional<TrainingWarning> TrainingMonitor::after_validation(int64_t iter, const Scores& scores) {
  int64_t predicted = 0;
  const ClassScore* top = nullptr;
  for (const ClassScore& c : scores.per_class) {
    predicted += c.pred_pixels;
    if (!top || c.pred_pixels > top->pred_pixels) top = &c;
  }
  const bool single = top && predicted > 0 && top->pred_pixels >= kSingleClassShare * static_cast<double>(predicted);
  single_class_streak_ = single ? single_class_streak_ + 1 : 0;
  if (single_class_streak_ < 2) return std::nullopt;
  return once("single_class",
              fmt::format("iteration {}: the last {} validations predicted '{}' for {:.1f}% of the pixels (mean IoU {:.3f}): "
                          "the net has collapsed to one class (or, in the first few hundred iterations, has not left the majority "
                          "class yet). Usual causes: a learning rate far too high (solver.base_lr {:g}: try 10x smaller) or so "
                          "low that nothing moves, classes too unbalanced (try model.class_weights "
                          "\"median_frequency\"), or labels that are mostly void (check with fcn inspect-data)",
                          iter, single_class_streak_, top->name,
                          100.0 * static_cast<double>(top->pred_pixels) / static_cast<double>(predicted),
                          scores.mean_iou, solver_.base_lr));
}

std::optional<TrainingWarning> TrainingMonitor::after_logged_loss(int64_t iter, double mean_loss) {
  const int64_t window = solver_.plateau_window;
  if (window <= 0) return std::nullopt;
  losses_.emplace_back(iter, mean_loss);
  while (!losses_.empty() && losses_.front().first <= iter - window) losses_.pop_front();
  // the window is full once its oldest point lies in its first logged interval
  if (losses_.size() < 4 || losses_.front().first > iter - window + std::max<int64_t>(1, solver_.display_every))
    return std::nullopt;
  const double first = mean_of(losses_, iter - window, iter - window / 2);
  const double second = mean_of(losses_, iter - window / 2, iter);
  if (!std::isfinite(first) || !std::isfinite(second) || std::abs(second - first) > kPlateauTolerance * std::abs(first))
    return std::nullopt;
  return once("loss_plateau",
              fmt::format("iteration {}: the training loss has not moved in the last {} iterations (mean {:.4g}, then "
                          "{:.4g}). If validation IoU is flat too: a learning rate too low (solver.base_lr {:g}: try "
                          "10x larger) or too high (the loss stuck at a high value), or the data (fcn inspect-data); "
                          "near the end of a long run it may just have converged (solver.plateau_window 0 turns "
                          "this check off)",
                          iter, window, first, second, solver_.base_lr));
}

std::optional<TrainingWarning> TrainingMonitor::after_diagnostics(int64_t iter, const StepDiagnostics& diagnostics,
                                                                  double lr) {
  if (diagnostics.update_ratio.empty()) return std::nullopt;
  std::vector<std::pair<double, std::string>> ratios;
  for (const auto& [name, ratio] : diagnostics.update_ratio) ratios.emplace_back(ratio, name);
  std::sort(ratios.begin(), ratios.end());
  const double median = ratios[ratios.size() / 2].first;
  const double low = solver_.update_ratio_band.at(0), high = solver_.update_ratio_band.at(1);
  if (median >= low && median <= high) return std::nullopt;
  const bool too_high = median > high;
  // a decaying schedule (poly, step, ...) shrinks the updates by design: small
  // ratios after the lr fell under a tenth of base_lr say nothing about base_lr
  if (!too_high && lr < 0.1 * solver_.base_lr) return std::nullopt;
  const auto& extreme = too_high ? ratios.back() : ratios.front();
  return once("update_ratio",
              fmt::format("iteration {}: the update/weight ratio is {:.2g} (median over {} weight layers; {} {:.2g} in "
                          "{}), {} the band [{:g}, {:g}] (solver.update_ratio_band): the learning rate ({:g}) is the "
                          "likely cause; try solver.base_lr {:g}",
                          iter, median, ratios.size(), too_high ? "largest" : "smallest", extreme.first,
                          extreme.second, too_high ? "above" : "below", low, high, lr,
                          solver_.base_lr * (too_high ? 0.1 : 10.0)));
}

}  // namespace fcn
