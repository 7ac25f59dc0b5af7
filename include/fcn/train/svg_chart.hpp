#pragma once
// Inline SVG charts for the run report: line charts (every curve against
// the iteration), horizontal bar charts and a heat map. Each returns one
// <figure> whose <svg> has a viewBox and no fixed size, so CSS scales it to
// the page width; tooltips are SVG <title> elements. Names and labels are
// plain text (escaped here); a colour is any CSS colour.
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace fcn {

constexpr double kNoValue = std::numeric_limits<double>::quiet_NaN();

struct ChartPoint {
  double x = 0, y = 0;
};

struct ChartSeries {
  std::string name;
  std::string color;
  std::vector<ChartPoint> points;  // non-finite y (and y <= 0 on a log axis) breaks the line
  // Non-empty: every point also gets a marker <circle class="point_class">
  // with a tooltip, one per point even when its y is missing (drawn hollow
  // on the x axis), so the markers can be counted.
  std::string point_class;
};

struct LineChart {
  std::string title;
  std::string y_label;
  std::string x_label = "iteration";
  bool log_y = false;
  double y_min = kNoValue, y_max = kNoValue;  // a fixed range; NaN: from the data
};

// A legend (HTML, wraps on narrow screens) follows when there are 2+ series.
// Series of more than a few thousand points are thinned to the minimum and
// maximum of each bucket, so spikes stay visible.
std::string svg_line_chart(const LineChart& chart, const std::vector<ChartSeries>& series);

// A round tick step (1, 2 or 5 times a power of ten) giving at most `ticks`
// steps over `range` (curves.png uses it too).
double nice_step(double range, int ticks);

struct BarGroup {
  std::string label;
  std::vector<double> values;  // one bar per series of the chart
};

struct BarChart {
  std::string title;
  std::vector<std::string> series_names, series_colors;
  bool log_x = false;
  double band_low = kNoValue, band_high = kNoValue;  // a value range shaded behind the bars
  std::string unit;                                  // appended to values in tooltips ("%")
};

// One row of bars per group, values along x (bars for 0 or non-finite
// values are left out on a log axis).
std::string svg_bar_chart(const BarChart& chart, const std::vector<BarGroup>& groups);

// Confusion matrix: rows ground truth, columns prediction, coloured by the
// row-normalised count (the share of the class's pixels predicted as each
// class); tooltips give the count and the percentage. `id` names the figure.
std::string svg_heat_map(const std::string& id, const std::vector<std::string>& labels,
                         const std::vector<std::vector<int64_t>>& counts);

}  // namespace fcn
