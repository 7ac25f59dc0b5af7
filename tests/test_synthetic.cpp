#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "data_fixtures.hpp"
#include "fcn/data/class_frequency.hpp"
#include "fcn/data/dataset.hpp"
#include "fcn/data/synthetic.hpp"
#include "fcn/core/error.hpp"

using namespace fcn;
using fcn::testing::ScratchDir;

namespace {

std::string file_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// FNV-1a over the rendered pixels (not the encoded files, which depend on
// the JPEG library): pins the rendering itself.
uint64_t pixel_hash(const SyntheticSpec& spec, int64_t samples) {
  uint64_t hash = 1469598103934665603ull;
  auto mix = [&hash](const std::vector<uint8_t>& bytes) {
    for (uint8_t b : bytes) hash = (hash ^ b) * 1099511628211ull;
  };
  for (int64_t i = 0; i < samples; ++i) {
    const SyntheticSample s = render_synthetic_sample(spec, i);
    mix(s.image.pixels);
    mix(s.label.pixels);
  }
  return hash;
}

SyntheticSpec small_spec(const std::string& out) {
  SyntheticSpec spec;
  spec.out = out;
  spec.train = 6;
  spec.val = 3;
  spec.height = 48;
  spec.width = 64;
  spec.classes = 4;
  spec.seed = 5;
  return spec;
}

}  // namespace

TEST_CASE("synthetic samples depend only on the seed and index", "[synthetic]") {
  SyntheticSpec spec = small_spec("");
  const SyntheticSample a = render_synthetic_sample(spec, 3), b = render_synthetic_sample(spec, 3);
  CHECK(a.image.pixels == b.image.pixels);
  CHECK(a.label.pixels == b.label.pixels);
  CHECK(render_synthetic_sample(spec, 4).image.pixels != a.image.pixels);
  spec.seed = 6;
  CHECK(render_synthetic_sample(spec, 3).image.pixels != a.image.pixels);
  CHECK(a.image.height == 48);
  CHECK(a.image.width == 64);
  CHECK(a.image.channels == 3);
}

TEST_CASE("synthetic rendering is pinned (options off render as before)", "[synthetic]") {
  // Hashes of the rendering before --rare-class existed.
  SyntheticSpec spec = small_spec("");
  CHECK(pixel_hash(spec, 9) == 0x40c6aabd687b3164ull);
  spec.classes = 12;
  CHECK(pixel_hash(spec, 9) == 0x72ac222419892d61ull);
}

TEST_CASE("a rare class covers well under 1% of the training pixels", "[synthetic]") {
  ScratchDir dir("synthetic_rare");
  SyntheticSpec spec;
  spec.out = dir.path();
  spec.train = 200;
  spec.val = 1;
  spec.rare_class = 3;
  spec.seed = 2;
  write_synthetic_dataset(spec);
  DataConfig config;
  config.root = dir.path();
  const LabelStats stats = collect_label_stats(Dataset(config, "train", spec.classes), 2);
  const double total = static_cast<double>(stats.class_pixel_total());
  INFO("rare class pixels " << stats.class_pixels[3] << " of " << total << ", in " << stats.images_with_class[3]
                            << " images");
  CHECK(stats.class_pixels[3] > 0);
  CHECK(stats.class_pixels[3] / total < 0.01);
  CHECK(stats.images_with_class[3] >= 5);   // about 1 image in 10
  CHECK(stats.images_with_class[3] <= 40);
  for (int c : {1, 2, 4}) CHECK(stats.class_pixels[c] / total > 0.03);  // the others stay common

  spec.rare_class = 5;
  CHECK_THROWS_WITH(check_synthetic_spec(spec), Catch::StartsWith("--rare-class"));
  spec.rare_class = 1;
  spec.classes = 2;
  CHECK_THROWS_WITH(check_synthetic_spec(spec), Catch::StartsWith("--rare-class"));
}

