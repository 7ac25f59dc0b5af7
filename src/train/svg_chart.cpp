#include "fcn/train/svg_chart.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "fcn/train/html.hpp"

namespace fcn {

namespace {

constexpr double kWidth = 560, kHeight = 300;  // line chart viewBox: about 1:1 in a desktop column
constexpr double kLeft = 58, kRight = 30, kTop = 30, kBottom = 44;
constexpr size_t kMaxPoints = 2000;  // per series, after thinning
constexpr size_t kMaxLabel = 20;     // characters of an axis label

// A coordinate in the viewBox, one decimal.
std::string px(double v) { return fmt::format("{:.1f}", v); }

std::string short_label(const std::string& label) {
  return label.size() <= kMaxLabel ? label : label.substr(0, kMaxLabel - 1) + "~";
}

// Maps a value range onto a pixel range, linearly or by log10.
struct Scale {
  double low = 0, high = 1;
  bool log = false;
  double px_low = 0, px_high = 1;
  double at(double v) const {
    const double t =
        log ? (std::log10(v) - std::log10(low)) / (std::log10(high) - std::log10(low)) : (v - low) / (high - low);
    return px_low + (px_high - px_low) * t;
  }
  bool shows(double v) const { return std::isfinite(v) && (!log || v > 0); }
};

// The tick values of a scale: round linear steps, or the decades of a log axis.
std::vector<double> ticks(const Scale& s) {
  std::vector<double> out;
  if (s.log) {
    for (double e = std::ceil(std::log10(s.low) - 1e-9); e <= std::log10(s.high) + 1e-9; ++e)
      out.push_back(std::pow(10.0, e));
    return out;
  }
  const double step = nice_step(s.high - s.low, 5);
  for (double v = std::ceil(s.low / step) * step; v <= s.high + step * 1e-6; v += step)
    out.push_back(std::fabs(v) < step * 1e-9 ? 0.0 : v);
  return out;
}

// [low, high] of the finite (and, on a log axis, positive) values, widened to
// round ticks; a flat or empty range still gets a visible span.
Scale fit_scale(std::vector<double> values, bool log, double fixed_low, double fixed_high) {
  Scale s;
  s.log = log;
  values.erase(std::remove_if(values.begin(), values.end(), [&](double v) { return !s.shows(v); }), values.end());
  const auto [min_it, max_it] = std::minmax_element(values.begin(), values.end());
  double low = values.empty() ? (log ? 1e-3 : 0.0) : *min_it, high = values.empty() ? 1.0 : *max_it;
  if (std::isfinite(fixed_low)) low = fixed_low;
  if (std::isfinite(fixed_high)) high = fixed_high;
  if (log) {
    s.low = std::pow(10.0, std::floor(std::log10(low)));
    s.high = std::pow(10.0, std::ceil(std::log10(high)));
    if (s.high <= s.low) s.high = s.low * 10;
    return s;
  }
  if (!std::isfinite(fixed_low) && low > 0) low = 0;  // curves read best from zero
  if (high <= low) high = low + (low == 0 ? 1.0 : std::fabs(low));
  const double step = nice_step(high - low, 5);
  s.low = std::isfinite(fixed_low) ? low : std::floor(low / step) * step;
  s.high = std::isfinite(fixed_high) ? high : std::ceil(high / step) * step;
  return s;
}

// At most kMaxPoints points: the min and max of each of kMaxPoints/2 buckets, in x order.
std::vector<ChartPoint> thinned(const std::vector<ChartPoint>& points) {
  if (points.size() <= kMaxPoints) return points;
  std::vector<ChartPoint> out;
  const size_t bucket = (points.size() + kMaxPoints / 2 - 1) / (kMaxPoints / 2);
  for (size_t start = 0; start < points.size(); start += bucket) {
    const auto first = points.begin() + start, last = points.begin() + std::min(points.size(), start + bucket);
    const auto [low, high] = std::minmax_element(first, last, [](auto& a, auto& b) { return a.y < b.y; });
    if (low < high)
      out.insert(out.end(), {*low, *high});
    else
      out.insert(out.end(), {*high, *low});
  }
  return out;
}

std::string legend(const std::vector<std::string>& names, const std::vector<std::string>& colors) {
  std::string out = "<div class=\"legend\">";
  for (size_t i = 0; i < names.size(); ++i)
    out += "<span><i style=\"background:" + html_escape(colors[i]) + "\"></i>" + html_escape(names[i]) + "</span>";
  return out + "</div>";
}

std::string svg_open(const std::string& title, double width, double height) {
  return "<svg viewBox=\"0 0 " + px(width) + " " + px(height) + "\" role=\"img\" aria-label=\"" + html_escape(title) +
         "\">";
}

// Grid lines and labels of both axes, the frame and the axis titles.
std::string line_axes(const LineChart& chart, const Scale& x, const Scale& y) {
  std::string out;
  for (double v : ticks(y))
    out += fmt::format("<line class=\"grid\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>", px(kLeft), px(y.at(v)),
                       px(kWidth - kRight), px(y.at(v))) +
           fmt::format("<text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>", px(kLeft - 6),
                       px(y.at(v) + 4), format_number(v, 3));
  for (double v : ticks(x))
    out += fmt::format("<text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>", px(x.at(v)),
                       px(kHeight - kBottom + 16), format_number(v, 6));
  out += fmt::format("<rect class=\"frame\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>", px(kLeft), px(kTop),
                     px(kWidth - kLeft - kRight), px(kHeight - kTop - kBottom));
  out += fmt::format("<text class=\"axis\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                     px((kLeft + kWidth - kRight) / 2), px(kHeight - 6), html_escape(chart.x_label));
  out += fmt::format("<text class=\"axis\" x=\"{}\" y=\"{}\">{}</text>", px(kLeft), px(kTop - 10),
                     html_escape(chart.y_label + (chart.log_y ? " (log scale)" : "")));
  return out;
}

// The series as polylines, broken where a value cannot be drawn.
std::string series_lines(const ChartSeries& series, const Scale& x, const Scale& y) {
  std::string out, run;
  size_t run_points = 0;
  auto flush = [&] {
    if (run_points > 1)
      out += "<polyline fill=\"none\" stroke=\"" + html_escape(series.color) + "\" points=\"" + run + "\"/>";
    run.clear();
    run_points = 0;
  };
  for (const ChartPoint& p : thinned(series.points)) {
    if (!y.shows(p.y)) {
      flush();
      continue;
    }
    run += (run.empty() ? "" : " ") + px(x.at(p.x)) + "," + px(y.at(std::clamp(p.y, y.low, y.high)));
    ++run_points;
  }
  flush();
  return out;
}

// One marker per point; a missing value is a hollow marker on the x axis.
std::string series_markers(const ChartSeries& series, const Scale& x, const Scale& y) {
  std::string out;
  for (const ChartPoint& p : series.points) {
    const bool shown = y.shows(p.y);
    const std::string tip = html_escape(series.name) + ", iteration " + format_number(p.x, 10) + ": " +
                            (shown ? format_number(p.y) : "no value");
    out += fmt::format(
        "<circle class=\"{}{}\" cx=\"{}\" cy=\"{}\" r=\"4\" fill=\"{}\" stroke=\"{}\"><title>{}</title></circle>",
        html_escape(series.point_class), shown ? "" : " missing", px(x.at(p.x)),
        px(shown ? y.at(std::clamp(p.y, y.low, y.high)) : y.px_low), shown ? html_escape(series.color) : "white",
        html_escape(series.color), tip);
  }
  return out;
}

}  // namespace

std::string svg_line_chart(const LineChart& chart, const std::vector<ChartSeries>& series) {
  std::vector<double> xs{0.0}, ys;
  for (const auto& s : series)
    for (const ChartPoint& p : s.points) {
      xs.push_back(p.x);
      ys.push_back(p.y);
    }
  Scale x = fit_scale(xs, false, 0.0, kNoValue), y = fit_scale(ys, chart.log_y, chart.y_min, chart.y_max);
  x.px_low = kLeft, x.px_high = kWidth - kRight;
  y.px_low = kHeight - kBottom, y.px_high = kTop;
  std::string out = "<figure class=\"chart\">" + svg_open(chart.title, kWidth, kHeight) + line_axes(chart, x, y);
  for (const auto& s : series) out += series_lines(s, x, y);
  for (const auto& s : series)
    if (!s.point_class.empty()) out += series_markers(s, x, y);
  out += "</svg>";
  if (series.size() > 1) {
    std::vector<std::string> names, colors;
    for (const auto& s : series) names.push_back(s.name), colors.push_back(s.color);
    out += legend(names, colors);
  }
  return out + "<figcaption>" + html_escape(chart.title) + "</figcaption></figure>\n";
}

std::string svg_bar_chart(const BarChart& chart, const std::vector<BarGroup>& groups) {
  constexpr double kBar = 10, kGap = 6, kLabel = 160, kRightPad = 30, kBarsTop = 28;
  const size_t bars = chart.series_names.size();
  const double row = bars * kBar + kGap, width = 560;
  const double height = kBarsTop + row * static_cast<double>(groups.size()) + 8;
  std::vector<double> values;
  for (const auto& g : groups) values.insert(values.end(), g.values.begin(), g.values.end());
  if (std::isfinite(chart.band_low)) values.insert(values.end(), {chart.band_low, chart.band_high});
  Scale x = fit_scale(values, chart.log_x, chart.log_x ? kNoValue : 0.0, kNoValue);
  x.px_low = kLabel, x.px_high = width - kRightPad;
  std::string out = "<figure class=\"chart bars\">" + svg_open(chart.title, width, height);
  if (std::isfinite(chart.band_low))
    out +=
        fmt::format("<rect class=\"band\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"><title>{} .. {}</title></rect>",
                    px(x.at(chart.band_low)), px(kBarsTop - 4), px(x.at(chart.band_high) - x.at(chart.band_low)),
                    px(height - kBarsTop), format_number(chart.band_low), format_number(chart.band_high));
  for (double v : ticks(x))
    out += fmt::format(
        "<line class=\"grid\" x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\"/><text class=\"tick\" x=\"{0}\" "
        "y=\"{3}\" text-anchor=\"middle\">{4}</text>",
        px(x.at(v)), px(kBarsTop - 4), px(height - 4), px(kBarsTop - 10), format_number(v, 3));
  for (size_t g = 0; g < groups.size(); ++g) {
    const double top = kBarsTop + row * static_cast<double>(g);
    out += fmt::format("<text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}<title>{}</title></text>",
                       px(kLabel - 6), px(top + bars * kBar / 2 + 4), html_escape(short_label(groups[g].label)),
                       html_escape(groups[g].label));
    for (size_t b = 0; b < bars && b < groups[g].values.size(); ++b) {
      const double v = groups[g].values[b];
      if (!x.shows(v)) continue;
      out += fmt::format(
          "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"><title>{}, {}: {}{}</title></rect>",
          px(kLabel), px(top + kBar * static_cast<double>(b)),
          px(std::max(1.0, x.at(std::clamp(v, x.low, x.high)) - kLabel)), px(kBar - 1),
          html_escape(chart.series_colors[b]), html_escape(groups[g].label), html_escape(chart.series_names[b]),
          format_number(v), html_escape(chart.unit));
    }
  }
  out += "</svg>";
  if (bars > 1) out += legend(chart.series_names, chart.series_colors);
  return out + "<figcaption>" + html_escape(chart.title) + (chart.log_x ? " (log scale)" : "") +
         "</figcaption></figure>\n";
}

namespace {

// White -> dark blue as the row share goes 0 -> 1.
std::string heat_color(double share) {
  const double t = std::clamp(share, 0.0, 1.0);
  auto channel = [&](double dark) { return static_cast<int>(std::lround(255 + (dark - 255) * t)); };
  return fmt::format("rgb({},{},{})", channel(8), channel(48), channel(107));
}

std::string heat_cell(double x, double y, double cell, int64_t count, double row_total, const std::string& truth,
                      const std::string& predicted, bool show_text) {
  const double share = row_total > 0 ? static_cast<double>(count) / row_total : 0.0;
  std::string out = fmt::format(
      "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"><title>truth {}, predicted "
      "{}: {} pixels ({} of the class)</title></rect>",
      px(x), px(y), px(cell), px(cell), row_total > 0 ? heat_color(share) : "#eee", html_escape(truth),
      html_escape(predicted), count, format_percent(static_cast<double>(count), row_total));
  if (show_text && row_total > 0)
    out +=
        fmt::format("<text class=\"cell\" x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"{}\">{}</text>",
                    px(x + cell / 2), px(y + cell / 2 + 4), share > 0.5 ? "white" : "#222", std::lround(100 * share));
  return out;
}

}  // namespace

std::string svg_heat_map(const std::string& id, const std::vector<std::string>& labels,
                         const std::vector<std::vector<int64_t>>& counts) {
  constexpr double kCell = 30, kMargin = 160;
  const size_t n = counts.size();
  auto label = [&](size_t i) { return i < labels.size() ? labels[i] : "class_" + std::to_string(i); };
  const double size = kMargin + kCell * static_cast<double>(n) + 8;
  const double width = size + 70;  // room for the last column label, slanted to the right
  // drawn at its own size at most (a 5-class matrix is not blown up to the
  // page width); a large one keeps 540 px on a phone and scrolls sideways
  std::string out = fmt::format("<figure class=\"chart heat\" id=\"{}\" style=\"max-width:{}px;--heat-min:{}px\">",
                                html_escape(id), px(width), px(std::min(width, 540.0))) +
                    svg_open("confusion matrix", width, size + 20);
  for (size_t i = 0; i < n; ++i) {
    const double at = kMargin + kCell * static_cast<double>(i) + kCell / 2;
    out += fmt::format("<text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>", px(kMargin - 6),
                       px(at + 4), html_escape(short_label(label(i))));
    out += fmt::format("<text class=\"tick\" transform=\"translate({},{}) rotate(-60)\">{}</text>", px(at + 4),
                       px(kMargin - 6), html_escape(short_label(label(i))));
  }
  for (size_t r = 0; r < n; ++r) {
    double total = 0;
    for (int64_t c : counts[r]) total += static_cast<double>(c);
    for (size_t c = 0; c < n; ++c)
      out += heat_cell(kMargin + kCell * static_cast<double>(c), kMargin + kCell * static_cast<double>(r), kCell,
                       counts[r][c], total, label(r), label(c), n <= 24);
  }
  out +=
      fmt::format("<text class=\"axis\" x=\"{}\" y=\"{}\">rows: ground truth; columns: prediction; % of the row</text>",
                  px(8), px(size + 12));
  return out + "</svg><figcaption>confusion matrix of the last validation</figcaption></figure>\n";
}

double nice_step(double range, int ticks) {
  const double raw = range / ticks;
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0})
    if (m * power >= raw) return m * power;
  return 10.0 * power;
}

}  // namespace fcn
