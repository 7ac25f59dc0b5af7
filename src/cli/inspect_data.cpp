// fcn inspect-data: reads every label (and image header) of a config's train
// and val splits before a training run and reports sizes, class frequencies,
// median-frequency weights and everything that would stop training.
// Exit 0: training can start (warnings allowed); exit 1: problems, one line
// each saying what to fix.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "cli/output_files.hpp"
#include "fcn/core/progress.hpp"
#include "fcn/core/error.hpp"
#include "fcn/data/class_frequency.hpp"
#include "fcn/data/dataset.hpp"
#include "fcn/model/config.hpp"

namespace fcn::cli {

namespace {

// Lines of a list printed in the text report; --json holds all of them.
constexpr size_t kListedLines = 10;

struct InspectArgs {
  std::string config_file;
  std::vector<std::string> overrides;
  std::string json_out;
  int threads = 0;
};

struct SplitReport {
  std::string name;  // "train" or "val"
  std::vector<DataSource> sources;
  std::string open_error;            // the split list is missing or empty
  std::unique_ptr<Dataset> dataset;  // null when open_error is set
  LabelStats stats;
  bool stops_training = true;  // whether its problems stop `fcn train` (val: only when validating)
};

struct Duplicate {
  std::string id;
  bool same_file = false;  // both splits point at the same image file
};

struct Findings {
  std::vector<std::string> problems;  // would stop training
  std::vector<std::string> warnings;
};

struct SizeRange {
  ImageSize min, median, max;  // per dimension; the median of an even count is the lower middle
};

SplitReport inspect_split(const std::string& name, const Config& config, std::vector<DataSource> sources,
                          int threads) {
  SplitReport report;
  report.name = name;
  report.sources = std::move(sources);
  report.stops_training = name == "train" || config.solver.test_every > 0;
  try {
    report.dataset = std::make_unique<Dataset>(config.data, report.sources, config.model.zoo.num_classes);
  } catch (const Error& e) {
    report.open_error = e.what();
    return report;
  }
  Progress progress("inspect " + name, report.dataset->size());
  report.stats = collect_label_stats(*report.dataset, threads, [&](size_t done, size_t) { progress.update(done); });
  return report;
}

SizeRange size_range(const std::vector<ImageSize>& sizes) {
  std::vector<int> heights, widths;
  for (const ImageSize& s : sizes) {
    heights.push_back(s.height);
    widths.push_back(s.width);
  }
  std::sort(heights.begin(), heights.end());
  std::sort(widths.begin(), widths.end());
  const size_t middle = (sizes.size() - 1) / 2;
  return {{heights.front(), widths.front()}, {heights[middle], widths[middle]}, {heights.back(), widths.back()}};
}

std::string hw(ImageSize s) { return std::to_string(s.height) + " x " + std::to_string(s.width); }

std::string size_line(const std::vector<ImageSize>& sizes) {
  if (sizes.empty()) return "-";
  const SizeRange r = size_range(sizes);
  return "min " + hw(r.min) + ", median " + hw(r.median) + ", max " + hw(r.max);
}

double percent(int64_t part, int64_t whole) { return whole > 0 ? 100.0 * part / whole : 0.0; }

// Entries of `stats` by id (for the sizes of a mismatched entry).
size_t index_of(const LabelStats& stats, const std::string& id) {
  return static_cast<size_t>(std::find(stats.ids.begin(), stats.ids.end(), id) - stats.ids.begin());
}

std::vector<Duplicate> find_duplicates(const SplitReport& train, const SplitReport& val) {
  if (!train.dataset || !val.dataset) return {};
  namespace fs = std::filesystem;
  std::map<std::string, std::string> train_images;  // id -> canonical image path
  std::error_code ec;
  for (size_t i = 0; i < train.dataset->size(); ++i)
    train_images.emplace(train.dataset->id(i), fs::weakly_canonical(train.dataset->image_path(i), ec).string());
  std::vector<Duplicate> duplicates;
  std::set<std::string> seen;
  for (size_t i = 0; i < val.dataset->size(); ++i) {
    const auto found = train_images.find(val.dataset->id(i));
    if (found == train_images.end() || !seen.insert(found->first).second) continue;
    const std::string val_image = fs::weakly_canonical(val.dataset->image_path(i), ec).string();
    duplicates.push_back({found->first, found->second == val_image});
  }
  return duplicates;
}

// --- the verdict -----------------------------------------------------------

// A problem when it stops training, else a warning that says why it does not.
void add_split_finding(Findings& findings, const SplitReport& split, const Config& config, const std::string& what) {
  if (!split.stops_training)
    findings.warnings.push_back(what + " (validation is off: solver.test_every is 0)");
  else if (config.data.on_error == "skip" && split.dataset)
    findings.warnings.push_back(what + " (data.on_error is skip: training skips these entries)");
  else
    findings.problems.push_back(what);
}

std::string first_ids(const std::vector<std::string>& ids) {
  std::string text;
  for (size_t i = 0; i < ids.size() && i < 3; ++i) text += (i ? ", " : "") + ids[i];
  return text + (ids.size() > 3 ? ", ..." : "");
}

void judge_split(Findings& findings, const SplitReport& split, const Config& config) {
  const std::string& name = split.name;
  if (!split.dataset) {
    add_split_finding(findings, split, config, name + ": " + split.open_error + "; fix data." + name + " or the split list");
    return;
  }
  const LabelStats& s = split.stats;
  if (!s.unreadable.empty())
    add_split_finding(findings, split, config,
                      name + ": " + std::to_string(s.unreadable.size()) + " of " + std::to_string(s.num_entries) +
                          " entries have missing or unreadable files (first: " + s.unreadable.front() +
                          "); restore the files or remove the ids from the split list");
  if (!s.size_mismatch_ids.empty())
    add_split_finding(findings, split, config,
                      name + ": " + std::to_string(s.size_mismatch_ids.size()) +
                          " labels differ in size from their image (" + first_ids(s.size_mismatch_ids) +
                          "); fix the label files or remove the ids from the split list");
  for (const auto& [value, pixels] : s.unknown_values)
    add_split_finding(findings, split, config,
                      name + ": label value " + std::to_string(value) + " (" + std::to_string(pixels) + " pixels, e.g. " +
                          first_ids(s.unknown_value_ids.at(value)) + ") is neither a class (0.." +
                          std::to_string(s.num_classes - 1) + ") nor the ignore label " +
                          std::to_string(s.ignore_label) +
                          "; fix the labels, or set model.num_classes or data.ignore_label");
  if (config.data.on_error == "skip" && split.stops_training && s.ids.size() == s.size_mismatch_ids.size())
    findings.problems.push_back(name + ": no usable entries (every one is unreadable or mismatched)");
}

void judge_classes(Findings& findings, const SplitReport& train, const std::vector<std::string>& names) {
  if (!train.dataset) return;
  for (size_t c = 0; c < names.size(); ++c)
    if (train.stats.class_pixels[c] == 0)
      findings.warnings.push_back("train: class " + std::to_string(c) + " (" + names[c] +
                                  ") has no pixels: the model cannot learn it; add images of it or drop the class");
}

void judge_duplicates(Findings& findings, const std::vector<Duplicate>& duplicates) {
  if (duplicates.empty()) return;
  std::vector<std::string> ids;
  size_t same_file = 0;
  for (const Duplicate& d : duplicates) {
    ids.push_back(d.id);
    same_file += d.same_file;
  }
  findings.warnings.push_back(std::to_string(duplicates.size()) + " ids are in both train and val (" +
                              std::to_string(same_file) + " of them the same image file; " + first_ids(ids) +
                              "): validation is not held out; remove them from one of the splits");
}

// --- the text report -------------------------------------------------------

void print_split_summary(const SplitReport& split) {
  std::printf("%s (%s):", split.name.c_str(), describe_sources(split.sources).c_str());
  if (!split.dataset) {
    std::printf(" cannot open: %s\n", split.open_error.c_str());
    return;
  }
  const LabelStats& s = split.stats;
  std::printf(" %lld images\n", static_cast<long long>(s.num_entries));
  std::printf("  image size (H x W): %s\n", size_line(s.image_sizes).c_str());
  std::printf("  label size (H x W): %s\n", size_line(s.label_sizes).c_str());
  const int64_t unknown_pixels = [&] {
    int64_t n = 0;
    for (const auto& entry : s.unknown_values) n += entry.second;
    return n;
  }();
  const int64_t all_pixels = s.class_pixel_total() + s.ignored_pixels + unknown_pixels;
  std::printf("  ignored (%lld): %lld pixels (%.2f%% of all)\n", static_cast<long long>(s.ignore_label),
              static_cast<long long>(s.ignored_pixels), percent(s.ignored_pixels, all_pixels));
}

// "pixels share images" of class c in one split, or dashes.
std::string class_columns(const SplitReport& split, size_t c) {
  char text[64];
  if (!split.dataset) {
    std::snprintf(text, sizeof(text), "%12s %7s %7s", "-", "-", "-");
  } else {
    const LabelStats& s = split.stats;
    std::snprintf(text, sizeof(text), "%12lld %6.2f%% %7lld", static_cast<long long>(s.class_pixels[c]),
                  percent(s.class_pixels[c], s.class_pixel_total()), static_cast<long long>(s.images_with_class[c]));
  }
  return text;
}

void print_class_table(const SplitReport& train, const SplitReport& val, const std::vector<std::string>& names,
                       const std::vector<double>& weights) {
  int width = 5;
  for (const auto& name : names) width = std::max(width, static_cast<int>(name.size()));
  std::printf("\nclass pixels (share of labelled pixels), images containing the class, median-frequency weight:\n");
  std::printf("  %3s  %-*s %12s %7s %7s %12s %7s %7s %8s\n", "id", width, "class", "train pixels", "share", "images",
              "val pixels", "share", "images", "weight");
  for (size_t c = 0; c < names.size(); ++c) {
    char weight[32] = "-";
    if (!weights.empty()) std::snprintf(weight, sizeof(weight), "%.4f", weights[c]);
    std::printf("  %3zu  %-*s %s %s %8s\n", c, width, names[c].c_str(), class_columns(train, c).c_str(),
                class_columns(val, c).c_str(), weight);
  }
}

void print_list(const std::string& title, const std::vector<std::string>& lines) {
  if (lines.empty()) return;
  std::printf("\n%s:\n", title.c_str());
  for (size_t i = 0; i < lines.size() && i < kListedLines; ++i) std::printf("  %s\n", lines[i].c_str());
  if (lines.size() > kListedLines) std::printf("  ... and %zu more (--json lists all)\n", lines.size() - kListedLines);
}

std::vector<std::string> unknown_value_lines(const LabelStats& s) {
  std::vector<std::string> lines;
  for (const auto& [value, pixels] : s.unknown_values) {
    std::string ids;
    for (const auto& id : s.unknown_value_ids.at(value)) ids += (ids.empty() ? "" : ", ") + id;
    lines.push_back("value " + std::to_string(value) + ": " + std::to_string(pixels) + " pixels, e.g. " + ids);
  }
  return lines;
}

std::vector<std::string> mismatch_lines(const LabelStats& s) {
  std::vector<std::string> lines;
  for (const auto& id : s.size_mismatch_ids) {
    const size_t i = index_of(s, id);
    lines.push_back(id + ": image " + hw(s.image_sizes[i]) + ", label " + hw(s.label_sizes[i]) + " (H x W)");
  }
  return lines;
}

void print_split_details(const SplitReport& split) {
  if (!split.dataset) return;
  const std::string& n = split.name;
  print_list(n + ": label values that are not classes", unknown_value_lines(split.stats));
  print_list(n + ": labels whose size differs from the image", mismatch_lines(split.stats));
  print_list(n + ": missing or unreadable files", split.stats.unreadable);
}

// --- the JSON report -------------------------------------------------------

json size_json(const std::vector<ImageSize>& sizes) {
  if (sizes.empty()) return nullptr;
  const SizeRange r = size_range(sizes);
  const auto pair = [](ImageSize s) { return json::array({s.height, s.width}); };
  return {{"min", pair(r.min)}, {"median", pair(r.median)}, {"max", pair(r.max)}};
}

json split_json(const SplitReport& split, const std::vector<std::string>& names) {
  json out = {{"name", split.name}, {"sources", json::array()}};
  for (const DataSource& s : split.sources)
    out["sources"].push_back({{"format", s.format}, {"root", s.root}, {"split", s.split}});
  out["error"] = split.dataset ? json(nullptr) : json(split.open_error);
  if (!split.dataset) return out;
  const LabelStats& s = split.stats;
  out["num_images"] = s.num_entries;
  out["readable_images"] = s.ids.size();
  out["image_size"] = size_json(s.image_sizes);
  out["label_size"] = size_json(s.label_sizes);
  out["ignored_pixels"] = s.ignored_pixels;
  out["class_pixels_total"] = s.class_pixel_total();
  out["per_class"] = json::array();
  for (size_t c = 0; c < names.size(); ++c)
    out["per_class"].push_back({{"id", c},
                                {"name", names[c]},
                                {"pixels", s.class_pixels[c]},
                                {"share", percent(s.class_pixels[c], s.class_pixel_total()) / 100},
                                {"images", s.images_with_class[c]},
                                {"pixels_of_images", s.pixels_of_images_with_class[c]}});
  out["unknown_values"] = json::array();
  for (const auto& [value, pixels] : s.unknown_values)
    out["unknown_values"].push_back({{"value", value}, {"pixels", pixels}, {"ids", s.unknown_value_ids.at(value)}});
  out["size_mismatches"] = json::array();
  for (const auto& id : s.size_mismatch_ids) {
    const size_t i = index_of(s, id);
    out["size_mismatches"].push_back({{"id", id},
                                      {"image", {s.image_sizes[i].height, s.image_sizes[i].width}},
                                      {"label", {s.label_sizes[i].height, s.label_sizes[i].width}}});
  }
  out["unreadable"] = s.unreadable;
  return out;
}

void run_inspect_data(const InspectArgs& args) {
  const Config config = load_config(args.config_file, args.overrides);
  const int64_t classes = config.model.zoo.num_classes;
  const std::vector<std::string> names = resolve_class_names(config.data, classes);
  const SplitReport train = inspect_split("train", config, train_sources(config.data), args.threads);
  const SplitReport val = inspect_split("val", config, val_sources(config.data), args.threads);
  const std::vector<double> weights = train.dataset ? median_frequency_weights(train.stats) : std::vector<double>{};
  const std::vector<Duplicate> duplicates = find_duplicates(train, val);

  Findings findings;
  judge_split(findings, train, config);
  judge_split(findings, val, config);
  judge_classes(findings, train, names);
  judge_duplicates(findings, duplicates);

  std::printf("%s: %lld classes, ignore label %lld\n", args.config_file.c_str(), static_cast<long long>(classes),
              static_cast<long long>(config.data.ignore_label));
  print_split_summary(train);
  print_split_summary(val);
  print_class_table(train, val, names, weights);
  print_split_details(train);
  print_split_details(val);
  std::printf("\n");
  for (const auto& problem : findings.problems) std::printf("problem: %s\n", problem.c_str());
  for (const auto& warning : findings.warnings) std::printf("warning: %s\n", warning.c_str());
  const bool ok = findings.problems.empty();
  if (ok)
    std::printf("verdict: ready to train (%zu warnings)\n", findings.warnings.size());
  else
    std::printf("verdict: %zu problems would stop training; fix the lines starting with 'problem:'\n",
                findings.problems.size());

  if (!args.json_out.empty()) {
    json duplicates_json = json::array();
    for (const Duplicate& d : duplicates) duplicates_json.push_back({{"id", d.id}, {"same_file", d.same_file}});
    write_json_report(args.json_out, {{"config", args.config_file},
                               {"num_classes", classes},
                               {"ignore_label", config.data.ignore_label},
                               {"class_names", names},
                               {"train", split_json(train, names)},
                               {"val", split_json(val, names)},
                               {"class_weights", {{"method", "median_frequency"}, {"weights", weights}}},
                               {"duplicates", duplicates_json},
                               {"problems", findings.problems},
                               {"warnings", findings.warnings},
                               {"ok", ok}});
  }
  std::fflush(stdout);
  if (!ok) throw CLI::RuntimeError(1);  // exit 1 without a further message: the verdict said it
}

}  // namespace

void add_inspect_data_command(CLI::App& app) {
  auto args = std::make_shared<InspectArgs>();
  auto* cmd = app.add_subcommand(
      "inspect-data",
      "Check a config's datasets before training: reads every label (and image header) of the\n"
      "train and val splits in parallel and reports the number of images, image and label sizes\n"
      "(min/median/max), pixels and images per class with their share, the median-frequency\n"
      "class weights of the training split, and every problem: label values that are neither a\n"
      "class nor the ignore label, labels whose size differs from their image, missing or\n"
      "unreadable files, empty or missing split lists. Ids in both train and val, and classes\n"
      "with no training pixels, are warnings. Ends with a verdict line.\n"
      "Exit status: 0 = training can start; 1 = something would stop it (one 'problem:' line\n"
      "each, saying what to fix). Images are checked by their header only.");
  cmd->add_option("--config", args->config_file, "config whose data.train and data.val to inspect")->required();
  cmd->add_option("--set", args->overrides, "override a config key: a.b=VALUE (repeatable)");
  cmd->add_option("--json", args->json_out, "also write the whole report as JSON to this file ('-': stdout)");
  cmd->add_option("--threads", args->threads, "decoding threads (0 = all cores)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->callback([args] { run_inspect_data(*args); });
}

}  // namespace fcn::cli