TEST_CASE("synthetic labels: valid ids, every class present, void borders", "[synthetic]") {
  SyntheticSpec spec = small_spec("");
  spec.classes = 5;
  std::vector<int64_t> counts(256, 0);
  for (int64_t i = 0; i < 40; ++i) {
    const SyntheticSample s = render_synthetic_sample(spec, i);
    for (uint8_t v : s.label.pixels) ++counts[v];
    // a void pixel separates any two different classes that touch
    for (int y = 0; y < s.label.height; ++y)
      for (int x = 0; x + 1 < s.label.width; ++x) {
        const int l = s.label.at(y, x), r = s.label.at(y, x + 1);
        if (l != 255 && r != 255) REQUIRE(l == r);
      }
  }
  for (int c = 0; c < 5; ++c) CHECK(counts[c] > 0);
  for (int v = 5; v < 255; ++v) REQUIRE(counts[v] == 0);
  CHECK(counts[255] > 0);
  // background dominates, as in VOC, but objects are not rare
  const double total = 40.0 * 48 * 64;
  CHECK(counts[0] / total > 0.5);
  CHECK(counts[0] / total < 0.95);
}

TEST_CASE("objects differ by shape and texture, not colour", "[synthetic]") {
  // Mean colour of class-1 pixels varies widely from image to image.
  SyntheticSpec spec = small_spec("");
  double lowest = 255, highest = 0;
  for (int64_t i = 0; i < 30; ++i) {
    const SyntheticSample s = render_synthetic_sample(spec, i);
    double sum = 0;
    int64_t n = 0;
    for (size_t p = 0; p < s.label.pixels.size(); ++p)
      if (s.label.pixels[p] == 1) {
        sum += s.image.pixels[3 * p + 2];
        ++n;
      }
    if (n < 50) continue;
    lowest = std::min(lowest, sum / n);
    highest = std::max(highest, sum / n);
  }
  CHECK(highest - lowest > 80);
  CHECK(synthetic_class_names(5) == std::vector<std::string>{"background", "disk", "square", "triangle", "ring"});
  CHECK(synthetic_class_names(12)[1] == "disk_hstripes");
  CHECK(synthetic_class_names(12)[9] == "disk_diagonal");  // class 9: shape 8 % 8, texture (8 + 1) % 5
}

TEST_CASE("make-synthetic writes byte-identical VOC-layout datasets", "[synthetic]") {
  ScratchDir one("synthetic_a"), two("synthetic_b");
  write_synthetic_dataset(small_spec(one.path()));
  write_synthetic_dataset(small_spec(two.path()));
  size_t files = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(one.path())) {
    if (!entry.is_regular_file()) continue;
    ++files;
    const auto relative = std::filesystem::relative(entry.path(), one.path());
    INFO(relative.string());
    REQUIRE(file_bytes(entry.path()) == file_bytes(std::filesystem::path(two.path()) / relative));
  }
  CHECK(files == 2 * 9 + 3);

  DataConfig config;
  config.root = one.path();
  Dataset train(config, "train", 4), val(config, "val", 4);
  CHECK(train.size() == 6);
  CHECK(val.size() == 3);
  CHECK(train.validate() == 0);
  CHECK(val.id(0) == "val_00000");
  // the written label PNG holds exactly the rendered label map
  const Image label = val.load_label(2);
  CHECK(label.pixels == render_synthetic_sample(small_spec(""), 6 + 2).label.pixels);
  const Sample s = train.load(0);
  CHECK(s.image.shape() == Shape{1, 3, 48, 64});
}

TEST_CASE("synthetic options are checked", "[synthetic]") {
  SyntheticSpec spec = small_spec("out");
  spec.classes = 1;
  CHECK_THROWS_WITH(check_synthetic_spec(spec), Catch::StartsWith("--classes"));
  spec = small_spec("out");
  spec.height = 4;
  CHECK_THROWS_WITH(check_synthetic_spec(spec), Catch::StartsWith("--size"));
  spec = small_spec("out");
  spec.val = 0;
  CHECK_THROWS_WITH(check_synthetic_spec(spec), Catch::StartsWith("--train/--val"));
}
