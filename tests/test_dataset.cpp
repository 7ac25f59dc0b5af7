#include <catch2/catch.hpp>

#include <atomic>
#include <set>

#include "data_fixtures.hpp"
#include "fcn/data/augment.hpp"
#include "fcn/data/dataset.hpp"
#include "fcn/data/prefetcher.hpp"
#include "fcn/data/sampling.hpp"
#include "fcn/model/config.hpp"
#include "fcn/core/error.hpp"
#include "fcn/io/safetensors.hpp"

using namespace fcn;
using fcn::testing::data_fixture;
using fcn::testing::expected_bytes;
using fcn::testing::expected_entry;

namespace {

DataConfig fixture_config(const std::string& format) {
  DataConfig config;
  config.format = format;
  config.root = data_fixture(format);
  if (format == "folder") config.image_ext = ".png";
  return config;
}

DataConfig parse(const std::string& text) {
  const json j = parse_json_text(text, "test");
  SpecReader reader(j, "data");
  return parse_data_config(reader);
}

std::vector<float> label_values(const Sample& s) { return std::vector<float>(s.label.data(), s.label.data() + s.label.numel()); }

void check_labels_match(const Sample& s, const std::string& key) {
  const auto want = expected_bytes(key, "label");
  REQUIRE(s.label.numel() == static_cast<int64_t>(want.size()));
  for (size_t i = 0; i < want.size(); ++i) REQUIRE(s.label[static_cast<int64_t>(i)] == want[i]);
}

}  // namespace

TEST_CASE("data config: defaults, every key, and its JSON round trip", "[dataset]") {
  const DataConfig d = parse(R"({"root": "data/x"})");
  CHECK(d.format == "voc");
  CHECK(d.mean[2] == Approx(122.67891434));
  CHECK(d.channel_order == "bgr");
  CHECK_FALSE(d.augment.flip);
  const DataConfig c = parse(R"({"format": "folder", "root": "r", "train_split": "t", "val_split": "v",
      "image_dir": "im", "label_dir": "lb", "image_ext": ".png", "mean_bgr": [1, 2, 3],
      "class_names": ["a", "b"], "augment": {"flip": true, "scale": [0.5, 2], "crop": [64, 48]},
      "seed": 7, "on_error": "skip", "ignore_label": 254, "prefetch": 2})");
  CHECK(c.format == "folder");
  CHECK(c.augment.flip);
  CHECK(c.augment.scale_max == 2.0);
  CHECK(c.augment.crop_height == 64);
  CHECK(c.augment.crop_width == 48);
  CHECK(c.class_names.size() == 2);
  CHECK(c.seed == 7);
  CHECK(c.on_error == "skip");
  const json j = data_config_to_json(c);
  SpecReader again(j, "data");
  const DataConfig c2 = parse_data_config(again);
  CHECK(data_config_to_json(c2) == j);
}

TEST_CASE("data config errors name the JSON path", "[dataset]") {
  CHECK_THROWS_WITH(parse(R"({"root": "r", "mean_bgr": [1, 2]})"), Catch::StartsWith("data.mean_bgr: expected 3"));
  CHECK_THROWS_WITH(parse(R"({"root": "r", "augment": {"flip": true, "scale": [2, 1]}})"),
                    Catch::StartsWith("data.augment.scale:"));
  CHECK_THROWS_WITH(parse(R"({"root": "r", "augment": {"flipp": true}})"),
                    Catch::StartsWith("data.augment.flipp: unknown key; did you mean \"flip\"?"));
  CHECK_THROWS_WITH(parse(R"({"root": "r", "on_error": "ignore"})"), Catch::StartsWith("data.on_error: unknown value"));
  CHECK_THROWS_WITH(parse(R"({"root": "r", "format": "coco"})"), Catch::StartsWith("data.format:"));
  CHECK_THROWS_WITH(parse(R"({"format": "voc"})"), Catch::StartsWith("data.root: missing"));
  CHECK_THROWS_WITH(parse(R"({"root": "r", "class_names": [1]})"), Catch::StartsWith("data.class_names[0]:"));
  CHECK_THROWS_WITH(parse(R"({"root": "r", "augment": {"crop": [0, 5]}})"), Catch::StartsWith("data.augment.crop:"));
}

