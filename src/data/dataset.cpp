#include "fcn/data/dataset.hpp"

#include <algorithm>
#include <array>
#include <cmath>

#include <spdlog/spdlog.h>

#include <filesystem>

#include "fcn/data/augment.hpp"
#include "fcn/data/layout.hpp"
#include "fcn/core/error.hpp"

namespace fcn {

struct Dataset::Impl {
  DataConfig config;
  std::string split;
  int64_t num_classes = 0;
  struct Part {
    DataConfig config;  // format and root of its source
    std::string list_path;
  };
  std::vector<Part> parts;
  std::vector<ListEntry> entries;
  std::vector<size_t> part_of;  // entry -> part
  const Part& part(size_t index) const { return parts[part_of.at(index)]; }
};

namespace {

std::string size_str(ImageSize s) { return std::to_string(s.width) + "x" + std::to_string(s.height); }

void require_file(const std::string& path, const std::string& list_path, const ListEntry& entry) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw Error(path + ": no such file (listed as \"" + entry.id + "\" in " + list_path + " line " +
                std::to_string(entry.line) + ")");
}

void require_same_size(const std::string& label_path, ImageSize label, ImageSize image) {
  if (label.height != image.height || label.width != image.width)
    throw Error(label_path + ": label is " + size_str(label) + " but its image is " + size_str(image));
}

// Every value must be a class id or the ignore label.
void check_label_values(const std::string& path, const Image& label, int64_t num_classes, int64_t ignore_label) {
  for (int y = 0; y < label.height; ++y)
    for (int x = 0; x < label.width; ++x) {
      const int v = label.at(y, x);
      if (v < num_classes || v == ignore_label) continue;
      throw Error(path + ": label value " + std::to_string(v) + " at (x=" + std::to_string(x) + ", y=" +
                  std::to_string(y) + ") is neither a class (0.." + std::to_string(num_classes - 1) +
                  ") nor the ignore label " + std::to_string(ignore_label));
    }
}

Tensor label_tensor(const Image& label) {
  Tensor t({1, 1, label.height, label.width});
  for (size_t i = 0; i < label.pixels.size(); ++i) t[static_cast<int64_t>(i)] = label.pixels[i];
  return t;
}

}  // namespace

void check_input_convention(const DataConfig& config) {
  if (config.channel_order != "bgr" && config.channel_order != "rgb")
    throw Error("data.channel_order: expected \"bgr\" or \"rgb\", got \"" + config.channel_order + "\"");
  if (config.mean.size() != 3) throw Error("data.mean: expected 3 numbers (one per channel, in data.channel_order)");
  if (config.std.size() != 3) throw Error("data.std: expected 3 numbers (one per channel, in data.channel_order)");
  for (double s : config.std)
    if (!(s > 0) || !std::isfinite(s)) throw Error("data.std: every std must be a finite number > 0, got " + std::to_string(s));
  for (double m : config.mean)
    if (!std::isfinite(m)) throw Error("data.mean: every mean must be finite");
  if (!(config.pixel_scale > 0) || !std::isfinite(config.pixel_scale)) throw Error("data.pixel_scale: must be > 0");
  if (!(config.input_scale > 0) || !std::isfinite(config.input_scale)) throw Error("data.input_scale: must be > 0");
}

namespace {

// The image's channel (BGR storage) that feeds net channel c.
int source_channel(const DataConfig& config, int c) { return config.channel_order == "rgb" ? 2 - c : c; }

// Net channel c's value for each 0..255 pixel value.
std::array<float, 256> channel_table(const DataConfig& config, int c) {
  // torchvision's ToTensor divides by 255 and Normalize subtracts, then
  // divides, all in float: the same operations give the same bits
  const auto divisor = static_cast<float>(1.0 / config.pixel_scale);
  const auto mean = static_cast<float>(config.mean[c]);
  const auto std = static_cast<float>(config.std[c]);
  const auto scale = static_cast<float>(config.input_scale);
  std::array<float, 256> table{};
  for (int p = 0; p < 256; ++p) table[p] = (static_cast<float>(p) / divisor - mean) / std * scale;
  return table;
}

}  // namespace

Tensor image_to_tensor(const Image& image, const DataConfig& config) {
  check_input_convention(config);
  Tensor t({1, 3, image.height, image.width});
  const size_t plane = static_cast<size_t>(image.height) * image.width;
  for (int c = 0; c < 3; ++c) {
    const std::array<float, 256> table = channel_table(config, c);
    const int source = source_channel(config, c);
    float* out = t.data() + c * plane;
    for (size_t i = 0; i < plane; ++i) out[i] = table[image.pixels[3 * i + source]];
  }
  return t;
}

Image tensor_to_image(const Tensor& tensor, const DataConfig& config) {
  check_input_convention(config);
  Image out(static_cast<int>(tensor.h()), static_cast<int>(tensor.w()), 3);
  const int64_t plane = tensor.h() * tensor.w();
  for (int c = 0; c < 3; ++c) {
    const int target = source_channel(config, c);
    for (int64_t i = 0; i < plane; ++i) {
      const double normalised = tensor[c * plane + i] / config.input_scale;
      const double v = std::round((normalised * config.std[c] + config.mean[c]) / config.pixel_scale);
      out.pixels[3 * i + target] = static_cast<uint8_t>(std::clamp(v, 0.0, 255.0));
    }
  }
  return out;
}

Dataset::Dataset(const DataConfig& config, const std::string& split, int64_t num_classes)
    : Dataset(config, std::vector<DataSource>{{config.format, config.root, split}}, num_classes) {}

