#pragma once
// The records of DIR/metrics.jsonl, read back for the run report. One JSON
// object per line; a line that does not parse (cut short by a crash) or is
// not an object with "iter" is skipped, and every key but "iter" may be
// missing (older runs log fewer):
//   step        {"iter", "loss", "lr", "images_per_s",
//                "diag": {"grad_norm": {param: v}, "update_ratio": {param: v},
//                         "relu_zero": {block: fraction}}}
//   validation  {"iter", "val": {"pixel_acc", "mean_acc", "mean_iou", "fwavacc",
//                "num_images", "ignored_pixels", "per_class": [...],
//                "confusion": [[count]] (rows ground truth, columns prediction)}}
//   warning     {"iter", "warning": {"kind", "message"}}
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "fcn/eval/metrics.hpp"

namespace fcn {

// name -> value in the order the file lists them (layer order).
using NamedValues = std::vector<std::pair<std::string, double>>;

// The "diag" of a step record as logged (diagnostics.hpp makes them).
struct LoggedDiagnostics {
  NamedValues grad_norm;     // L2 norm of each param's gradient
  NamedValues update_ratio;  // ||update|| / ||weight|| of the last SGD step
  NamedValues relu_zero;     // fraction of zero ReLU outputs per block
  bool empty() const { return grad_norm.empty() && update_ratio.empty() && relu_zero.empty(); }
};

struct StepRecord {
  int64_t iter = 0;
  // NaN when missing
  double loss = std::numeric_limits<double>::quiet_NaN();
  double lr = std::numeric_limits<double>::quiet_NaN();
  double images_per_s = std::numeric_limits<double>::quiet_NaN();
  LoggedDiagnostics diag;
};

struct ValidationRecord {
  int64_t iter = 0;
  Scores scores;                                // figures NaN and per_class empty when missing
  std::vector<std::vector<int64_t>> confusion;  // [ground truth][prediction]; empty when missing
};

struct WarningRecord {
  int64_t iter = 0;
  std::string kind, message;
};

struct RunRecords {
  std::vector<StepRecord> steps;
  std::vector<ValidationRecord> validations;
  std::vector<WarningRecord> warnings;
};

// A missing file gives no records.
RunRecords read_run_records(const std::string& metrics_path);

}  // namespace fcn
