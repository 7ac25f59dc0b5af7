#include "fcn/data/class_frequency.hpp"

#include <omp.h>

#include <algorithm>
#include <array>
#include <exception>
#include <filesystem>
#include <numeric>

#include "fcn/data/layout.hpp"

namespace fcn {

namespace {

// What one entry contributes; entries are decoded in parallel, then merged
// in dataset order so the result does not depend on the thread count.
struct EntryCounts {
  std::string problem;  // empty when both files were read
  ImageSize image, label;
  std::array<int64_t, 256> histogram{};  // label value -> pixels (labels are 8-bit)
};

void add_problem(std::string& problems, const std::string& problem) {
  problems += (problems.empty() ? "" : "; ") + problem;
}

// Runs `read` on an existing file, turning every failure into a problem
// string; returns whether it succeeded.
template <typename Read>
bool read_file_into(const std::string& what, const std::string& path, std::string& problems, Read read) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    add_problem(problems, what + " " + path + ": no such file");
    return false;
  }
  try {
    read();
    return true;
  } catch (const std::exception& e) {
    add_problem(problems, e.what());
    return false;
  }
}

EntryCounts count_entry(const Dataset& dataset, size_t index) {
  EntryCounts counts;
  const std::string image_path = dataset.image_path(index), label_path = dataset.label_path(index);
  read_file_into("image", image_path, counts.problem, [&] { counts.image = read_image_size(image_path); });
  read_file_into("label", label_path, counts.problem, [&] {
    const Image label = read_label_file(label_path);
    counts.label = {label.height, label.width};
    for (uint8_t value : label.pixels) ++counts.histogram[value];
  });
  return counts;
}

bool same_size(ImageSize a, ImageSize b) { return a.height == b.height && a.width == b.width; }

void add_unknown_value(LabelStats& stats, int64_t value, int64_t pixels, const std::string& id) {
  stats.unknown_values[value] += pixels;
  std::vector<std::string>& examples = stats.unknown_value_ids[value];
  if (examples.size() < kUnknownValueExampleIds) examples.push_back(id);
}

void merge_entry(LabelStats& stats, const std::string& id, const EntryCounts& counts) {
  if (!counts.problem.empty()) {
    stats.unreadable.push_back(id + ": " + counts.problem);
    return;
  }
  stats.ids.push_back(id);
  stats.image_sizes.push_back(counts.image);
  stats.label_sizes.push_back(counts.label);
  if (!same_size(counts.image, counts.label)) stats.size_mismatch_ids.push_back(id);
  const int64_t classes = stats.num_classes;
  const int64_t class_pixels = std::accumulate(counts.histogram.begin(), counts.histogram.begin() + classes, int64_t{0});
  for (int64_t value = 0; value < 256; ++value) {
    const int64_t pixels = counts.histogram[value];
    if (pixels == 0) continue;
    if (value < classes) {
      stats.class_pixels[value] += pixels;
      stats.images_with_class[value] += 1;
      stats.pixels_of_images_with_class[value] += class_pixels;
    } else if (value == stats.ignore_label) {
      stats.ignored_pixels += pixels;
    } else {
      add_unknown_value(stats, value, pixels, id);
    }
  }
}

}  // namespace

int64_t LabelStats::class_pixel_total() const {
  return std::accumulate(class_pixels.begin(), class_pixels.end(), int64_t{0});
}

LabelStats collect_label_stats(const Dataset& dataset, int threads,
                               const std::function<void(size_t, size_t)>& progress) {
  LabelStats stats;
  stats.num_classes = dataset.num_classes();
  stats.ignore_label = dataset.config().ignore_label;
  stats.num_entries = static_cast<int64_t>(dataset.size());
  stats.class_pixels.assign(stats.num_classes, 0);
  stats.images_with_class.assign(stats.num_classes, 0);
  stats.pixels_of_images_with_class.assign(stats.num_classes, 0);
  const int workers = threads > 0 ? threads : omp_get_max_threads();
  // Blocks bound the memory of pending counts and give the progress
  // callback a single caller (this thread, between blocks).
  const size_t total = dataset.size(), block = std::max<size_t>(64, 16 * static_cast<size_t>(workers));
  std::vector<EntryCounts> counts;
  for (size_t begin = 0; begin < total; begin += block) {
    const size_t end = std::min(total, begin + block);
    counts.assign(end - begin, EntryCounts{});
    // count_entry catches everything, so nothing escapes the parallel region
#pragma omp parallel for schedule(dynamic, 1) num_threads(workers)
    for (int64_t i = static_cast<int64_t>(begin); i < static_cast<int64_t>(end); ++i)
      counts[i - begin] = count_entry(dataset, static_cast<size_t>(i));
    for (size_t i = begin; i < end; ++i) merge_entry(stats, dataset.id(i), counts[i - begin]);
    if (progress) progress(end, total);
  }
  return stats;
}

std::vector<double> median_frequency_weights(const LabelStats& stats) {
  std::vector<double> frequency(stats.num_classes, 0.0), present;
  for (int64_t c = 0; c < stats.num_classes; ++c) {
    if (stats.class_pixels[c] == 0) continue;
    frequency[c] = static_cast<double>(stats.class_pixels[c]) / static_cast<double>(stats.pixels_of_images_with_class[c]);
    present.push_back(frequency[c]);
  }
  std::vector<double> weights(stats.num_classes, 0.0);
  if (present.empty()) return weights;
  std::sort(present.begin(), present.end());
  const size_t middle = present.size() / 2;
  const double median = present.size() % 2 ? present[middle] : 0.5 * (present[middle - 1] + present[middle]);
  for (int64_t c = 0; c < stats.num_classes; ++c)
    if (frequency[c] > 0) weights[c] = median / frequency[c];
  return weights;
}

}  // namespace fcn
