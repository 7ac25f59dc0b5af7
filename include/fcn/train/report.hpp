#pragma once
// DIR/report.html: one self-contained page about a training run, readable
// on a phone and on a desktop, that opens with no network (inline CSS and
// SVG, val_samples.png as a data: URI, a Content-Security-Policy that
// forbids every fetch). It shows the run's summary (run.json), the curves
// against the iteration (loss, learning rate, validation mean IoU with one
// `val-point` marker per validation, per-class IoU), the last validation
// (table#per-class, the confusion heat map #confusion, predicted vs true
// class shares), the sample predictions, the diagnostics (gradient norms,
// update/weight ratios, ReLU zero fractions), the warnings and the config.
// Every section works from whatever the files hold; an empty one says so.
#include <string>

namespace fcn {

// Reads DIR/config.json, DIR/run.json (may be missing), DIR/metrics.jsonl
// (see run_records.hpp) and DIR/val_samples.png (may be missing), and
// writes the page atomically to `out_path` ("" = DIR/report.html). Throws
// an Error naming DIR when it holds no run (no metrics.jsonl and no
// config.json), or naming the file that cannot be written.
void write_run_report(const std::string& run_dir, const std::string& out_path = "");

}  // namespace fcn
