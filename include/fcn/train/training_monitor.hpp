#pragma once
// Watches a run for the failures users most often cannot see, and says each
// once, with what to try (the trainer logs it and records it in
// metrics.jsonl as {"iter", "warning": {"kind", "message"}}):
//   single_class  two validations in a row predict one class for (nearly)
//                 every pixel: the "outputs all zeros" collapse
//   loss_plateau  the mean logged loss of the last solver.plateau_window
//                 iterations' second half is within 1% of the first half's
//   update_ratio  the median update/weight ratio over the weight layers
//                 (diagnostics.hpp) leaves solver.update_ratio_band
#include <cstdint>
#include <deque>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "fcn/eval/metrics.hpp"
#include "fcn/model/config.hpp"
#include "fcn/train/diagnostics.hpp"

namespace fcn {

struct TrainingWarning {
  std::string kind;     // single_class | loss_plateau | update_ratio
  std::string message;  // one line, with the numbers and what to try
};

class TrainingMonitor {
 public:
  // `already_given`: kinds not to give again (those of a resumed run's records).
  explicit TrainingMonitor(const SolverConfig& solver, std::set<std::string> already_given = {});

  std::optional<TrainingWarning> after_validation(int64_t iter, const Scores& scores);
  // `mean_loss`: the loss logged at a display step (mean since the last one).
  std::optional<TrainingWarning> after_logged_loss(int64_t iter, double mean_loss);
  std::optional<TrainingWarning> after_diagnostics(int64_t iter, const StepDiagnostics& diagnostics, double lr);

 private:
  // The warning, unless one of its kind was given already.
  std::optional<TrainingWarning> once(const std::string& kind, const std::string& message);

  const SolverConfig& solver_;
  std::set<std::string> given_;
  int single_class_streak_ = 0;
  std::deque<std::pair<int64_t, double>> losses_;  // (iter, mean loss) of the plateau window
};

}  // namespace fcn
