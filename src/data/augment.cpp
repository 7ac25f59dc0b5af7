#include "fcn/data/augment.hpp"

#include <algorithm>
#include <cmath>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "fcn/data/random.hpp"

namespace fcn {

namespace {

cv::Mat plane(Tensor& t, int64_t c) {
  return cv::Mat(static_cast<int>(t.h()), static_cast<int>(t.w()), CV_32F, t.data() + c * t.h() * t.w());
}

// Applies `op(source_plane, destination_plane)` to every channel of `t`,
// producing planes of size `out_h` x `out_w`.
template <typename Op>
void map_planes(Tensor& t, int out_h, int out_w, Op op) {
  Tensor out({t.n(), t.c(), out_h, out_w});
  for (int64_t c = 0; c < t.c(); ++c) {
    cv::Mat dst = plane(out, c);
    op(plane(t, c), dst);
  }
  t = std::move(out);
}

void rescale(Tensor& image, Tensor& label, double factor) {
  const int h = std::max(1, static_cast<int>(std::lround(image.h() * factor)));
  const int w = std::max(1, static_cast<int>(std::lround(image.w() * factor)));
  resize_bilinear(image, h, w);
  // nearest neighbour keeps labels as class ids (the exact variant samples
  // at pixel centres, like PIL)
  map_planes(label, h, w, [&](const cv::Mat& src, cv::Mat& dst) {
    cv::resize(src, dst, dst.size(), 0, 0, cv::INTER_NEAREST_EXACT);
  });
}


void pad_crop(Tensor& t, int top, int left, int crop_h, int crop_w, float fill) {
  const int pad_bottom = std::max(0, crop_h - static_cast<int>(t.h()));
  const int pad_right = std::max(0, crop_w - static_cast<int>(t.w()));
  map_planes(t, crop_h, crop_w, [&](const cv::Mat& src, cv::Mat& dst) {
    cv::Mat padded;
    cv::copyMakeBorder(src, padded, 0, pad_bottom, 0, pad_right, cv::BORDER_CONSTANT, cv::Scalar(fill));
    padded(cv::Rect(left, top, crop_w, crop_h)).copyTo(dst);
  });
}

}  // namespace

void resize_bilinear(Tensor& t, int height, int width) {
  map_planes(t, height, width, [](const cv::Mat& src, cv::Mat& dst) {
    cv::resize(src, dst, dst.size(), 0, 0, cv::INTER_LINEAR);
  });
}

void flip(Tensor& t) {
  map_planes(t, static_cast<int>(t.h()), static_cast<int>(t.w()),
             [](const cv::Mat& src, cv::Mat& dst) { cv::flip(src, dst, 1); });
}

bool augment_is_identity(const AugmentConfig& augment) {
  return !augment.flip && augment.scale_min == 1.0 && augment.scale_max == 1.0 && augment.crop_height == 0 &&
         augment.crop_width == 0;
}

void augment_sample(Tensor& image, Tensor& label, const AugmentConfig& augment, uint64_t seed, float ignore_label) {
  Random rng(seed);
  if (augment.scale_min != 1.0 || augment.scale_max != 1.0)
    rescale(image, label, rng.uniform(augment.scale_min, augment.scale_max));
  if (augment.flip && rng.chance(0.5)) {
    flip(image);
    flip(label);
  }
  if (augment.crop_height > 0 && augment.crop_width > 0) {
    const int crop_h = static_cast<int>(augment.crop_height), crop_w = static_cast<int>(augment.crop_width);
    const int top = static_cast<int>(rng.between(0, std::max<int64_t>(0, image.h() - crop_h)));
    const int left = static_cast<int>(rng.between(0, std::max<int64_t>(0, image.w() - crop_w)));
    pad_crop(image, top, left, crop_h, crop_w, 0.0f);
    pad_crop(label, top, left, crop_h, crop_w, ignore_label);
  }
}

}  // namespace fcn