TEST_CASE("class names: configured, VOC's for 21, numbered otherwise", "[dataset]") {
  DataConfig c;
  CHECK(resolve_class_names(c, 21)[15] == "person");
  CHECK(resolve_class_names(c, 3)[2] == "class_2");
  c.class_names = {"a", "b"};
  CHECK(resolve_class_names(c, 2)[1] == "b");
  CHECK_THROWS_WITH(resolve_class_names(c, 3), Catch::StartsWith("data.class_names: has 2 names"));
}

TEST_CASE("voc loading: labels, mean-subtracted BGR, grayscale labels", "[dataset]") {
  DataConfig config = fixture_config("voc");
  config.mean = {10, 20, 30};
  Dataset ds(config, "train", 5);
  REQUIRE(ds.size() == 3);
  CHECK(ds.validate() == 0);
  CHECK(ds.id(1) == "b");
  for (size_t i = 0; i < 3; ++i) {
    const Sample s = ds.load(i);
    const std::string key = "voc/" + ds.id(i);
    INFO(key);
    CHECK(s.id == ds.id(i));
    CHECK(s.image.shape() == Shape{1, 3, expected_entry(key)["height"], expected_entry(key)["width"]});
    check_labels_match(s, key);
    const auto bgr = expected_bytes(key, "bgr");
    const int64_t plane = s.image.h() * s.image.w();
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t p = 0; p < plane; p += 7)
        REQUIRE(std::abs(s.image[c * plane + p] + config.mean[c] - bgr[3 * p + c]) <= 1.0);
  }
}

TEST_CASE("folder and sbd loading", "[dataset]") {
  {
    Dataset ds(fixture_config("folder"), "train", 3);
    REQUIRE(ds.size() == 2);
    CHECK(ds.validate() == 0);
    const Sample s = ds.load(1);
    check_labels_match(s, "folder/q");
    const auto bgr = expected_bytes("folder/q", "bgr");
    CHECK(s.image[0] == Approx(bgr[0] - 104.00698793));
  }
  {
    Dataset ds(fixture_config("sbd"), "train", 21);
    REQUIRE(ds.size() == 2);
    CHECK(ds.label_path(0) == data_fixture("sbd") + "/cls/s1.mat");
    CHECK(ds.validate() == 0);
    check_labels_match(ds.load(0), "sbd/s1");  // compressed .mat
    check_labels_match(ds.load(1), "sbd/s2");  // uncompressed .mat
  }
}

TEST_CASE("dataset errors name the file and the problem", "[dataset]") {
  const DataConfig config = fixture_config("voc");
  const std::string voc = data_fixture("voc");
  CHECK_THROWS_WITH(Dataset(config, "empty", 5), Catch::Contains("lists no images"));
  CHECK_THROWS_WITH(Dataset(config, "nosuchsplit", 5),
                    voc + "/ImageSets/Segmentation/nosuchsplit.txt: cannot open split list");
  CHECK_THROWS_WITH(Dataset(config, "missing", 5).validate(),
                    voc + "/JPEGImages/nofile.jpg: no such file (listed as \"nofile\" in " + voc +
                        "/ImageSets/Segmentation/missing.txt line 2)");
  CHECK_THROWS_WITH(Dataset(config, "mismatch", 5).validate(),
                    voc + "/SegmentationClass/d.png: label is 13x10 but its image is 13x9");
  CHECK_THROWS_WITH(Dataset(config, "mismatch", 5).load(0),
                    voc + "/SegmentationClass/d.png: label is 13x10 but its image is 13x9");
  CHECK_THROWS_WITH(Dataset(config, "badvalue", 5).load(0),
                    voc + "/SegmentationClass/e.png: label value 9 at (x=2, y=3) is neither a class (0..4) nor the "
                          "ignore label 255");
  CHECK_THROWS_WITH(Dataset(config, "corrupt", 5).load(0), Catch::StartsWith(voc + "/SegmentationClass/f.png: "));
  CHECK_THROWS_WITH(Dataset(config, "truncjpg", 5).load(0), Catch::StartsWith(voc + "/JPEGImages/g.jpg: truncated"));
}

TEST_CASE("on_error skip drops bad entries and counts them", "[dataset]") {
  DataConfig config = fixture_config("voc");
  config.on_error = "skip";
  Dataset ds(config, "mixed", 5);
  REQUIRE(ds.size() == 4);
  CHECK(ds.validate() == 2);
  REQUIRE(ds.size() == 2);
  CHECK(ds.id(0) == "a");
  CHECK(ds.id(1) == "b");
  Dataset partial(config, "missing", 5);
  CHECK(partial.validate() == 1);
  CHECK_THROWS_WITH(Dataset(config, "mismatch", 5).validate(), Catch::Contains("no usable images"));
}

