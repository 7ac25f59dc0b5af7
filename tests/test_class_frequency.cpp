#include <catch2/catch.hpp>

#include <fstream>
#include <string>
#include <vector>

#include "data_fixtures.hpp"
#include "fcn/data/class_frequency.hpp"
#include "fcn/data/dataset.hpp"
#include "fcn/data/synthetic.hpp"
#include "fcn/io/image_io.hpp"

using namespace fcn;
using fcn::testing::data_fixture;
using fcn::testing::expected_bytes;
using fcn::testing::ScratchDir;

namespace {

// A folder-format dataset (PNG images and labels) in `dir`.
struct HandMadeEntry {
  std::string id;
  ImageSize image;
  ImageSize label;
  std::vector<uint8_t> label_values;  // empty: no label file
};

DataConfig write_folder_dataset(const ScratchDir& dir, const std::vector<HandMadeEntry>& entries) {
  std::filesystem::create_directories(dir.file("images"));
  std::filesystem::create_directories(dir.file("labels"));
  std::ofstream list(dir.file("train.txt"));
  for (const HandMadeEntry& entry : entries) {
    list << entry.id << "\n";
    write_image(dir.file("images/" + entry.id + ".png"), Image(entry.image.height, entry.image.width, 3, 128));
    if (entry.label_values.empty()) continue;
    Image label(entry.label.height, entry.label.width, 1);
    label.pixels = entry.label_values;
    write_label_png(dir.file("labels/" + entry.id + ".png"), label);
  }
  DataConfig config;
  config.format = "folder";
  config.root = dir.path();
  config.image_ext = ".png";
  return config;
}

// Three classes, ignore 255:
//   a: 2x3, classes 0 0 1 / 1 255 0
//   b: 2x2, 0 2 / 2 7           (7 is no class)
//   c: label 3x2 but image 2x3, 0 0 / 0 0 / 9 255
//   d: no label file
std::vector<HandMadeEntry> hand_made_entries() {
  return {{"a", {2, 3}, {2, 3}, {0, 0, 1, 1, 255, 0}},
          {"b", {2, 2}, {2, 2}, {0, 2, 2, 7}},
          {"c", {2, 3}, {3, 2}, {0, 0, 0, 0, 9, 255}},
          {"d", {2, 2}, {2, 2}, {}}};
}

void check_same_stats(const LabelStats& a, const LabelStats& b) {
  CHECK(a.class_pixels == b.class_pixels);
  CHECK(a.images_with_class == b.images_with_class);
  CHECK(a.pixels_of_images_with_class == b.pixels_of_images_with_class);
  CHECK(a.ignored_pixels == b.ignored_pixels);
  CHECK(a.unknown_values == b.unknown_values);
  CHECK(a.unknown_value_ids == b.unknown_value_ids);
  CHECK(a.ids == b.ids);
  CHECK(a.size_mismatch_ids == b.size_mismatch_ids);
  CHECK(a.unreadable == b.unreadable);
  REQUIRE(a.image_sizes.size() == b.image_sizes.size());
  for (size_t i = 0; i < a.image_sizes.size(); ++i) {
    CHECK(a.image_sizes[i].height == b.image_sizes[i].height);
    CHECK(a.label_sizes[i].width == b.label_sizes[i].width);
  }
}

}  // namespace

TEST_CASE("label stats of a hand-made dataset", "[class_frequency]") {
  ScratchDir dir("class_frequency_hand");
  const DataConfig config = write_folder_dataset(dir, hand_made_entries());
  const Dataset dataset(config, "train", 3);
  std::vector<std::pair<size_t, size_t>> calls;
  const LabelStats stats = collect_label_stats(dataset, 2, [&](size_t done, size_t total) { calls.push_back({done, total}); });

  CHECK(stats.num_classes == 3);
  CHECK(stats.num_entries == 4);
  CHECK(stats.class_pixels == std::vector<int64_t>{8, 2, 2});
  CHECK(stats.class_pixel_total() == 12);
  CHECK(stats.images_with_class == std::vector<int64_t>{3, 1, 1});
  // class pixels of the images holding c: a has 5, b 3, c 4
  CHECK(stats.pixels_of_images_with_class == std::vector<int64_t>{12, 5, 3});
  CHECK(stats.ignored_pixels == 2);
  CHECK(stats.unknown_values == std::map<int64_t, int64_t>{{7, 1}, {9, 1}});
  CHECK(stats.unknown_value_ids.at(7) == std::vector<std::string>{"b"});
  CHECK(stats.unknown_value_ids.at(9) == std::vector<std::string>{"c"});
  CHECK(stats.ids == std::vector<std::string>{"a", "b", "c"});
  CHECK(stats.size_mismatch_ids == std::vector<std::string>{"c"});
  CHECK(stats.label_sizes[2].height == 3);
  CHECK(stats.image_sizes[2].height == 2);
  REQUIRE(stats.unreadable.size() == 1);
  CHECK_THAT(stats.unreadable[0], Catch::StartsWith("d: label ") && Catch::EndsWith("labels/d.png: no such file"));
  REQUIRE(!calls.empty());
  CHECK(calls.back() == std::pair<size_t, size_t>{4, 4});

  // freq = 8/12, 2/5, 2/3; median 2/3
  const std::vector<double> weights = median_frequency_weights(stats);
  REQUIRE(weights.size() == 3);
  CHECK(weights[0] == Approx(1.0));
  CHECK(weights[1] == Approx((2.0 / 3) / (2.0 / 5)));
  CHECK(weights[2] == Approx(1.0));
}

