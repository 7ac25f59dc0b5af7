#include "fcn/data/layout.hpp"

#include <fstream>
#include <sstream>

#include "fcn/data/sbd_mat.hpp"
#include "fcn/core/error.hpp"

namespace fcn {

namespace {

std::string join(const std::string& root, const std::string& rest) {
  if (root.empty()) return rest;
  return root.back() == '/' ? root + rest : root + "/" + rest;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

std::string split_list_path(const DataConfig& config, const std::string& split) {
  if (ends_with(split, ".txt")) return join(config.root, split);
  if (config.format == "voc") return join(config.root, "ImageSets/Segmentation/" + split + ".txt");
  return join(config.root, split + ".txt");
}

std::string image_file(const DataConfig& config, const std::string& id) {
  if (config.format == "voc") return join(config.root, "JPEGImages/" + id + config.image_ext);
  if (config.format == "sbd") return join(config.root, "img/" + id + config.image_ext);
  return join(config.root, join(config.image_dir, id + config.image_ext));
}

std::string label_file(const DataConfig& config, const std::string& id) {
  if (config.format == "voc") return join(config.root, "SegmentationClass/" + id + ".png");
  if (config.format == "sbd") return join(config.root, "cls/" + id + ".mat");
  return join(config.root, join(config.label_dir, id + ".png"));
}

std::vector<ListEntry> read_split_list(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open split list");
  std::vector<ListEntry> entries;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    std::istringstream tokens(line);
    std::string id;
    if (tokens >> id) entries.push_back({id, number});
  }
  return entries;
}

Image read_label_file(const std::string& path) {
  return ends_with(path, ".mat") ? read_sbd_label(path) : read_label_png(path);
}

ImageSize read_label_size(const std::string& path) {
  if (!ends_with(path, ".mat")) return read_png_size(path);
  const Image label = read_sbd_label(path);
  return {label.height, label.width};
}

}  // namespace fcn
