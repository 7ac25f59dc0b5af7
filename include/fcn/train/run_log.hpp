#pragma once
// The record of a training run: DIR/metrics.jsonl, one JSON object per line:
//   logged step  {"iter", "loss", "lr", "images_per_s", "diag": {...}}
//                ("diag": diagnostics.hpp, when the trainer measured them)
//   validation   {"iter", "val": {scores_to_json (metrics.hpp) + "confusion":
//                [[count]] rows = ground truth, columns = prediction}}
//   warning      {"iter", "warning": {"kind", "message"}} (training_monitor.hpp)
// the progress line on stderr and the points of DIR/curves.png.
//
// Progress: on a terminal one line rewritten in place (\r) after every
// step, kept (newline) every display_every steps; otherwise a plain line
// every display_every steps. The loss shown and logged is the mean over
// the steps since the last logged one.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "fcn/train/curves.hpp"
#include "fcn/eval/metrics.hpp"

namespace fcn {

class RunLog {
 public:
  // Keeps the records of an earlier run in DIR/metrics.jsonl up to
  // `start_iter` (a resumed run continues them; later ones are dropped).
  RunLog(const std::string& out_dir, int64_t start_iter, int64_t max_iter, int64_t iter_size, int64_t display_every);
  ~RunLog();

  // Whether step(iter, ...) writes a record (display_every, the last step).
  bool logs(int64_t iter) const;
  // After each step; `iter` counts the steps completed. `diagnostics` (null:
  // none) joins the record when the step is logged. Returns the mean loss
  // logged, NaN when the step was not logged.
  double step(int64_t iter, double loss, double lr, const nlohmann::json& diagnostics = nullptr);
  void validation(int64_t iter, const Scores& scores, const ConfusionMatrix& matrix);
  void warning(int64_t iter, const std::string& kind, const std::string& message);
  // Images per second of the last logged window, and the time left at this
  // process's pace (seconds).
  double images_per_s() const { return last_images_per_s_; }
  double eta_seconds(int64_t iter) const;
  // The kinds of the warnings in the records kept from before start_iter (a
  // resumed run does not give them again; the monitor tracks the new ones).
  const std::set<std::string>& warned_kinds() const { return warned_kinds_; }
  // Ends a progress line rewritten in place, before other output.
  void break_line();
  // DIR/curves.png from the records so far.
  void write_curves() const;

 private:
  void append(const nlohmann::json& record);
  void print_progress(int64_t iter, double lr, bool keep);
  void reset_window();
  double window_mean_loss() const;

  std::string out_dir_;
  int64_t max_iter_, iter_size_, display_every_;
  bool tty_;
  bool line_open_ = false;
  std::FILE* metrics_ = nullptr;
  std::vector<CurvePoint> loss_points_, iou_points_;
  // the window since the last logged step
  double window_loss_ = 0;   // sum of the finite losses
  int64_t window_losses_ = 0;
  int64_t window_steps_ = 0;
  std::chrono::steady_clock::time_point window_start_;
  // for the ETA: steps and time since this process started training
  int64_t start_iter_;
  double last_images_per_s_ = 0;
  std::set<std::string> warned_kinds_;
  std::chrono::steady_clock::time_point run_start_;
};

}  // namespace fcn
