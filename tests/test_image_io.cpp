#include <catch2/catch.hpp>

#include <fstream>
#include <random>

#include "data_fixtures.hpp"
#include "fcn/core/error.hpp"
#include "fcn/io/image_io.hpp"
#include "fcn/io/palette.hpp"

using namespace fcn;
using fcn::testing::data_fixture;
using fcn::testing::expected_bytes;
using fcn::testing::expected_entry;
using fcn::testing::ScratchDir;

namespace {

Image random_label(int h, int w, int classes, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Image label(h, w, 1);
  for (auto& v : label.pixels) v = rng() % 10 == 0 ? 255 : static_cast<uint8_t>(rng() % classes);
  return label;
}

// The Error message thrown by `f`, or "" when nothing is thrown.
template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("VOC palette follows the bitget colour map", "[image_io]") {
  const auto& p = voc_palette();
  CHECK(p[0] == Rgb{0, 0, 0});
  CHECK(p[1] == Rgb{128, 0, 0});      // aeroplane
  CHECK(p[2] == Rgb{0, 128, 0});      // bicycle
  CHECK(p[15] == Rgb{192, 128, 128});  // person
  CHECK(p[20] == Rgb{0, 64, 128});    // tvmonitor
  CHECK(p[255] == Rgb{224, 224, 192});  // void
}

TEST_CASE("palette label PNG round trip keeps every index", "[image_io]") {
  ScratchDir dir("png_round_trip");
  const Image label = random_label(37, 23, 21, 7);
  write_label_png(dir.file("l.png"), label);
  const Image back = read_label_png(dir.file("l.png"));
  CHECK(back.height == 37);
  CHECK(back.width == 23);
  CHECK(back.channels == 1);
  CHECK(back.pixels == label.pixels);
  const ImageSize size = read_png_size(dir.file("l.png"));
  CHECK(size.height == 37);
  CHECK(size.width == 23);
  // stored as a palette PNG (colour type 3 in IHDR byte 25) with VOC's colours
  std::ifstream in(dir.file("l.png"), std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  REQUIRE(bytes.size() > 26);
  CHECK(bytes[25] == 3);
  const Image colours = colorize_label(label);
  CHECK(colours.at(0, 0, 2) == voc_palette()[label.at(0, 0)][0]);  // BGR: red last
}

TEST_CASE("label PNGs written by PIL read as indices", "[image_io]") {
  SECTION("8-bit palette") {
    const Image l = read_label_png(data_fixture("voc/SegmentationClass/a.png"));
    CHECK(l.height == expected_entry("voc/a")["height"].get<int>());
    CHECK(l.pixels == expected_bytes("voc/a", "label"));
  }
  SECTION("8-bit grayscale ids") {
    const Image l = read_label_png(data_fixture("voc/SegmentationClass/c.png"));
    CHECK(l.pixels == expected_bytes("voc/c", "label"));
  }
  SECTION("4-bit palette") {
    const Image l = read_label_png(data_fixture("labels/palette4.png"));
    CHECK(l.width == 9);
    CHECK(l.pixels == expected_bytes("labels/palette4", "label"));
  }
}

TEST_CASE("bad label PNGs are Errors naming the file", "[image_io]") {
  for (const char* name : {"voc/SegmentationClass/f.png", "labels/garbage.png", "labels/badcrc.png", "labels/rgb.png",
                           "labels/does_not_exist.png"}) {
    const std::string path = data_fixture(name);
    const std::string message = error_of([&] { read_label_png(path); });
    INFO(message);
    CHECK(message.rfind(path + ": ", 0) == 0);
  }
  CHECK_THAT(error_of([] { read_label_png(data_fixture("labels/rgb.png")); }),
             Catch::Contains("must be indexed (palette) or 8-bit grayscale, got RGB"));
  CHECK_THAT(error_of([] { read_label_png(data_fixture("voc/JPEGImages/a.jpg")); }), Catch::Contains("not a PNG"));
}

TEST_CASE("images decode to BGR as PIL decodes them", "[image_io]") {
  const Image jpg = read_image(data_fixture("voc/JPEGImages/b.jpg"));
  REQUIRE(jpg.channels == 3);
  CHECK(jpg.height == 12);
  CHECK(jpg.width == 18);
  const auto bgr = expected_bytes("voc/b", "bgr");
  REQUIRE(bgr.size() == jpg.pixels.size());
  int worst = 0;
  for (size_t i = 0; i < bgr.size(); ++i) worst = std::max(worst, std::abs(int(bgr[i]) - int(jpg.pixels[i])));
  CHECK(worst <= 1);  // both use libjpeg; allow the IDCT's rounding
  const Image png = read_image(data_fixture("folder/images/q.png"));
  CHECK(png.pixels == expected_bytes("folder/q", "bgr"));
}

TEST_CASE("image sizes come from the headers", "[image_io]") {
  for (const char* name : {"voc/JPEGImages/a.jpg", "voc/JPEGImages/c.jpg", "folder/images/p.png", "sbd/img/s2.jpg"}) {
    const Image full = read_image(data_fixture(name));
    const ImageSize size = read_image_size(data_fixture(name));
    CHECK(size.height == full.height);
    CHECK(size.width == full.width);
  }
}

TEST_CASE("truncated and corrupt images are Errors naming the file", "[image_io]") {
  ScratchDir dir("bad_images");
  const std::string truncated_jpg = data_fixture("voc/JPEGImages/g.jpg");
  CHECK_THAT(error_of([&] { read_image(truncated_jpg); }), Catch::StartsWith(truncated_jpg + ": truncated JPEG"));
  {
    std::ofstream(dir.file("empty.jpg"));
    std::ofstream(dir.file("text.png")) << "hello";
  }
  for (const std::string& path : {dir.file("empty.jpg"), dir.file("text.png"), dir.file("absent.jpg"),
                                  data_fixture("voc/SegmentationClass/f.png")}) {
    const std::string message = error_of([&] { read_image(path); });
    INFO(message);
    CHECK(message.rfind(path + ": ", 0) == 0);
  }
  // a JPEG cut inside its header has no frame size
  std::ifstream in(data_fixture("voc/JPEGImages/a.jpg"), std::ios::binary);
  std::string head(40, '\0');
  in.read(&head[0], 40);
  std::ofstream(dir.file("head.jpg"), std::ios::binary) << head;
  CHECK_THAT(error_of([&] { read_image_size(dir.file("head.jpg")); }), Catch::StartsWith(dir.file("head.jpg") + ": "));
}

TEST_CASE("write_image encodes by extension", "[image_io]") {
  ScratchDir dir("write_image");
  const Image image = read_image(data_fixture("folder/images/p.png"));
  write_image(dir.file("p.png"), image);
  CHECK(read_image(dir.file("p.png")).pixels == image.pixels);
  write_image(dir.file("p.jpg"), image, 95);
  CHECK(read_image_size(dir.file("p.jpg")).width == image.width);
  CHECK_THAT(error_of([&] { write_image(dir.file("p.unknownext"), image); }),
             Catch::StartsWith(dir.file("p.unknownext") + ": cannot encode"));
}

TEST_CASE("overlay blends the class colours and adds a legend", "[image_io]") {
  Image image(10, 12, 3, 100);
  Image label(10, 12, 1, 0);
  label.at(2, 3) = 1;
  label.at(5, 5) = 255;
  const Image out = overlay_label(image, label, {"background", "aeroplane"}, 0.5);
  CHECK(out.width > image.width);  // legend panel on the right
  CHECK(out.height >= image.height);
  CHECK(out.at(5, 5, 0) == 100);         // void is left as the image
  CHECK(out.at(2, 3, 2) == 114);         // red: (100 + 128) / 2
  CHECK(out.at(2, 3, 0) == 50);          // blue: (100 + 0) / 2
  CHECK(out.at(0, 0, 1) == 50);          // background black blends too
  CHECK_THROWS_AS(overlay_label(image, Image(3, 3, 1), {}, 0.5), Error);
}

TEST_CASE("sample grid puts image, truth and prediction side by side", "[image_io]") {
  Image a(10, 12, 3, 7), b(8, 6, 3, 9);
  Image la(10, 12, 1, 1), lb(8, 6, 1, 2);
  const Image grid = sample_grid({{&a, &la, &la}, {&b, nullptr, &lb}});
  CHECK(grid.width == 4 + 3 * (12 + 4));
  CHECK(grid.height == 4 + 10 + 4 + 8 + 4);
  CHECK(grid.at(4, 4, 0) == 7);                      // first image
  CHECK(grid.at(4, 4 + 16, 2) == 128);               // class 1 in red
  CHECK(grid.at(4 + 14, 4 + 32, 1) == 128);          // class 2 in green
  CHECK_THROWS_AS(sample_grid({{&a, &lb, nullptr}}), Error);
}