TEST_CASE("augmentation is a pure function of the seed", "[dataset]") {
  Dataset ds(fixture_config("voc"), "train", 5);
  AugmentConfig a;
  a.flip = true;
  a.scale_min = 0.7;
  a.scale_max = 1.4;
  a.crop_height = 14;
  a.crop_width = 15;
  std::set<std::vector<float>> distinct;
  for (uint64_t seed = 0; seed < 8; ++seed) {
    const Sample s1 = ds.load(0, &a, seed), s2 = ds.load(0, &a, seed);
    CHECK(s1.image.shape() == Shape{1, 3, 14, 15});
    CHECK(s1.label.shape() == Shape{1, 1, 14, 15});
    CHECK(label_values(s1) == label_values(s2));
    CHECK(std::equal(s1.image.data(), s1.image.data() + s1.image.numel(), s2.image.data()));
    for (float v : label_values(s1)) CHECK((v == 255 || (v >= 0 && v < 5 && v == std::floor(v))));
    distinct.insert(label_values(s1));
  }
  CHECK(distinct.size() > 4);
}

TEST_CASE("flip mirrors image and label together", "[dataset]") {
  Dataset ds(fixture_config("voc"), "train", 5);
  const Sample plain = ds.load(1);
  AugmentConfig a;
  a.flip = true;
  int flipped = 0;
  for (uint64_t seed = 0; seed < 10; ++seed) {
    const Sample s = ds.load(1, &a, seed);
    const int64_t h = s.image.h(), w = s.image.w();
    const bool is_flipped = s.image[0] != plain.image[0] || s.label[0] != plain.label[0];
    flipped += is_flipped;
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        const int64_t src = y * w + (is_flipped ? w - 1 - x : x);
        REQUIRE(s.label[y * w + x] == plain.label[src]);
        REQUIRE(s.image[2 * h * w + y * w + x] == plain.image[2 * h * w + src]);
      }
  }
  CHECK(flipped > 0);
  CHECK(flipped < 10);
}

TEST_CASE("a crop larger than the image pads image with 0 and label with 255", "[dataset]") {
  Dataset ds(fixture_config("voc"), "train", 5);
  AugmentConfig a;
  a.crop_height = 20;
  a.crop_width = 25;
  const Sample plain = ds.load(2);  // 10x10
  const Sample s = ds.load(2, &a, 3);
  REQUIRE(s.label.shape() == Shape{1, 1, 20, 25});
  for (int64_t y = 0; y < 20; ++y)
    for (int64_t x = 0; x < 25; ++x) {
      const bool inside = y < 10 && x < 10;  // padded at the bottom and right
      REQUIRE(s.label[y * 25 + x] == (inside ? plain.label[y * 10 + x] : 255.0f));
      REQUIRE(s.image[y * 25 + x] == (inside ? plain.image[y * 10 + x] : 0.0f));
    }
}

TEST_CASE("scaling resizes labels by nearest neighbour", "[dataset]") {
  Dataset ds(fixture_config("voc"), "train", 5);
  AugmentConfig a;
  a.scale_min = a.scale_max = 2.0;
  const Sample plain = ds.load(2);
  const Sample s = ds.load(2, &a, 0);
  REQUIRE(s.label.shape() == Shape{1, 1, 20, 20});
  for (int64_t y = 0; y < 20; ++y)
    for (int64_t x = 0; x < 20; ++x) REQUIRE(s.label[y * 20 + x] == plain.label[(y / 2) * 10 + x / 2]);
}

