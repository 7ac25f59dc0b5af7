#include "fcn/train/run_log.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cmath>
#include <fstream>

#include "fcn/core/error.hpp"
#include "fcn/io/safetensors.hpp"
#include "fcn/train/run_info.hpp"

namespace fcn {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double number_or_nan(const nlohmann::json& j) { return j.is_number() ? j.get<double>() : std::nan(""); }

}  // namespace

RunLog::RunLog(const std::string& out_dir, int64_t start_iter, int64_t max_iter, int64_t iter_size,
               int64_t display_every)
    : out_dir_(out_dir), max_iter_(max_iter), iter_size_(iter_size), display_every_(display_every),
      tty_(isatty(fileno(stderr)) != 0), window_start_(Clock::now()), start_iter_(start_iter),
      run_start_(window_start_) {
  const std::string path = out_dir + "/metrics.jsonl";
  // Keep the earlier records up to the resumed iteration; a line cut short
  // by a crash does not parse and is dropped.
  std::string kept;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json record = nlohmann::json::parse(line, nullptr, false);
    if (record.is_discarded() || !record.is_object() || !record.contains("iter")) continue;
    const int64_t iter = record["iter"].get<int64_t>();
    if (iter > start_iter) continue;
    kept += line + "\n";
    if (record.contains("warning") && record["warning"].is_object())
      warned_kinds_.insert(record["warning"].value("kind", std::string()));
    if (record.contains("loss")) loss_points_.push_back({iter, number_or_nan(record["loss"])});
    if (record.contains("val")) iou_points_.push_back({iter, number_or_nan(record["val"].value("mean_iou", nlohmann::json()))});
  }
  in.close();
  write_file_atomic(path, kept);
  metrics_ = std::fopen(path.c_str(), "a");
  if (!metrics_) throw Error(path + ": cannot open for appending");
}

RunLog::~RunLog() {
  break_line();
  if (metrics_) std::fclose(metrics_);
}

void RunLog::append(const nlohmann::json& record) {
  const std::string line = record.dump() + "\n";
  if (std::fputs(line.c_str(), metrics_) < 0 || std::fflush(metrics_) != 0)
    spdlog::warn("{}/metrics.jsonl: write failed; the record of iteration {} is lost", out_dir_,
                 record["iter"].get<int64_t>());
}

void RunLog::reset_window() {
  window_loss_ = 0;
  window_losses_ = 0;
  window_steps_ = 0;
  window_start_ = Clock::now();
}

double RunLog::window_mean_loss() const {
  return window_losses_ ? window_loss_ / static_cast<double>(window_losses_) : std::nan("");
}

bool RunLog::logs(int64_t iter) const { return display_every_ > 0 && (iter % display_every_ == 0 || iter == max_iter_); }

double RunLog::step(int64_t iter, double loss, double lr, const nlohmann::json& diagnostics) {
  if (std::isfinite(loss)) {  // a skipped non-finite step does not poison the mean
    window_loss_ += loss;
    ++window_losses_;
  }
  ++window_steps_;
  if (!logs(iter)) {
    if (tty_) print_progress(iter, lr, false);
    return std::nan("");
  }
  const double mean_loss = window_mean_loss();
  last_images_per_s_ = window_steps_ * iter_size_ / std::max(1e-9, seconds_since(window_start_));
  nlohmann::json record = {{"iter", iter}, {"loss", mean_loss}, {"lr", lr}, {"images_per_s", last_images_per_s_}};
  if (!diagnostics.is_null()) record["diag"] = diagnostics;
  append(record);
  loss_points_.push_back({iter, mean_loss});
  print_progress(iter, lr, true);
  reset_window();
  return mean_loss;
}

double RunLog::eta_seconds(int64_t iter) const {
  const double per_step = seconds_since(run_start_) / std::max<int64_t>(1, iter - start_iter_);
  return per_step * static_cast<double>(max_iter_ - iter);
}

void RunLog::print_progress(int64_t iter, double lr, bool keep) {
  const double images_per_s = window_steps_ * iter_size_ / std::max(1e-9, seconds_since(window_start_));
  std::fprintf(stderr, "%siter %lld/%lld  loss %.4f  lr %.3g  %.1f img/s  ETA %s%s", tty_ ? "\r\033[K" : "",
               static_cast<long long>(iter), static_cast<long long>(max_iter_), window_mean_loss(), lr,
               images_per_s, format_duration(eta_seconds(iter)).c_str(), keep ? "\n" : "");
  std::fflush(stderr);
  line_open_ = !keep;
}

void RunLog::break_line() {
  if (!line_open_) return;
  std::fputc('\n', stderr);
  line_open_ = false;
}

void RunLog::validation(int64_t iter, const Scores& s, const ConfusionMatrix& matrix) {
  nlohmann::json val = scores_to_json(s);
  nlohmann::json confusion = nlohmann::json::array();
  for (int64_t truth = 0; truth < matrix.num_classes(); ++truth) {
    nlohmann::json row = nlohmann::json::array();
    for (int64_t predicted = 0; predicted < matrix.num_classes(); ++predicted) row.push_back(matrix.count(truth, predicted));
    confusion.push_back(std::move(row));
  }
  val["confusion"] = std::move(confusion);
  append({{"iter", iter}, {"val", std::move(val)}});
  iou_points_.push_back({iter, s.mean_iou});
  break_line();
  spdlog::info("iter {}: val mean IoU {:.4f}, pixel acc {:.4f}, mean acc {:.4f}, fwavacc {:.4f} ({} images)", iter,
               s.mean_iou, s.pixel_acc, s.mean_acc, s.fwavacc, s.num_images);
}

void RunLog::warning(int64_t iter, const std::string& kind, const std::string& message) {
  append({{"iter", iter}, {"warning", {{"kind", kind}, {"message", message}}}});
  break_line();
  spdlog::warn("{}", message);
}

void RunLog::write_curves() const { write_curves_png(out_dir_ + "/curves.png", loss_points_, iou_points_); }

}  // namespace fcn
