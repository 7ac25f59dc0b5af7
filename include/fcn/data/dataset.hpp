#pragma once
// Datasets in VOC, SBD or plain-folder layout (sample order: sampling.hpp;
// background loading: prefetcher.hpp). Nothing here knows about layers.
//
// Sample order is a pure function of (seed, global sample index): global
// index g is position g % n of the permutation for epoch g / n, and every
// random draw for that sample (augmentation) is seeded from (seed, g). So
// resuming needs only the iteration, and data-parallel ranks can each load
// their own global indices.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fcn/io/image_io.hpp"
#include "fcn/core/spec_reader.hpp"
#include "fcn/core/tensor.hpp"

namespace fcn {

struct AugmentConfig {
  bool flip = false;          // horizontal flip with probability 0.5
  double scale_min = 1.0;     // random rescale factor range (1, 1 = off)
  double scale_max = 1.0;
  int64_t crop_height = 0;    // random crop (labels padded with 255); 0 = off
  int64_t crop_width = 0;
};

// One dataset of a split: data.train / data.val entries.
struct DataSource {
  std::string format = "voc";  // voc | sbd | folder
  std::string root;
  std::string split;
  bool operator==(const DataSource& o) const { return format == o.format && root == o.root && split == o.split; }
};

struct DataConfig {
  std::string format = "voc";  // voc | sbd | folder
  std::string root;
  std::string train_split = "train";
  std::string val_split = "val";
  // Sources given as data.train / data.val (train may list several, used
  // one after the other); empty: the single-root form above.
  std::vector<DataSource> train;
  std::vector<DataSource> val;
  // folder format: directories relative to root and a list file per split
  // ("<split>.txt" in root unless given).
  std::string image_dir = "images";
  std::string label_dir = "labels";
  std::string image_ext = ".jpg";
  // The input convention: net channel c of pixel p is
  //   ((p_c * pixel_scale) - mean[c]) / std[c] * input_scale
  // with p_c the image's 0..255 value of channel c in channel_order. The
  // defaults are the reference's (Caffe VGG16: BGR, 0..255, VOC's mean);
  // torchvision's nets: rgb, pixel_scale 1/255, ImageNet's mean and std.
  // The old key data.mean_bgr (BGR, 0..255 units) maps to mean (see
  // parse_data_config).
  std::string channel_order = "bgr";  // bgr | rgb
  double pixel_scale = 1.0;
  std::vector<double> mean = {104.00698793, 116.66876762, 122.67891434};  // in channel_order, after pixel_scale
  std::vector<double> std = {1.0, 1.0, 1.0};
  // Multiplies the normalised pixels (1 = the reference's 0-255 range).
  // Training from scratch wants about 1/58, unit-variance inputs.
  double input_scale = 1.0;
  std::vector<std::string> class_names;  // defaults to VOC's 21
  AugmentConfig augment;
  uint64_t seed = 1337;
  std::string on_error = "stop";  // stop | skip
  int64_t ignore_label = 255;
  int prefetch = 4;  // samples loaded ahead by the background thread
};

// The sources of each split: data.train / data.val, else {format, root,
// train_split / val_split}.
std::vector<DataSource> train_sources(const DataConfig& config);
std::vector<DataSource> val_sources(const DataConfig& config);
// The sources of a named split: the val sources' datasets (or the single
// root) with that split.
std::vector<DataSource> split_sources(const DataConfig& config, const std::string& split);
// "voc data/voc train + sbd data/sbd train", for logs and reports.
std::string describe_sources(const std::vector<DataSource>& sources);

const std::vector<std::string>& voc_class_names();
// config.class_names when given (it must have num_classes names), else VOC's
// names for 21 classes, else "class_0", "class_1", ...
std::vector<std::string> resolve_class_names(const DataConfig& config, int64_t num_classes);

// Throws naming the data.* key when the input convention is unusable
// (channel_order, 3 means, 3 stds > 0, scales > 0).
void check_input_convention(const DataConfig& config);
// A BGR image as the network's input: [1, 3, H, W] planes in
// config.channel_order of ((pixel * pixel_scale) - mean) / std * input_scale,
// computed in float in torchvision's order (pixel / (1 / pixel_scale), minus
// the mean, divided by the std), so the torchvision convention gives exactly
// Normalize(ToTensor(image)). A 0 in the tensor is the mean pixel: padding
// with 0 pads with the mean.
Tensor image_to_tensor(const Image& image, const DataConfig& config);
// The inverse, 8-bit BGR (pictures of what the network saw).
Image tensor_to_image(const Tensor& tensor, const DataConfig& config);

struct Sample {
  std::string id;
  Tensor image;  // [1, 3, H, W] float, image_to_tensor's convention
  Tensor label;  // [1, 1, H, W] class ids (ignore_label = void); empty when unlabeled
  int64_t global_index = -1;
};

class Dataset {
 public:
  // Opens a split; throws when the list is missing or empty.
  Dataset(const DataConfig& config, const std::string& split, int64_t num_classes);
  // Opens the sources' splits as one dataset, in order (format and root of
  // each source; every other setting from `config`).
  Dataset(const DataConfig& config, const std::vector<DataSource>& sources, int64_t num_classes);
  ~Dataset();
  Dataset(Dataset&&) noexcept;

  size_t size() const;
  const DataConfig& config() const;
  int64_t num_classes() const;
  const std::string& id(size_t index) const;
  const std::string& split() const;
  std::string image_path(size_t index) const;
  std::string label_path(size_t index) const;

  // Quick check of every entry (files exist, image and label headers agree
  // in size). With on_error "stop" the first problem throws; with "skip"
  // bad entries are dropped with one warning each. Returns how many were
  // dropped.
  size_t validate();

  // Decodes one sample; `augment_seed` drives every random draw. Throws an
  // Error naming the file for undecodable images, size mismatches and label
  // values that are neither a class nor the ignore label.
  Sample load(size_t index, const AugmentConfig* augment = nullptr, uint64_t augment_seed = 0) const;
  // The entry's label map alone (values checked as in load), for scoring.
  Image load_label(size_t index) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fcn
