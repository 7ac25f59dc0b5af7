#include "fcn/data/synthetic.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "fcn/data/random.hpp"
#include "fcn/core/error.hpp"

namespace fcn {

namespace {

constexpr int kShapes = 8;
constexpr int kTextures = 5;
const char* const kShapeNames[kShapes] = {"disk", "square", "triangle", "ring", "cross", "star", "bar", "halfdisk"};
const char* const kTextureNames[kTextures] = {"hstripes", "checker", "dots", "vstripes", "diagonal"};

int shape_of(int cls) { return (cls - 1) % kShapes; }
int texture_of(int cls) { return ((cls - 1) + (cls - 1) / kShapes) % kTextures; }

cv::Scalar random_colour(Random& rng) {
  return cv::Scalar(static_cast<double>(rng.below(256)), static_cast<double>(rng.below(256)),
                    static_cast<double>(rng.below(256)));
}

double brightness(const cv::Scalar& c) { return (c[0] + c[1] + c[2]) / 3; }

// A pair of colours far enough apart in brightness for the texture to show.
std::pair<cv::Scalar, cv::Scalar> texture_colours(Random& rng) {
  for (;;) {
    const cv::Scalar a = random_colour(rng), b = random_colour(rng);
    if (std::abs(brightness(a) - brightness(b)) >= 60) return {a, b};
  }
}

// Textures 0-4 belong to object classes; clutter may be speckled, so
// "textured" alone does not mean "object".
constexpr int kSpeckle = 5;

// Whether pixel (x, y) takes the texture's first colour; `phase` shifts it.
bool texture_on(int texture, int x, int y, int phase, Random& rng) {
  switch (texture) {
    case 0: return ((y + phase) / 2) % 2 == 0;                        // horizontal stripes, period 4
    case 1: return (((x + phase) / 3) + ((y + phase) / 3)) % 2 == 0;  // checkerboard, 3 px cells
    case 2: return (x + phase) % 5 < 2 && (y + phase) % 5 < 2;        // 2x2 dots every 5 px
    case 3: return ((x + phase) / 2) % 2 == 0;                        // vertical stripes, period 4
    case 4: return ((x + y + phase) / 3) % 2 == 0;                    // diagonal stripes, period 6
    default: return rng.chance(0.5);                                  // speckle
  }
}

// Fills the pixels under `mask` with a two-colour texture.
void fill_texture(cv::Mat& image, const cv::Mat& mask, int texture, Random& rng) {
  const auto colours = texture_colours(rng);
  const int phase = static_cast<int>(rng.below(30));
  for (int y = 0; y < image.rows; ++y)
    for (int x = 0; x < image.cols; ++x) {
      if (!mask.at<uint8_t>(y, x)) continue;
      const cv::Scalar& c = texture_on(texture, x, y, phase, rng) ? colours.first : colours.second;
      image.at<cv::Vec3b>(y, x) = cv::Vec3b(static_cast<uint8_t>(c[0]), static_cast<uint8_t>(c[1]), static_cast<uint8_t>(c[2]));
    }
}

std::vector<cv::Point> rotated(const std::vector<cv::Point2d>& unit, cv::Point2d centre, double radius, double angle) {
  std::vector<cv::Point> points;
  const double c = std::cos(angle), s = std::sin(angle);
  for (const auto& p : unit)
    points.emplace_back(static_cast<int>(std::lround(centre.x + radius * (c * p.x - s * p.y))),
                        static_cast<int>(std::lround(centre.y + radius * (s * p.x + c * p.y))));
  return points;
}

// Vertices of the polygon shapes, scaled to a unit radius.
std::vector<cv::Point2d> unit_polygon(int shape) {
  std::vector<cv::Point2d> p;
  auto regular = [&](int n, double offset) {
    for (int i = 0; i < n; ++i) p.emplace_back(std::cos(offset + 2 * M_PI * i / n), std::sin(offset + 2 * M_PI * i / n));
  };
  switch (shape) {
    case 1: regular(4, M_PI / 4); break;   // square
    case 2: regular(3, -M_PI / 2); break;  // triangle
    case 4:                                // cross: a plus of two bars 0.7 wide
      p = {{-0.35, -1}, {0.35, -1}, {0.35, -0.35}, {1, -0.35}, {1, 0.35}, {0.35, 0.35},
           {0.35, 1},   {-0.35, 1}, {-0.35, 0.35}, {-1, 0.35}, {-1, -0.35}, {-0.35, -0.35}};
      break;
    case 5:  // five-pointed star
      for (int i = 0; i < 10; ++i) {
        const double r = i % 2 ? 0.45 : 1.0, a = -M_PI / 2 + M_PI * i / 5;
        p.emplace_back(r * std::cos(a), r * std::sin(a));
      }
      break;
    case 6: p = {{-1, -0.3}, {1, -0.3}, {1, 0.3}, {-1, 0.3}}; break;  // bar
    default:                                                           // half disk
      for (int i = 0; i <= 16; ++i) p.emplace_back(std::cos(M_PI * i / 16), 0.3 - std::sin(M_PI * i / 16));
      break;
  }
  return p;
}

void draw_shape(cv::Mat& mask, int shape, cv::Point2d centre, double radius, double angle) {
  const cv::Point c(static_cast<int>(std::lround(centre.x)), static_cast<int>(std::lround(centre.y)));
  if (shape == 0 || shape == 3) {  // disk, ring
    cv::circle(mask, c, static_cast<int>(std::lround(radius)), cv::Scalar(255), cv::FILLED, cv::LINE_8);
    if (shape == 3) cv::circle(mask, c, static_cast<int>(std::lround(0.5 * radius)), cv::Scalar(0), cv::FILLED, cv::LINE_8);
    return;
  }
  const std::vector<std::vector<cv::Point>> polygons = {rotated(unit_polygon(shape), centre, radius, angle)};
  cv::fillPoly(mask, polygons, cv::Scalar(255), cv::LINE_8);
}

// Background: a random colour, blobs (solid or speckled) and lines, all in
// random colours.
void draw_clutter(cv::Mat& image, Random& rng) {
  const int h = image.rows, w = image.cols, side = std::min(h, w);
  image.setTo(random_colour(rng));
  const int blobs = static_cast<int>(rng.between(3, 6));
  for (int i = 0; i < blobs; ++i) {
    const cv::Point centre(static_cast<int>(rng.below(w)), static_cast<int>(rng.below(h)));
    const cv::Size axes(static_cast<int>(rng.between(side / 20 + 1, side / 4)),
                        static_cast<int>(rng.between(side / 20 + 1, side / 4)));
    const double angle = rng.uniform(0, 180);
    const int fill = static_cast<int>(rng.below(3));  // 0-1 solid, 2 speckle
    if (fill < 2) {
      cv::ellipse(image, centre, axes, angle, 0, 360, random_colour(rng), cv::FILLED, cv::LINE_8);
      continue;
    }
    cv::Mat mask = cv::Mat::zeros(h, w, CV_8U);
    cv::ellipse(mask, centre, axes, angle, 0, 360, cv::Scalar(255), cv::FILLED, cv::LINE_8);
    fill_texture(image, mask, kSpeckle, rng);
  }
  const int lines = static_cast<int>(rng.between(3, 8));
  for (int i = 0; i < lines; ++i) {
    const cv::Point a(static_cast<int>(rng.below(w)), static_cast<int>(rng.below(h)));
    const cv::Point b(static_cast<int>(rng.below(w)), static_cast<int>(rng.below(h)));
    cv::line(image, a, b, random_colour(rng), static_cast<int>(rng.between(1, 3)), cv::LINE_8);
  }
}

// The rare class: in this share of the images, drawn this much smaller.
constexpr double kRareImageShare = 0.1;
constexpr double kRareObjectScale = 0.6;

// Paints one object of class `cls` into the image and the label map; its
// radius is `scale` times 0.16..0.28 of the shorter side.
void draw_object(cv::Mat& image, cv::Mat& label, int cls, Random& rng, double scale = 1.0) {
  const int h = image.rows, w = image.cols, side = std::min(h, w);
  const double radius = rng.uniform(0.16, 0.28) * side * scale;
  const cv::Point2d centre(rng.uniform(0.5 * radius, w - 0.5 * radius), rng.uniform(0.5 * radius, h - 0.5 * radius));
  const double angle = rng.uniform(0, 2 * M_PI);
  cv::Mat mask = cv::Mat::zeros(h, w, CV_8U);
  draw_shape(mask, shape_of(cls), centre, radius, angle);
  fill_texture(image, mask, texture_of(cls), rng);
  label.setTo(cv::Scalar(cls), mask);
}

// VOC-style void band: a pixel whose 3x3 neighbourhood holds two different
// classes lies on a boundary (1 px each side of it).
void mark_void_boundaries(cv::Mat& label) {
  cv::Mat high, low;
  cv::dilate(label, high, cv::Mat());
  cv::erode(label, low, cv::Mat());
  label.setTo(cv::Scalar(255), high != low);
}

// A class for one of the 1-3 common objects: uniform over the foreground
// classes, the rare one excluded.
int common_object_class(const SyntheticSpec& spec, Random& rng) {
  if (spec.rare_class == 0) return static_cast<int>(rng.between(1, spec.classes - 1));
  const int cls = static_cast<int>(rng.between(1, spec.classes - 2));
  return cls >= spec.rare_class ? cls + 1 : cls;
}

void add_noise(cv::Mat& image, Random& rng) {
  for (auto it = image.begin<uint8_t>(); it != image.end<uint8_t>(); ++it)
    *it = cv::saturate_cast<uint8_t>(*it + 8.0 * rng.normal());
}

Image to_image(const cv::Mat& mat) {
  Image image(mat.rows, mat.cols, mat.channels());
  std::copy(mat.datastart, mat.dataend, image.pixels.begin());
  return image;
}

void write_list(const std::string& path, const std::vector<std::string>& ids) {
  std::ofstream out(path);
  for (const auto& id : ids) out << id << '\n';
  out.close();
  if (!out) throw Error(path + ": write failed");
}

}  // namespace

void check_synthetic_spec(const SyntheticSpec& spec) {
  if (spec.out.empty()) throw Error("--out: an output directory is required");
  if (spec.train < 1 || spec.val < 1) throw Error("--train/--val: need at least one image in each split");
  if (spec.height < 16 || spec.width < 16 || spec.height > 4096 || spec.width > 4096)
    throw Error("--size: height and width must be in 16..4096");
  if (spec.classes < 2 || spec.classes > kMaxSyntheticClasses)
    throw Error("--classes: must be in 2.." + std::to_string(kMaxSyntheticClasses) + " (background + shapes)");
  if (spec.rare_class != 0 && (spec.rare_class < 1 || spec.rare_class >= spec.classes || spec.classes < 3))
    throw Error("--rare-class: must be a foreground class (1.." + std::to_string(spec.classes - 1) +
                ") with at least one other foreground class, got " + std::to_string(spec.rare_class));
}

std::vector<std::string> synthetic_class_names(int classes) {
  std::vector<std::string> names = {"background"};
  for (int cls = 1; cls < classes; ++cls) {
    const std::string shape = kShapeNames[shape_of(cls)];
    names.push_back(classes <= kShapes + 1 ? shape : shape + "_" + kTextureNames[texture_of(cls)]);
  }
  return names;
}

std::string synthetic_id(const SyntheticSpec& spec, int64_t index) {
  char id[32];
  if (index < spec.train)
    std::snprintf(id, sizeof(id), "train_%05lld", static_cast<long long>(index));
  else
    std::snprintf(id, sizeof(id), "val_%05lld", static_cast<long long>(index - spec.train));
  return id;
}

SyntheticSample render_synthetic_sample(const SyntheticSpec& spec, int64_t index) {
  Random rng(derive_seed(spec.seed, static_cast<uint64_t>(index)));
  cv::Mat image(spec.height, spec.width, CV_8UC3);
  cv::Mat label = cv::Mat::zeros(spec.height, spec.width, CV_8U);
  draw_clutter(image, rng);
  const int objects = static_cast<int>(rng.between(1, 3));
  for (int i = 0; i < objects; ++i) draw_object(image, label, common_object_class(spec, rng), rng);
  if (spec.rare_class > 0 && rng.chance(kRareImageShare))  // on top, so never hidden
    draw_object(image, label, spec.rare_class, rng, kRareObjectScale);
  mark_void_boundaries(label);
  add_noise(image, rng);
  return {to_image(image), to_image(label)};
}

void write_synthetic_dataset(const SyntheticSpec& spec) {
  check_synthetic_spec(spec);
  namespace fs = std::filesystem;
  const fs::path root(spec.out);
  for (const char* dir : {"JPEGImages", "SegmentationClass", "ImageSets/Segmentation"}) {
    std::error_code ec;
    fs::create_directories(root / dir, ec);
    if (ec) throw Error((root / dir).string() + ": cannot create directory (" + ec.message() + ")");
  }
  std::vector<std::string> train, val;
  for (int64_t i = 0; i < spec.train + spec.val; ++i) {
    const std::string id = synthetic_id(spec, i);
    const SyntheticSample sample = render_synthetic_sample(spec, i);
    write_image((root / "JPEGImages" / (id + ".jpg")).string(), sample.image, 95);
    write_label_png((root / "SegmentationClass" / (id + ".png")).string(), sample.label);
    (i < spec.train ? train : val).push_back(id);
  }
  std::vector<std::string> trainval = train;
  trainval.insert(trainval.end(), val.begin(), val.end());
  write_list((root / "ImageSets/Segmentation/train.txt").string(), train);
  write_list((root / "ImageSets/Segmentation/val.txt").string(), val);
  write_list((root / "ImageSets/Segmentation/trainval.txt").string(), trainval);
}

}  // namespace fcn
