#pragma once
// DIR/run.json: what a run is, for people and for report.html (the config
// says how it trains; this says who started it, where, how far it got):
//   {"command", "started", "updated", "finished" (null while running),
//    "state": "running" | "finished" | "stopped" | "failed",
//    "start_iter", "iter", "max_iter", "images_per_s", "eta_s",
//    "machine": {"host", "cpu", "cores", "threads", "blas"},
//    "model": {"name", "num_classes", "params", "trainable", "precision"},
//    "data": {"train", "val", "train_images", "val_images"},
//    "class_weights": [...] | null}
// Rewritten atomically whenever it changes state and at each validation.
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace fcn {

struct RunInfo {
  std::string command;
  std::string started, finished;  // UTC, ISO 8601; finished "" while running
  std::string state = "running";
  int64_t start_iter = 0, iter = 0, max_iter = 0;
  double images_per_s = 0, eta_s = 0;
  nlohmann::json machine, model, data;
  nlohmann::json class_weights;  // null: none
  nlohmann::json to_json() const;
};

// Now, UTC, "2026-12-03T04:05:06Z".
std::string utc_timestamp();
// The inverse: seconds since the epoch; NaN when `text` is not such a time.
double parse_utc_timestamp(const std::string& text);
// A duration for people: "4m05s", "2h05m", "3d 4h05m" (seconds >= 0).
std::string format_duration(double seconds);
// {"host", "cpu" (/proc/cpuinfo's model name), "cores", "threads", "blas"}.
nlohmann::json describe_machine(int threads);
// DIR/run.json, atomically.
void write_run_info(const std::string& dir, const RunInfo& info);

}  // namespace fcn