TEST_CASE("training_sample visits every index once per epoch, reproducibly", "[dataset]") {
  const size_t n = 37;
  std::vector<size_t> epoch0, epoch1;
  std::set<uint64_t> seeds;
  for (int64_t g = 0; g < 2 * static_cast<int64_t>(n); ++g) {
    const SampleRef ref = training_sample(g, n, 42);
    CHECK(ref.global_index == g);
    (g < static_cast<int64_t>(n) ? epoch0 : epoch1).push_back(ref.dataset_index);
    seeds.insert(ref.seed);
  }
  CHECK(std::set<size_t>(epoch0.begin(), epoch0.end()).size() == n);
  CHECK(std::set<size_t>(epoch1.begin(), epoch1.end()).size() == n);
  CHECK(epoch0 != epoch1);
  CHECK(seeds.size() == 2 * n);
  // the same call anywhere, in any order, gives the same answer
  const SampleRef late = training_sample(40, n, 42);
  CHECK(late.dataset_index == epoch1[3]);
  CHECK(training_sample(5, n, 42).seed == training_sample(5, n, 42).seed);
  const bool differs = training_sample(5, n, 43).dataset_index != epoch0[5] || training_sample(6, n, 43).dataset_index != epoch0[6];
  CHECK(differs);
  CHECK(training_sample(7, n, 42, false).dataset_index == 7);
  CHECK_THROWS_AS(training_sample(0, 0, 42), Error);
}

TEST_CASE("prefetcher yields what direct loads give, in order", "[dataset]") {
  Dataset ds(fixture_config("voc"), "train", 5);
  AugmentConfig a;
  a.flip = true;
  a.crop_height = a.crop_width = 8;
  auto counter = std::make_shared<std::atomic<int64_t>>(5);
  Prefetcher prefetcher(ds, [counter] { return (*counter)++; }, 99, a, true, 2);
  for (int64_t g = 5; g < 12; ++g) {
    const Sample got = prefetcher.next();
    const SampleRef ref = training_sample(g, ds.size(), 99);
    const Sample want = ds.load(ref.dataset_index, &a, ref.seed);
    CHECK(got.global_index == g);
    CHECK(got.id == want.id);
    CHECK(label_values(got) == label_values(want));
    CHECK(std::equal(got.image.data(), got.image.data() + got.image.numel(), want.image.data()));
  }
}

TEST_CASE("prefetcher rethrows loading errors and shuts down cleanly", "[dataset]") {
  Dataset ds(fixture_config("voc"), "badvalue", 5);
  int64_t g = 0;
  Prefetcher prefetcher(ds, [&g] { return g++; }, 1, AugmentConfig{}, true, 3);
  CHECK_THROWS_WITH(prefetcher.next(), Catch::Contains("label value 9"));
  CHECK_THROWS_WITH(prefetcher.next(), Catch::Contains("earlier loading error"));
  {
    Dataset good(fixture_config("voc"), "train", 5);
    int64_t h = 0;
    Prefetcher unused(good, [&h] { return h++; }, 1, AugmentConfig{}, true, 4);
  }  // destroyed with a full queue and a waiting worker
}

TEST_CASE("prefetcher with on_error skip moves past bad samples", "[dataset]") {
  DataConfig config = fixture_config("voc");
  config.on_error = "skip";
  Dataset ds(config, "mixed", 5);  // a, nofile, d (size mismatch), b
  int64_t g = 0;
  Prefetcher prefetcher(ds, [&g] { return g++; }, 1, AugmentConfig{}, false, 2);
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(prefetcher.next().id);
  CHECK(ids == std::vector<std::string>{"a", "b", "a", "b"});
}

TEST_CASE("image_to_tensor subtracts the BGR mean, scales, and tensor_to_image inverts it") {
  fcn::DataConfig config;
  config.mean = {10, 20, 30};
  config.input_scale = 0.5;
  fcn::Image image(2, 3, 3);
  for (size_t i = 0; i < image.pixels.size(); ++i) image.pixels[i] = static_cast<uint8_t>(40 + 7 * i);
  const fcn::Tensor t = fcn::image_to_tensor(image, config);
  REQUIRE(t.shape() == fcn::Shape{1, 3, 2, 3});
  // pixel 4 (row 1, col 1), green channel: (40 + 7*(3*4+1) - 20) * 0.5
  CHECK(t[1 * 6 + 4] == Approx((40 + 7 * 13 - 20) * 0.5));
  const fcn::Image back = fcn::tensor_to_image(t, config);
  CHECK(back.pixels == image.pixels);
}

namespace {

// An image of every byte value in every channel, in varied positions.
Image all_values_image() {
  Image image(16, 17, 3);
  for (size_t i = 0; i < image.pixels.size(); ++i) image.pixels[i] = static_cast<uint8_t>((i * 37 + i / 3) % 256);
  return image;
}

}  // namespace

