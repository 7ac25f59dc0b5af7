#pragma once
// Where each dataset format keeps its split lists, images and labels.
//   voc:    ROOT/ImageSets/Segmentation/<split>.txt, ROOT/JPEGImages/<id><ext>,
//           ROOT/SegmentationClass/<id>.png
//   sbd:    ROOT/<split>.txt, ROOT/img/<id><ext>, ROOT/cls/<id>.mat
//   folder: ROOT/<split>.txt, ROOT/<image_dir>/<id><ext>, ROOT/<label_dir>/<id>.png
// <ext> is the config's image_ext (".jpg" by default). A split that ends in
// ".txt" names its list file directly, relative to ROOT.
#include <string>
#include <vector>

#include "fcn/data/dataset.hpp"
#include "fcn/io/image_io.hpp"

namespace fcn {

std::string split_list_path(const DataConfig& config, const std::string& split);
std::string image_file(const DataConfig& config, const std::string& id);
std::string label_file(const DataConfig& config, const std::string& id);

struct ListEntry {
  std::string id;
  int line = 0;  // 1-based line in the list file, for error messages
};
// The first token of every non-blank line; throws when the file is missing.
std::vector<ListEntry> read_split_list(const std::string& path);

// A label map from a .png (palette indices or gray ids) or an SBD .mat.
Image read_label_file(const std::string& path);
// The label's size from its header (PNG) or its contents (.mat).
ImageSize read_label_size(const std::string& path);

}  // namespace fcn