Dataset::Dataset(const DataConfig& config, const std::vector<DataSource>& sources, int64_t num_classes)
    : impl_(std::make_unique<Impl>()) {
  if (num_classes < 1 || num_classes > 255) throw Error("number of classes must be in 1..255, got " + std::to_string(num_classes));
  check_input_convention(config);
  if (sources.empty()) throw Error("data: no dataset source");
  impl_->config = config;
  impl_->num_classes = num_classes;
  for (const DataSource& source : sources) {
    Impl::Part part{config, ""};
    part.config.format = source.format;
    part.config.root = source.root;
    part.list_path = split_list_path(part.config, source.split);
    std::vector<ListEntry> entries = read_split_list(part.list_path);
    if (entries.empty()) throw Error(part.list_path + ": split \"" + source.split + "\" lists no images");
    for (auto& entry : entries) {
      impl_->entries.push_back(std::move(entry));
      impl_->part_of.push_back(impl_->parts.size());
    }
    impl_->parts.push_back(std::move(part));
    impl_->split += (impl_->split.empty() ? "" : "+") + source.split;
  }
}

std::vector<DataSource> train_sources(const DataConfig& config) {
  if (!config.train.empty()) return config.train;
  return {{config.format, config.root, config.train_split}};
}

std::vector<DataSource> val_sources(const DataConfig& config) {
  if (!config.val.empty()) return config.val;
  return {{config.format, config.root, config.val_split}};
}

std::vector<DataSource> split_sources(const DataConfig& config, const std::string& split) {
  std::vector<DataSource> sources = val_sources(config);
  for (DataSource& source : sources) source.split = split;
  return sources;
}

std::string describe_sources(const std::vector<DataSource>& sources) {
  std::string text;
  for (const DataSource& s : sources) text += (text.empty() ? "" : " + ") + s.format + " " + s.root + " " + s.split;
  return text;
}

Dataset::~Dataset() = default;
Dataset::Dataset(Dataset&&) noexcept = default;

size_t Dataset::size() const { return impl_->entries.size(); }
const DataConfig& Dataset::config() const { return impl_->config; }
int64_t Dataset::num_classes() const { return impl_->num_classes; }
const std::string& Dataset::id(size_t index) const { return impl_->entries.at(index).id; }
const std::string& Dataset::split() const { return impl_->split; }
std::string Dataset::image_path(size_t index) const { return image_file(impl_->part(index).config, id(index)); }
std::string Dataset::label_path(size_t index) const { return label_file(impl_->part(index).config, id(index)); }

size_t Dataset::validate() {
  std::vector<ListEntry> kept;
  std::vector<size_t> kept_parts;
  for (size_t i = 0; i < impl_->entries.size(); ++i) {
    try {
      const std::string image = image_path(i), label = label_path(i);
      require_file(image, impl_->part(i).list_path, impl_->entries[i]);
      require_file(label, impl_->part(i).list_path, impl_->entries[i]);
      require_same_size(label, read_label_size(label), read_image_size(image));
      kept.push_back(impl_->entries[i]);
      kept_parts.push_back(impl_->part_of[i]);
    } catch (const Error& e) {
      if (impl_->config.on_error == "stop") throw;
      spdlog::warn("skipping {}: {}", impl_->entries[i].id, e.what());
    }
  }
  const size_t dropped = impl_->entries.size() - kept.size();
  if (kept.empty()) throw Error(impl_->parts.front().list_path + ": no usable images in split \"" + impl_->split + "\"");
  impl_->entries = std::move(kept);
  impl_->part_of = std::move(kept_parts);
  return dropped;
}

Image Dataset::load_label(size_t index) const {
  const std::string path = label_path(index);
  require_file(path, impl_->part(index).list_path, impl_->entries.at(index));
  Image label = read_label_file(path);
  check_label_values(path, label, impl_->num_classes, impl_->config.ignore_label);
  return label;
}

Sample Dataset::load(size_t index, const AugmentConfig* augment, uint64_t augment_seed) const {
  const std::string path = image_path(index);
  require_file(path, impl_->part(index).list_path, impl_->entries.at(index));
  const Image image = read_image(path);
  const Image label = load_label(index);
  require_same_size(label_path(index), {label.height, label.width}, {image.height, image.width});
  Sample sample;
  sample.id = id(index);
  sample.image = image_to_tensor(image, impl_->config);
  sample.label = label_tensor(label);
  if (augment && !augment_is_identity(*augment))
    augment_sample(sample.image, sample.label, *augment, augment_seed, static_cast<float>(impl_->config.ignore_label));
  return sample;
}

const std::vector<std::string>& voc_class_names() {
  static const std::vector<std::string> names = {
      "background", "aeroplane", "bicycle", "bird",  "boat",        "bottle", "bus",
      "car",        "cat",       "chair",   "cow",   "diningtable", "dog",    "horse",
      "motorbike",  "person",    "pottedplant", "sheep", "sofa",    "train",  "tvmonitor"};
  return names;
}

std::vector<std::string> resolve_class_names(const DataConfig& config, int64_t num_classes) {
  if (!config.class_names.empty()) {
    if (static_cast<int64_t>(config.class_names.size()) != num_classes)
      throw Error("data.class_names: has " + std::to_string(config.class_names.size()) + " names but there are " +
                  std::to_string(num_classes) + " classes");
    return config.class_names;
  }
  if (num_classes == static_cast<int64_t>(voc_class_names().size())) return voc_class_names();
  std::vector<std::string> names;
  for (int64_t i = 0; i < num_classes; ++i) names.push_back("class_" + std::to_string(i));
  return names;
}

}  // namespace fcn
