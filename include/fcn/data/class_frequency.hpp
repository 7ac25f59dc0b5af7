#pragma once
// How often each class occurs in a dataset split, and the class weights of
// median frequency balancing (Eigen & Fergus, "Predicting Depth, Surface
// Normals and Semantic Labels with a Common Multi-Scale Convolutional
// Architecture", ICCV 2015), as SegNet uses them.
//
// Counting never stops at a bad entry: a missing or undecodable file is
// recorded in `unreadable`, a label value that is neither a class nor the
// ignore label in `unknown_values`, so one pass reports every problem of a
// split (`fcn inspect-data`).
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "fcn/data/dataset.hpp"
#include "fcn/io/image_io.hpp"

namespace fcn {

// Ids kept per unknown label value, as examples for the report.
constexpr size_t kUnknownValueExampleIds = 5;

struct LabelStats {  // over one dataset (a split)
  int64_t num_classes = 0;
  int64_t ignore_label = 255;
  int64_t num_entries = 0;                   // entries of the split list, readable or not
  std::vector<int64_t> class_pixels;         // [num_classes] pixels labelled c
  std::vector<int64_t> images_with_class;    // [num_classes] images where c occurs
  // [num_classes] the class pixels (0..num_classes-1; neither ignored nor
  // unknown values) of the images where c occurs
  std::vector<int64_t> pixels_of_images_with_class;
  int64_t ignored_pixels = 0;                // == ignore_label
  std::map<int64_t, int64_t> unknown_values; // label value -> pixels, values neither a class nor ignore_label
  std::map<int64_t, std::vector<std::string>> unknown_value_ids;  // first few ids per unknown value
  // Per readable entry (image header and label both read), in dataset
  // order; ids[i] names entry i of image_sizes and label_sizes.
  std::vector<std::string> ids;
  std::vector<ImageSize> image_sizes, label_sizes;
  std::vector<std::string> size_mismatch_ids;  // label size != image size (their pixels are still counted)
  std::vector<std::string> unreadable;         // "id: reason", missing or undecodable image or label

  int64_t class_pixel_total() const;  // sum of class_pixels
};

// Decodes every label (and reads the image header) of `dataset`, in
// parallel (OpenMP, `threads`; 0 = all cores), without throwing on bad label
// values (they are counted). progress(done, total) is called from one
// thread, last with done == total. The result does not depend on `threads`.
LabelStats collect_label_stats(const Dataset& dataset, int threads,
                               const std::function<void(size_t, size_t)>& progress = {});

// Eigen & Fergus median frequency balancing: freq_c = class_pixels_c /
// pixels_of_images_with_class_c (ignored pixels excluded); weight_c =
// median(freq over classes present) / freq_c; a class with no pixels gets 0.
// The median of an even count is the mean of the middle two.
std::vector<double> median_frequency_weights(const LabelStats& stats);

}  // namespace fcn