TEST_CASE("input convention: torchvision's RGB, /255, ImageNet mean and std give Normalize(ToTensor(photo))",
          "[dataset]") {
  const SafetensorsFile fixture = read_safetensors(data_fixture("../input_convention.safetensors"));
  const Tensor& rgb = fixture.tensors.at("rgb");  // [H, W, 3]
  const Tensor& expected = fixture.tensors.at("torchvision");
  const DataConfig config = parse(R"({"root": "r", "channel_order": "rgb", "pixel_scale": 0.00392156862745098,
                                      "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]})");
  Image photo(static_cast<int>(rgb.shape()[0]), static_cast<int>(rgb.shape()[1]), 3);
  const int64_t plane = rgb.shape()[0] * rgb.shape()[1];
  for (int64_t p = 0; p < plane; ++p)
    for (int c = 0; c < 3; ++c) photo.pixels[3 * p + c] = static_cast<uint8_t>(rgb[3 * p + 2 - c]);  // BGR storage
  const Tensor t = image_to_tensor(photo, config);
  REQUIRE(t.numel() == expected.numel());
  int64_t differing = 0;
  for (int64_t i = 0; i < t.numel(); ++i) differing += t[i] != expected[i];
  CHECK(differing == 0);  // the same float operations: the same bits
  // and the formula in double, to float rounding
  const double mean[3] = {0.485, 0.456, 0.406}, std[3] = {0.229, 0.224, 0.225};
  for (int c = 0; c < 3; ++c)
    for (int64_t p = 0; p < plane; ++p) {
      const double want = (rgb[3 * p + c] / 255.0 - mean[c]) / std[c];
      REQUIRE(std::abs(t[c * plane + p] - want) <= 1e-6 * std::max(1.0, std::abs(want)));
    }
  const Image back = tensor_to_image(t, config);
  CHECK(back.pixels == photo.pixels);
}

TEST_CASE("input convention: every setting in double, and the inverse", "[dataset]") {
  const DataConfig config = parse(R"({"root": "r", "channel_order": "rgb", "pixel_scale": 0.5,
                                      "mean": [10, 20, 30], "std": [2, 4, 8], "input_scale": 3})");
  const Image image = all_values_image();
  const Tensor t = image_to_tensor(image, config);
  const int64_t plane = t.h() * t.w();
  for (int c = 0; c < 3; ++c)
    for (int64_t p = 0; p < plane; ++p) {
      const double pixel = image.pixels[3 * p + (2 - c)];  // net channel 0 is red, BGR storage
      const double want = (pixel * 0.5 - config.mean[c]) / config.std[c] * 3.0;
      REQUIRE(std::abs(t[c * plane + p] - want) <= 1e-6 * std::max(1.0, std::abs(want)));
    }
  CHECK(tensor_to_image(t, config).pixels == image.pixels);
}

TEST_CASE("input convention: the old data.mean_bgr and input_scale keep their meaning", "[dataset]") {
  const Image image = all_values_image();
  const DataConfig old = parse(R"({"root": "r", "mean_bgr": [104.5, 116.25, 122.75], "input_scale": 0.017})");
  CHECK(old.channel_order == "bgr");
  CHECK(old.mean == std::vector<double>{104.5, 116.25, 122.75});
  CHECK(old.std == std::vector<double>{1, 1, 1});
  // what fcn computed before these keys, bit for bit: (pixel - mean_bgr) * input_scale in float
  const Tensor t = image_to_tensor(image, old);
  const int64_t plane = t.h() * t.w();
  for (int c = 0; c < 3; ++c)
    for (int64_t p = 0; p < plane; ++p) {
      const float want = (static_cast<float>(image.pixels[3 * p + c]) - static_cast<float>(old.mean[c])) * 0.017f;
      REQUIRE(t[c * plane + p] == want);
    }
  // mean_bgr is always blue first in 0..255 units, whatever the new keys say
  const DataConfig rgb = parse(R"({"root": "r", "channel_order": "rgb", "pixel_scale": 0.5, "mean_bgr": [1, 2, 3]})");
  CHECK(rgb.mean == std::vector<double>{1.5, 1.0, 0.5});
  // written back in the one canonical form, which means the same
  const json j = data_config_to_json(old);
  CHECK_FALSE(j.contains("mean_bgr"));
  CHECK(j["mean"] == json({104.5, 116.25, 122.75}));
  SpecReader again(j, "data");
  const Tensor t2 = image_to_tensor(image, parse_data_config(again));
  for (int64_t i = 0; i < t.numel(); ++i) REQUIRE(t2[i] == t[i]);
}

