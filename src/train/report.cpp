#include "fcn/train/report.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "fcn/core/error.hpp"
#include "fcn/io/palette.hpp"
#include "fcn/io/safetensors.hpp"
#include "fcn/train/html.hpp"
#include "fcn/train/run_info.hpp"
#include "fcn/train/run_records.hpp"
#include "fcn/train/svg_chart.hpp"

namespace fcn {

namespace fs = std::filesystem;

namespace {

using Json = nlohmann::ordered_json;

// The sane band of ||update|| / ||weight|| per SGD step: below it a layer
// barely learns, above it the step is large enough to destabilise training.
constexpr double kSaneRatioLow = 1e-4, kSaneRatioHigh = 1e-2;
const char* const kSeriesColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                     "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

const char kStyle[] = R"CSS(
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d232a;background:#f4f5f7}
main{max-width:1120px;margin:0 auto;padding:12px}
h1{font-size:1.35em;margin:6px 0 2px;word-break:break-word}
h2{font-size:1.1em;margin:0 0 8px}
h3{font-size:1em;margin:12px 0 4px}
section{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:12px 14px;margin:12px 0}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,460px),1fr));gap:8px 16px}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-size:.9em}
th,td{padding:3px 10px 3px 0;border-bottom:1px solid #e7e9ec;text-align:left;vertical-align:top}
#per-class td,#per-class th{white-space:nowrap;padding-right:14px}
table.kv th{font-weight:600;white-space:nowrap;color:#444}
table.kv td{word-break:break-word}
code{font-size:.9em;word-break:break-all}
figure{margin:6px 0 10px;overflow-x:auto}
figure svg{display:block;width:100%;height:auto}
figure.bars{max-width:760px}
figure.heat svg{min-width:var(--heat-min)}
figcaption{font-size:.85em;color:#555}
svg text{font-family:inherit}
svg .grid{stroke:#e6e8eb}
svg .frame{fill:none;stroke:#8a9099}
svg .tick{font-size:13px;fill:#4a5058}
svg .axis{font-size:14px;fill:#2a3038}
svg .cell{font-size:11px}
svg .band{fill:#2ca02c;fill-opacity:.15}
svg polyline{stroke-width:2;stroke-linejoin:round}
.legend{display:flex;flex-wrap:wrap;gap:2px 14px;font-size:.85em;margin:4px 0}
.legend i{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:5px;vertical-align:-1px}
img.samples{display:block;width:100%;max-width:640px;height:auto;image-rendering:pixelated}
.state{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;background:#6b7280;font-size:.85em}
.state.running{background:#2563eb}.state.finished{background:#15803d}.state.failed{background:#b91c1c}
.state.stopped{background:#b45309}
.empty{color:#6b7280;font-style:italic;margin:4px 0}
ul.warnings{padding-left:18px;margin:4px 0}
ul.warnings li{margin:3px 0}
pre{overflow-x:auto;font-size:.8em;background:#f3f4f6;padding:8px;border-radius:6px}
@media (max-width:600px){body{font-size:14px}main{padding:6px}section{padding:8px 10px;margin:8px 0}}
)CSS";

std::string read_file_or_empty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

// A JSON file as an object; an empty object when missing or unreadable
// (`problem` then says which, for the page).
Json read_object(const std::string& path, std::string& problem) {
  if (!fs::exists(path)) {
    problem = "no " + fs::path(path).filename().string();
    return Json::object();
  }
  Json value = Json::parse(read_file_or_empty(path), nullptr, false);
  if (value.is_discarded() || !value.is_object()) {
    problem = fs::path(path).filename().string() + " does not parse as a JSON object";
    return Json::object();
  }
  return value;
}

const Json& member(const Json& object, const char* key) {
  static const Json kNull;
  if (!object.is_object()) return kNull;
  const auto it = object.find(key);
  return it == object.end() ? kNull : *it;
}

// A JSON value as page text (escaped): strings as they are, numbers in
// short form, anything else as compact JSON; "" for null.
std::string text_of(const Json& value) {
  if (value.is_null()) return "";
  if (value.is_string()) return html_escape(value.get<std::string>());
  if (value.is_number_integer()) return fmt::format("{}", value.get<int64_t>());
  if (value.is_number()) return format_number(value.get<double>());
  return html_escape(value.dump());
}

// seconds since the epoch of a run.json time; NaN when it is not one.
double utc_seconds(const Json& value) { return value.is_string() ? parse_utc_timestamp(value.get<std::string>()) : std::nan(""); }

std::string hex_color(const Rgb& rgb) { return fmt::format("#{:02x}{:02x}{:02x}", rgb[0], rgb[1], rgb[2]); }

// The class's colour in the masks of val_samples.png (VOC's colour map).
std::string class_color(int64_t id) { return hex_color(voc_palette()[static_cast<size_t>(id) % 256]); }

std::string section(const std::string& id, const std::string& title, const std::string& body) {
  return "<section id=\"" + id + "\"><h2>" + html_escape(title) + "</h2>\n" + body + "</section>\n";
}

std::string empty_note(const std::string& text) { return "<p class=\"empty\">" + html_escape(text) + "</p>\n"; }

// Everything the page is built from.
struct RunFiles {
  std::string dir;
  Json config, run;
  std::string config_problem, run_problem;
  RunRecords records;
  std::string samples_png;  // bytes; empty when missing
};

RunFiles read_run_files(const std::string& dir) {
  RunFiles files;
  files.dir = dir;
  files.config = read_object(dir + "/config.json", files.config_problem);
  files.run = read_object(dir + "/run.json", files.run_problem);
  files.records = read_run_records(dir + "/metrics.jsonl");
  if (fs::exists(dir + "/val_samples.png")) files.samples_png = read_file_or_empty(dir + "/val_samples.png");
  return files;
}

// ---- summary ----

// "12 / 100" from run.json, else from the last record and the config's solver.max_iter.
std::string iterations_text(const RunFiles& f) {
  Json done = member(f.run, "iter"), max = member(f.run, "max_iter");
  const auto& r = f.records;
  if (done.is_null() && (!r.steps.empty() || !r.validations.empty()))
    done = std::max(r.steps.empty() ? 0 : r.steps.back().iter, r.validations.empty() ? 0 : r.validations.back().iter);
  if (max.is_null()) max = member(member(f.config, "solver"), "max_iter");
  return (done.is_null() ? "?" : text_of(done)) + " / " + (max.is_null() ? "?" : text_of(max));
}

// "started S, finished F; ran 2h05m", or "started S, updated U; ran 1h05m; ETA 3h10m" while it runs.
std::string timing_text(const Json& run) {
  const Json& started = member(run, "started");
  const Json& finished = member(run, "finished");
  const Json& last = finished.is_null() ? member(run, "updated") : finished;
  std::string out = "started " + (started.is_null() ? "?" : text_of(started));
  if (!last.is_null()) out += (finished.is_null() ? ", updated " : ", finished ") + text_of(last);
  const double ran = utc_seconds(last) - utc_seconds(started);
  if (std::isfinite(ran) && ran >= 0) out += "; ran " + format_duration(ran);
  const Json& eta = member(run, "eta_s");
  if (member(run, "state") == "running" && eta.is_number() && eta.get<double>() >= 0)
    out += "; ETA " + format_duration(eta.get<double>());
  return out;
}

std::string model_text(const RunFiles& f) {
  const Json& model = member(f.run, "model");
  const Json& config_model = member(f.config, "model");
  std::string name = text_of(member(model, "name"));
  if (name.empty()) name = text_of(member(config_model, "arch"));
  std::string out = name.empty() ? "?" : name;
  Json classes = member(model, "num_classes");
  if (classes.is_null()) classes = member(config_model, "num_classes");
  if (!classes.is_null()) out += ", " + text_of(classes) + " classes";
  if (member(model, "params").is_number_integer())
    out += fmt::format(", {:.2f} M params", member(model, "params").get<double>() / 1e6);
  if (member(model, "trainable").is_number_integer())
    out += fmt::format(" ({:.2f} M trainable)", member(model, "trainable").get<double>() / 1e6);
  if (!member(model, "precision").is_null()) out += ", " + text_of(member(model, "precision"));
  return out;
}

// "key value, key value" of the object's non-null members.
std::string members_text(const Json& object) {
  std::string out;
  if (!object.is_object()) return text_of(object);
  for (const auto& [key, value] : object.items())
    if (!value.is_null()) out += (out.empty() ? "" : "; ") + html_escape(key) + " " + text_of(value);
  return out;
}

std::string images_per_s_text(const RunFiles& f) {
  if (member(f.run, "images_per_s").is_number()) return text_of(member(f.run, "images_per_s"));
  for (auto it = f.records.steps.rbegin(); it != f.records.steps.rend(); ++it)
    if (std::isfinite(it->images_per_s))
      return format_number(it->images_per_s, 3) + " (iteration " + std::to_string(it->iter) + ")";
  return "";
}

std::string last_validation_text(const RunRecords& r) {
  if (r.validations.empty()) return "no validation yet";
  const auto& v = r.validations.back();
  return fmt::format("iteration {}: mean IoU {}, pixel acc {}, mean acc {}, fwavacc {}", v.iter,
                     format_number(v.scores.mean_iou), format_number(v.scores.pixel_acc),
                     format_number(v.scores.mean_acc), format_number(v.scores.fwavacc));
}

std::string summary_section(const RunFiles& f) {
  std::vector<std::pair<std::string, std::string>> rows;
  auto add = [&](const std::string& name, const std::string& value) {
    if (!value.empty()) rows.emplace_back(name, value);
  };
  if (!member(f.run, "command").is_null()) add("command", "<code>" + text_of(member(f.run, "command")) + "</code>");
  add("state",
      f.run_problem.empty() ? text_of(member(f.run, "state")) : "unknown (" + html_escape(f.run_problem) + ")");
  if (f.run_problem.empty()) add("time", timing_text(f.run));
  add("iterations", iterations_text(f));
  add("images/s", images_per_s_text(f));
  add("model", model_text(f));
  add("machine", members_text(member(f.run, "machine")));
  add("data", members_text(member(f.run, "data")));
  add("class weights", text_of(member(f.run, "class_weights")));
  add("last validation", html_escape(last_validation_text(f.records)));
  return section("summary", "Summary", html_key_values(rows));
}

// ---- curves ----

std::string step_chart(const std::vector<StepRecord>& steps, double StepRecord::*field, const std::string& name,
                       const std::string& color) {
  ChartSeries series{name, color, {}, ""};
  for (const auto& s : steps) series.points.push_back({static_cast<double>(s.iter), s.*field});
  return svg_line_chart({name, name}, {series});
}

std::string validation_chart(const std::vector<ValidationRecord>& validations) {
  ChartSeries iou{"mean IoU", "#d62728", {}, "val-point"}, pixel{"pixel acc", "#1f77b4", {}, ""},
      mean_acc{"mean acc", "#2ca02c", {}, ""};
  for (const auto& v : validations) {
    const double x = static_cast<double>(v.iter);
    iou.points.push_back({x, v.scores.mean_iou});
    pixel.points.push_back({x, v.scores.pixel_acc});
    mean_acc.points.push_back({x, v.scores.mean_acc});
  }
  LineChart chart{"validation mean IoU (one marker per validation), pixel and mean accuracy", "score"};
  chart.y_min = 0, chart.y_max = 1;
  return svg_line_chart(chart, {iou, pixel, mean_acc});
}

// One line per class of the last validation, through every validation that scored it.
std::string per_class_iou_chart(const std::vector<ValidationRecord>& validations) {
  std::vector<ChartSeries> lines;
  for (const ClassScore& c : validations.back().scores.per_class) {
    ChartSeries line{c.name, class_color(c.id), {}, ""};
    for (const auto& v : validations)
      for (const ClassScore& earlier : v.scores.per_class)
        if (earlier.id == c.id) line.points.push_back({static_cast<double>(v.iter), earlier.iou.value_or(kNoValue)});
    lines.push_back(std::move(line));
  }
  if (lines.empty()) return empty_note("no per-class scores in the validation records");
  LineChart chart{"per-class validation IoU", "IoU"};
  chart.y_min = 0, chart.y_max = 1;
  return svg_line_chart(chart, lines);
}

std::string curves_section(const RunRecords& r) {
  std::string body = "<div class=\"grid2\">";
  body += r.steps.empty() ? empty_note("no training steps logged yet")
                          : step_chart(r.steps, &StepRecord::loss, "training loss", "#1f77b4") +
                                step_chart(r.steps, &StepRecord::lr, "learning rate", "#9467bd");
  body += r.validations.empty() ? empty_note("no validation yet")
                                : validation_chart(r.validations) + per_class_iou_chart(r.validations);
  return section("curves", "Curves", body + "</div>\n");
}

// ---- the last validation ----

std::string optional_number(const std::optional<double>& v) { return v ? format_number(*v) : "n/a"; }

std::string per_class_table(const Scores& s) {
  double gt_total = 0, pred_total = 0;
  for (const auto& c : s.per_class)
    gt_total += static_cast<double>(c.gt_pixels), pred_total += static_cast<double>(c.pred_pixels);
  HtmlTable table{"per-class", {"id", "class", "IoU", "acc", "gt pixels", "predicted pixels"}, {}};
  for (const auto& c : s.per_class)
    table.rows.push_back(
        {std::to_string(c.id),
         "<i class=\"swatch\" style=\"color:" + class_color(c.id) + "\">&#9632;</i> " + html_escape(c.name),
         optional_number(c.iou), optional_number(c.acc), format_percent(static_cast<double>(c.gt_pixels), gt_total),
         format_percent(static_cast<double>(c.pred_pixels), pred_total)});
  return html_table(table);
}

// Shares of the scored pixels: a class the net never predicts, or predicts
// everywhere, stands out here before its IoU says why.
std::string class_histogram(const Scores& s) {
  double gt_total = 0, pred_total = 0;
  for (const auto& c : s.per_class)
    gt_total += static_cast<double>(c.gt_pixels), pred_total += static_cast<double>(c.pred_pixels);
  BarChart chart;
  chart.title = "share of pixels per class: ground truth vs predicted";
  chart.series_names = {"ground truth", "predicted"};
  chart.series_colors = {"#7f7f7f", "#d62728"};
  chart.unit = "%";
  std::vector<BarGroup> groups;
  for (const auto& c : s.per_class)
    groups.push_back({c.name,
                      {gt_total > 0 ? 100.0 * static_cast<double>(c.gt_pixels) / gt_total : kNoValue,
                       pred_total > 0 ? 100.0 * static_cast<double>(c.pred_pixels) / pred_total : kNoValue}});
  return svg_bar_chart(chart, groups);
}

std::vector<std::string> class_names(const RunFiles& f, size_t count) {
  std::vector<std::string> names;
  if (!f.records.validations.empty())
    for (const auto& c : f.records.validations.back().scores.per_class) names.push_back(c.name);
  const Json& configured = member(member(f.config, "data"), "class_names");
  if (names.empty() && configured.is_array())
    for (const auto& name : configured) names.push_back(name.is_string() ? name.get<std::string>() : name.dump());
  for (size_t i = names.size(); i < count; ++i) names.push_back("class_" + std::to_string(i));
  return names;
}

std::string validation_section(const RunFiles& f) {
  const auto& validations = f.records.validations;
  if (validations.empty()) return section("validation", "Last validation", empty_note("no validation yet"));
  const ValidationRecord& last = validations.back();
  const Scores& s = last.scores;
  std::string body = "<p>" + html_escape(last_validation_text(f.records)) +
                     fmt::format("; {} images, {} ignored pixels</p>\n", s.num_images, s.ignored_pixels);
  body += s.per_class.empty() ? empty_note("no per-class scores in this record (an older run)")
                              : "<h3>Per class</h3>" + per_class_table(s);
  body += "<h3>Confusion matrix</h3>";
  body += last.confusion.empty() ? empty_note("no confusion matrix in this record")
                                 : svg_heat_map("confusion", class_names(f, last.confusion.size()), last.confusion);
  body += "<h3>Predicted vs true classes</h3>";
  body += s.per_class.empty() ? empty_note("no per-class pixel counts in this record") : class_histogram(s);
  return section("validation", fmt::format("Last validation (iteration {})", last.iter), body);
}

std::string samples_section(const std::string& png) {
  if (png.empty()) return section("samples", "Sample predictions", empty_note("no val_samples.png yet"));
  if (png.compare(0, 4, "\x89PNG") != 0)
    return section("samples", "Sample predictions", empty_note("val_samples.png is not a PNG file"));
  return section("samples", "Sample predictions",
                 "<figure><img class=\"samples\" alt=\"validation samples\" src=\"data:image/png;base64," +
                     base64_encode(png) +
                     "\"><figcaption>each row: image | ground truth | prediction</figcaption></figure>\n");
}

// ---- diagnostics ----

// The newest step whose diagnostics hold `field`.
const NamedValues* latest(const std::vector<StepRecord>& steps, NamedValues LoggedDiagnostics::*field, int64_t& iter) {
  for (auto it = steps.rbegin(); it != steps.rend(); ++it)
    if (!(it->diag.*field).empty()) {
      iter = it->iter;
      return &(it->diag.*field);
    }
  return nullptr;
}

std::string layer_bars(const std::vector<StepRecord>& steps, NamedValues LoggedDiagnostics::*field,
                       const std::string& what, bool band) {
  int64_t iter = 0;
  const NamedValues* values = latest(steps, field, iter);
  if (!values) return empty_note("no " + what + " recorded");
  BarChart chart;
  chart.title = fmt::format("{} per param, iteration {}", what, iter);
  chart.series_names = {what};
  chart.series_colors = {band ? "#ff7f0e" : "#1f77b4"};
  chart.log_x = true;
  if (band) chart.band_low = kSaneRatioLow, chart.band_high = kSaneRatioHigh;
  std::vector<BarGroup> groups;
  for (const auto& [name, value] : *values) groups.push_back({name, {value}});
  return svg_bar_chart(chart, groups);
}

std::string relu_zero_chart(const std::vector<StepRecord>& steps) {
  std::vector<ChartSeries> lines;
  for (const auto& step : steps)
    for (const auto& [block, fraction] : step.diag.relu_zero) {
      auto line = std::find_if(lines.begin(), lines.end(), [&](const ChartSeries& s) { return s.name == block; });
      if (line == lines.end()) {
        lines.push_back({block, kSeriesColors[lines.size() % std::size(kSeriesColors)], {}, ""});
        line = lines.end() - 1;
      }
      line->points.push_back({static_cast<double>(step.iter), fraction});
    }
  if (lines.empty()) return empty_note("no ReLU zero fractions recorded");
  LineChart chart{"fraction of zero ReLU outputs per block (near 1: a dead block)", "zero fraction"};
  chart.y_min = 0, chart.y_max = 1;
  return svg_line_chart(chart, lines);
}

std::string warnings_list(const std::vector<WarningRecord>& warnings) {
  if (warnings.empty()) return empty_note("no warnings");
  std::string out = "<ul class=\"warnings\">";
  for (const auto& w : warnings)
    out += fmt::format("<li>iteration {}: <b>{}</b> {}</li>\n", w.iter, html_escape(w.kind), html_escape(w.message));
  return out + "</ul>\n";
}

std::string diagnostics_section(const RunRecords& r) {
  std::string body = "<h3>Warnings</h3>" + warnings_list(r.warnings);
  body += "<div class=\"grid2\"><div><h3>Gradient norms</h3>" +
          layer_bars(r.steps, &LoggedDiagnostics::grad_norm, "gradient L2 norm", false) + "</div>";
  body += "<div><h3>Update / weight ratio</h3>" +
          layer_bars(r.steps, &LoggedDiagnostics::update_ratio, "||update|| / ||weight||", true) +
          fmt::format("<p class=\"note\">shaded: the usual range {:g} .. {:g}</p></div></div>", kSaneRatioLow,
                      kSaneRatioHigh);
  body += "<h3>ReLU zero fraction</h3>" + relu_zero_chart(r.steps);
  return section("diagnostics", "Diagnostics", body);
}

std::string config_section(const RunFiles& f) {
  if (!f.config_problem.empty()) return section("config", "Config", empty_note(f.config_problem));
  return section("config", "Config",
                 "<details><summary>config.json</summary><pre>" + html_escape(f.config.dump(2)) + "</pre></details>\n");
}

std::string page(const RunFiles& f) {
  const std::string name = fs::path(f.dir).lexically_normal().filename().string();
  const std::string state = member(f.run, "state").is_string() ? member(f.run, "state").get<std::string>() : "";
  std::string out =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src "
      "'unsafe-inline'\">\n"
      "<title>fcn run " +
      html_escape(name) + "</title>\n<style>" + kStyle + "</style></head>\n<body><main>\n";
  out += "<h1>fcn run " + html_escape(name) +
         (state.empty() ? "" : " <span class=\"state " + html_escape(state) + "\">" + html_escape(state) + "</span>") +
         "</h1>\n";
  out += summary_section(f) + curves_section(f.records) + validation_section(f) + samples_section(f.samples_png) +
         diagnostics_section(f.records) + config_section(f);
  return out + "</main></body></html>\n";
}

}  // namespace

void write_run_report(const std::string& run_dir, const std::string& out_path) {
  if (!fs::is_directory(run_dir)) throw Error(run_dir + ": no such run directory");
  if (!fs::exists(run_dir + "/metrics.jsonl") && !fs::exists(run_dir + "/config.json"))
    throw Error(run_dir + ": holds no run (no metrics.jsonl, no config.json)");
  write_file_atomic(out_path.empty() ? run_dir + "/report.html" : out_path, page(read_run_files(run_dir)));
}

}  // namespace fcn
