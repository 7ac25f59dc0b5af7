#pragma once
// A deterministic synthetic segmentation dataset in VOC layout, so that
// training and evaluation run without downloads.
//
// Each image is a cluttered background (a random base colour, solid and
// speckled blobs and lines in random colours, pixel noise) with 1-3 objects, possibly
// overlapping and partly outside the frame. The K-1 foreground classes
// differ only in SHAPE and TEXTURE (class i: shape i % 8 with texture
// (i + i / 8) % 5, so each pair is unique); every colour, of objects and
// clutter alike, is drawn from the same uniform RGB distribution, so a
// per-pixel classifier cannot tell an object from the background while a
// network with some context can. As in VOC, a void (255) band 2 px wide
// marks every object boundary.
//
// A rare class (rare_class > 0, for class-imbalance experiments such as
// median frequency balancing) is never drawn among those 1-3 objects;
// instead about 1 image in 10 gets one extra small object of it on top
// (radius 0.35x the usual), so it covers well under 1% of the pixels.
//
// Sample i is rendered from derive_seed(seed, i) alone: the same seed gives
// byte-identical files.
#include <cstdint>
#include <string>
#include <vector>

#include "fcn/io/image_io.hpp"

namespace fcn {

struct SyntheticSpec {
  std::string out;
  int64_t train = 300;
  int64_t val = 60;
  int height = 96;
  int width = 96;
  int classes = 5;  // background + 4 shapes
  uint64_t seed = 1;
  int rare_class = 0;  // a foreground class made rare (see above); 0 = none, every class as common
};

constexpr int kMaxSyntheticClasses = 41;  // 1 + 8 shapes x 5 textures

// Throws an Error naming the offending option.
void check_synthetic_spec(const SyntheticSpec& spec);
std::vector<std::string> synthetic_class_names(int classes);

struct SyntheticSample {
  Image image;  // BGR
  Image label;  // class ids, 255 = void
};
// Sample `index` (train samples first, then val).
SyntheticSample render_synthetic_sample(const SyntheticSpec& spec, int64_t index);
// The id of sample `index`: "train_00000", ..., "val_00000", ...
std::string synthetic_id(const SyntheticSpec& spec, int64_t index);

// Writes OUT/JPEGImages/<id>.jpg (quality 95), OUT/SegmentationClass/<id>.png
// (palette) and OUT/ImageSets/Segmentation/{train,val,trainval}.txt.
void write_synthetic_dataset(const SyntheticSpec& spec);

}  // namespace fcn
