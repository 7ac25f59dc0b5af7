#pragma once
// Atrous (dilated) 3x3 convolutions on Winograd's path. A stride-1 3x3
// convolution with dilation d and pad d (torchvision's fcn_resnet50/101:
// layer3 with d = 2, layer4 with d = 4) computes output (y, x) from the pixels
// (y + d*i, x + d*j), i, j in {-1, 0, 1}: pixels of the output's own phase
// (y mod d, x mod d). It is therefore d*d independent undilated 3x3 pad-1
// convolutions, one per phase image image[:, py::d, px::d]. Laid side by side
// in one "phase grid", a zero row (column) between neighbouring phase images
// serving as the bottom (right) pad of one and the top (left) pad of the next,
//
//   grid rows: phase 0's rows | 0 | phase 1's rows | 0 | ... | phase d-1's rows
//   (phase p has ceil((H - p) / d) rows; H + d - 1 grid rows in all)
//
// one undilated pad-1 3x3 convolution of the grid computes every output at
// once (those on the separators are discarded), and that convolution is one
// Winograd computes: F(2x2) / F(4x4) instead of im2col + GEMM, 2.25 / 4 times
// fewer multiplies. (TensorFlow's atrous_conv2d reorders with space_to_batch
// for the same reason.) The backward passes are the grid's backward passes:
// the output gradient on the separators is zero, so they add nothing to the
// weight gradient, and the image gradient there is the padding's, dropped.
//
// A batch goes into one grid too, its images' phase images one below the
// other (an undilated pad-1 conv, d = 1, is then the batch stacked with a
// zero row between images): one Winograd call for the whole batch, its
// weights transformed once and its GEMMs over every image's tiles, where a
// call per image of ResNet's 20x20 maps transformed the weights four times
// at batch 4 for a few dozen tiles each.
// The numbers differ from im2col + GEMM by rounding only (tests/test_phase_grid.cpp).
#include <cstdint>

#include "fcn/cpu/convolution.hpp"
#include "fcn/cpu/winograd.hpp"

namespace fcn::cpu {

// Whether a batch of `batch` images of g goes into a grid: 3x3, stride 1,
// pad == dilation on both axes (so out = in), one group, and a dilation > 1
// on some axis or more than one image.
bool phase_grid_applies(const ConvGeometry& g, int64_t batch = 1);
// The undilated pad-1 convolution of the grid (g and batch must apply).
ConvGeometry phase_grid_geometry(const ConvGeometry& g, int64_t batch = 1);
// Whether it applies and its grid convolution takes the Winograd path with tiles of `tile`.
bool phase_grid_pays(const ConvGeometry& g, int tile, int64_t batch = 1);
// Floats of the scratch the three passes use: the two grids (image side and
// output side) and the grid convolution's Winograd scratch.
int64_t phase_grid_scratch_floats(const ConvGeometry& g, int64_t batch = 1);

// The semantics of conv_forward (without its equal-window pass),
// conv_backward_data and conv_backward_weight (fcn/cpu/convolution.hpp) for
// `batch` consecutive samples ([batch, C, H, W] and [batch, K, H, W]), with
// Winograd tiles of `tile` (2 or 4; phase_grid_pays says whether that beats
// im2col + GEMM):
//   outputs = conv(images) + beta * outputs (+ bias), then max(., 0) when rectify
//   image_grads += conv_transpose(output_grads)
//   weight_grad += d conv / d weight, contracted with output_grads, summed over the batch
void phase_grid_forward(const ConvGeometry& g, int64_t batch, const float* weight, const float* images, float beta,
                        float* outputs, const float* bias, bool rectify, int tile = winograd_forward_tile());
void phase_grid_backward_data(const ConvGeometry& g, int64_t batch, const float* weight, const float* output_grads,
                              float* image_grads, int tile = winograd_backward_tile());
void phase_grid_backward_weight(const ConvGeometry& g, int64_t batch, const float* images, const float* output_grads,
                                float* weight_grad, int tile = winograd_backward_tile());

}  // namespace fcn::cpu