TEST_CASE("median frequency weights: even count, absent class", "[class_frequency]") {
  LabelStats stats;
  stats.num_classes = 5;
  stats.class_pixels = {60, 10, 5, 0, 30};
  stats.pixels_of_images_with_class = {100, 50, 100, 0, 60};
  // freq 0.6, 0.2, 0.05, -, 0.5: four present, median (0.2 + 0.5) / 2 = 0.35
  const std::vector<double> weights = median_frequency_weights(stats);
  REQUIRE(weights.size() == 5);
  CHECK(weights[0] == Approx(0.35 / 0.6));
  CHECK(weights[1] == Approx(1.75));
  CHECK(weights[2] == Approx(7.0));
  CHECK(weights[3] == 0.0);
  CHECK(weights[4] == Approx(0.7));

  LabelStats empty;
  empty.num_classes = 2;
  empty.class_pixels = {0, 0};
  empty.pixels_of_images_with_class = {0, 0};
  CHECK(median_frequency_weights(empty) == std::vector<double>{0.0, 0.0});
}

TEST_CASE("label stats do not depend on the thread count", "[class_frequency]") {
  ScratchDir dir("class_frequency_threads");
  SyntheticSpec spec;
  spec.out = dir.path();
  spec.train = 150;  // more than one block of entries
  spec.val = 1;
  spec.height = 24;
  spec.width = 32;
  spec.seed = 9;
  write_synthetic_dataset(spec);
  DataConfig config;
  config.root = dir.path();
  const Dataset dataset(config, "train", spec.classes);
  const LabelStats one = collect_label_stats(dataset, 1), two = collect_label_stats(dataset, 2),
                   three = collect_label_stats(dataset, 3);
  check_same_stats(one, two);
  check_same_stats(one, three);

  std::vector<int64_t> expected(spec.classes, 0);
  int64_t ignored = 0;
  for (int64_t i = 0; i < spec.train; ++i)
    for (uint8_t v : render_synthetic_sample(spec, i).label.pixels) (v == 255 ? ignored : expected[v]) += 1;
  CHECK(one.class_pixels == expected);
  CHECK(one.ignored_pixels == ignored);
  CHECK(one.unknown_values.empty());
  CHECK(one.unreadable.empty());
  CHECK(one.size_mismatch_ids.empty());
  CHECK(one.image_sizes.size() == 150);
}

TEST_CASE("label stats read voc, sbd and folder labels", "[class_frequency]") {
  struct Case {
    std::string format;
    int64_t classes;
    std::vector<std::string> keys;
  };
  for (const Case& c : {Case{"voc", 5, {"voc/a", "voc/b", "voc/c"}}, Case{"sbd", 21, {"sbd/s1", "sbd/s2"}},
                        Case{"folder", 3, {"folder/p", "folder/q"}}}) {
    INFO(c.format);
    DataConfig config;
    config.format = c.format;
    config.root = data_fixture(c.format);
    if (c.format == "folder") config.image_ext = ".png";
    const Dataset dataset(config, "train", c.classes);
    const LabelStats stats = collect_label_stats(dataset, 2);
    std::vector<int64_t> expected(c.classes, 0);
    for (const std::string& key : c.keys)
      for (uint8_t v : expected_bytes(key, "label"))
        if (v != 255) expected[v] += 1;
    CHECK(stats.class_pixels == expected);
    CHECK(stats.unreadable.empty());
    CHECK(stats.size_mismatch_ids.empty());
  }
}

TEST_CASE("label stats report a whole split's problems without throwing", "[class_frequency]") {
  // mixed: a (good), nofile (no image, no label), d (label and image differ in size), b (good)
  DataConfig config;
  config.root = data_fixture("voc");
  const Dataset dataset(config, "mixed", 5);
  const LabelStats stats = collect_label_stats(dataset, 2);
  CHECK(stats.ids == std::vector<std::string>{"a", "d", "b"});
  CHECK(stats.size_mismatch_ids == std::vector<std::string>{"d"});
  REQUIRE(stats.unreadable.size() == 1);
  CHECK_THAT(stats.unreadable[0], Catch::StartsWith("nofile: image ") && Catch::Contains("; label "));
}
