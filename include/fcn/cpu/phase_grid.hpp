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
// The numbers differ from im2col + GEMM by rounding only (tests/test_phase_grid.cpp).
#include <cstdint>

#include "fcn/cpu/convolution.hpp"
#include "fcn/cpu/winograd.hpp"

namespace fcn::cpu {

// Whether g is a convolution the grid computes: 3x3, stride 1, dilation > 1
// on some axis and pad == dilation on both (so out = in), one group.
bool phase_grid_applies(const ConvGeometry& g);
// The undilated pad-1 convolution of g's phase grid (g must apply).
ConvGeometry phase_grid_geometry(const ConvGeometry& g);
// Whether g applies and its grid convolution takes the Winograd path with tiles of `tile`.
bool phase_grid_pays(const ConvGeometry& g, int tile);
// Floats of the scratch the three passes use: the two grids (image side and
// output side) and the grid convolution's Winograd scratch.
int64_t phase_grid_scratch_floats(const ConvGeometry& g);

// The semantics of conv_forward (without its equal-window pass),
// conv_backward_data and conv_backward_weight (fcn/cpu/convolution.hpp) for
// one sample, with Winograd tiles of `tile` (2 or 4; phase_grid_pays(g, tile)
// says whether that beats im2col + GEMM):
//   output = conv(image) + beta * output (+ bias), then max(., 0) when rectify
//   image_grad += conv_transpose(output_grad)
//   weight_grad += d conv / d weight, contracted with output_grad
void phase_grid_forward(const ConvGeometry& g, const float* weight, const float* image, float beta, float* output,
                        const float* bias, bool rectify, int tile = winograd_forward_tile());
void phase_grid_backward_data(const ConvGeometry& g, const float* weight, const float* output_grad, float* image_grad,
                              int tile = winograd_backward_tile());
void phase_grid_backward_weight(const ConvGeometry& g, const float* image, const float* output_grad,
                                float* weight_grad, int tile = winograd_backward_tile());

}  // namespace fcn::cpu
