#include "fcn/train/curves.hpp"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "fcn/core/error.hpp"
#include "fcn/io/safetensors.hpp"
#include "fcn/train/svg_chart.hpp"

namespace fcn {

namespace {

constexpr int kWidth = 900, kHeight = 480;
constexpr int kLeft = 70, kRight = 70, kTop = 40, kBottom = 50;
const cv::Scalar kLossColor(200, 90, 30);   // BGR blue
const cv::Scalar kIouColor(20, 120, 240);   // BGR orange
const cv::Scalar kAxisColor(60, 60, 60);
const cv::Scalar kGridColor(225, 225, 225);

// Maps data coordinates (iteration, value) into the plot rectangle.
struct Axes {
  double x_max = 1, y_max = 1;
  cv::Point at(double x, double y, double y_top) const {
    const double px = kLeft + (kWidth - kLeft - kRight) * (x / x_max);
    const double py = kHeight - kBottom - (kHeight - kTop - kBottom) * (y / y_top);
    return {static_cast<int>(std::lround(px)), static_cast<int>(std::lround(py))};
  }
};

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

void text(cv::Mat& canvas, const std::string& s, cv::Point at, const cv::Scalar& color) {
  cv::putText(canvas, s, at, cv::FONT_HERSHEY_SIMPLEX, 0.45, color, 1, cv::LINE_AA);
}

void draw_frame(cv::Mat& canvas, const Axes& axes, double loss_top, double loss_step) {
  for (double y = 0; y <= loss_top + 1e-9 * loss_top; y += loss_step) {  // grid at the loss ticks
    const cv::Point left = axes.at(0, y, loss_top), right = axes.at(axes.x_max, y, loss_top);
    cv::line(canvas, left, right, kGridColor, 1);
    text(canvas, number(y), {5, left.y + 4}, kLossColor);
  }
  for (int i = 0; i <= 5; ++i) {
    const cv::Point right = axes.at(axes.x_max, i / 5.0, 1);
    cv::line(canvas, right, {right.x + 4, right.y}, kAxisColor, 1);
    text(canvas, number(i / 5.0), {right.x + 8, right.y + 4}, kIouColor);
  }
  const double step = nice_step(axes.x_max, 8);
  for (double x = 0; x <= axes.x_max + 1e-9; x += step) {
    const cv::Point bottom = axes.at(x, 0, 1);
    cv::line(canvas, bottom, {bottom.x, bottom.y + 4}, kAxisColor, 1);
    text(canvas, number(x), {bottom.x - 12, bottom.y + 18}, kAxisColor);
  }
  cv::rectangle(canvas, axes.at(0, 1, 1), axes.at(axes.x_max, 0, 1), kAxisColor, 1);
  text(canvas, "iteration", {kWidth / 2 - 30, kHeight - 10}, kAxisColor);
  text(canvas, "training loss", {kLeft, kTop - 12}, kLossColor);
  text(canvas, "val mean IoU", {kWidth - kRight - 100, kTop - 12}, kIouColor);
}

void draw_series(cv::Mat& canvas, const Axes& axes, const std::vector<CurvePoint>& points, double y_top,
                 const cv::Scalar& color, bool markers) {
  std::vector<cv::Point> line;
  for (const CurvePoint& p : points)
    if (std::isfinite(p.value)) line.push_back(axes.at(static_cast<double>(p.iter), std::min(p.value, y_top), y_top));
  if (line.size() > 1) cv::polylines(canvas, line, false, color, 2, cv::LINE_AA);
  if (markers || line.size() == 1)
    for (const cv::Point& p : line) cv::circle(canvas, p, 3, color, cv::FILLED, cv::LINE_AA);
}

}  // namespace

void write_curves_png(const std::string& path, const std::vector<CurvePoint>& loss,
                      const std::vector<CurvePoint>& val_mean_iou) {
  Axes axes;
  double loss_top = 0;
  for (const auto* series : {&loss, &val_mean_iou})
    for (const CurvePoint& p : *series) axes.x_max = std::max(axes.x_max, static_cast<double>(p.iter));
  for (const CurvePoint& p : loss)
    if (std::isfinite(p.value)) loss_top = std::max(loss_top, p.value);
  const double loss_step = nice_step(loss_top > 0 ? loss_top : 1.0, 5);
  loss_top = loss_step * std::ceil((loss_top > 0 ? loss_top : 1.0) / loss_step);

  cv::Mat canvas(kHeight, kWidth, CV_8UC3, cv::Scalar(255, 255, 255));
  draw_frame(canvas, axes, loss_top, loss_step);
  draw_series(canvas, axes, loss, loss_top, kLossColor, false);
  draw_series(canvas, axes, val_mean_iou, 1.0, kIouColor, true);
  std::vector<uchar> png;
  if (!cv::imencode(".png", canvas, png)) throw Error(path + ": cannot encode the curves chart");
  write_file_atomic(path, std::string(png.begin(), png.end()));
}

}  // namespace fcn