TEST_CASE("input convention errors name the key", "[dataset]") {
  CHECK_THROWS_WITH(parse(R"({"root": "r", "std": [1, 0, 1]})"), Catch::StartsWith("data.std: every std must be > 0"));
  CHECK_THROWS_WITH(parse(R"({"root": "r", "std": [1, 1]})"), Catch::StartsWith("data.std: expected 3 numbers"));
  CHECK_THROWS_WITH(parse(R"({"root": "r", "mean": [1, 1, 1, 1]})"), Catch::StartsWith("data.mean: expected 3 numbers"));
  CHECK_THROWS_WITH(parse(R"({"root": "r", "channel_order": "grb"})"), Catch::StartsWith("data.channel_order"));
  CHECK_THROWS_WITH(parse(R"({"root": "r", "mean": [1, 2, 3], "mean_bgr": [1, 2, 3]})"),
                    Catch::StartsWith("data.mean_bgr: not with data.mean"));
  CHECK_THROWS_WITH(parse(R"({"root": "r", "pixel_scale": 0})"), Catch::StartsWith("data.pixel_scale"));
  DataConfig bad;
  bad.std = {1, -1, 1};
  CHECK_THROWS_WITH(image_to_tensor(all_values_image(), bad), Catch::StartsWith("data.std"));
}

TEST_CASE("data.train and data.val sources: parse, round trip, concatenation", "[dataset]") {
  // the single-root form is unchanged: one source from format/root/splits
  const DataConfig single = parse(R"({"root": "r", "train_split": "t"})");
  CHECK(single.train.empty());
  CHECK(train_sources(single) == std::vector<DataSource>{{"voc", "r", "t"}});
  CHECK(val_sources(single) == std::vector<DataSource>{{"voc", "r", "val"}});

  const DataConfig c = parse(R"({"train": [{"format": "sbd", "root": "data/sbd/dataset", "split": "train"},
                                           {"root": "data/VOCdevkit/VOC2012"}],
                                 "val": {"format": "voc", "root": "data/VOCdevkit/VOC2012", "split": "seg11valid"}})");
  CHECK(c.root.empty());  // no root needed when both splits have sources
  CHECK(train_sources(c) == std::vector<DataSource>{{"sbd", "data/sbd/dataset", "train"},
                                                    {"voc", "data/VOCdevkit/VOC2012", "train"}});
  CHECK(val_sources(c) == std::vector<DataSource>{{"voc", "data/VOCdevkit/VOC2012", "seg11valid"}});
  CHECK(split_sources(c, "val") == std::vector<DataSource>{{"voc", "data/VOCdevkit/VOC2012", "val"}});
  // to_json gives back a data section with the same sources
  const json out = data_config_to_json(c);
  SpecReader reader(out, "data");
  const DataConfig again = parse_data_config(reader);
  CHECK(again.train == c.train);
  CHECK(again.val == c.val);

  CHECK_THROWS_WITH(parse(R"({"train": {"format": "sbd", "root": "x"}})"), Catch::StartsWith("data.val: missing"));
  CHECK_THROWS_WITH(parse(R"({"train": [{"format": "sbd"}], "val": {"root": "v"}})"),
                    Catch::StartsWith("data.train[0].root"));
  CHECK_THROWS_WITH(parse(R"({"train": [{"root": "a", "splt": "x"}], "val": {"root": "v"}})"),
                    Catch::Contains("data.train[0].splt"));
  CHECK_THROWS_WITH(parse(R"({"train": 3, "val": {"root": "v"}})"), Catch::StartsWith("data.train"));

  // two datasets of different formats, one after the other
  DataConfig both;
  both.train = {{"sbd", data_fixture("sbd"), "train"}, {"voc", data_fixture("voc"), "train"}};
  Dataset ds(both, train_sources(both), 21);
  REQUIRE(ds.size() == 2 + 3);
  CHECK(ds.split() == "train+train");
  CHECK(ds.label_path(0) == data_fixture("sbd") + "/cls/s1.mat");
  CHECK(ds.label_path(2) == data_fixture("voc") + "/SegmentationClass/" + ds.id(2) + ".png");
  CHECK(ds.validate() == 0);
  REQUIRE(ds.size() == 5);
  check_labels_match(ds.load(1), "sbd/s2");
  check_labels_match(ds.load(3), "voc/" + ds.id(3));
}
