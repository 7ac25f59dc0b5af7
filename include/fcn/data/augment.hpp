#pragma once
// Seeded training augmentation on one sample's tensors, in this order:
// random rescale (image bilinear, label nearest), horizontal flip, random
// crop. A crop larger than the (rescaled) sample first pads it at the bottom
// and right: the mean-subtracted image with 0 (the mean colour) and the
// label with the ignore label. Every draw comes from `seed`, so the same
// seed gives the same sample.
#include <cstdint>

#include "fcn/data/dataset.hpp"
#include "fcn/core/tensor.hpp"

namespace fcn {

// Every plane of an NCHW tensor resized bilinearly (OpenCV's INTER_LINEAR,
// half-pixel centres) to height x width; and mirrored left to right. Shared
// by augmentation and test-time augmentation.
void resize_bilinear(Tensor& t, int height, int width);
void flip(Tensor& t);

bool augment_is_identity(const AugmentConfig& augment);

// image [1, C, H, W], label [1, 1, H, W]; both are replaced.
void augment_sample(Tensor& image, Tensor& label, const AugmentConfig& augment, uint64_t seed, float ignore_label);

}  // namespace fcn
