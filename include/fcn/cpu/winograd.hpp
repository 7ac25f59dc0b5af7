#pragma once
// Winograd convolution F(m x m, 3 x 3) (Lavin & Gray, "Fast Algorithms for
// Convolutional Neural Networks", 2016) for the 3x3, stride-1 convolutions
// that carry nearly all of VGG16's FLOPs. The output is cut into m x m
// tiles; each tile needs the a x a input patch around it (a = m + 2), and
//
//   Y_tile[k] = A^T [ sum_c (G g[k,c] G^T) . (B^T d[c] B) ] A        (. = elementwise)
//
// so one conv becomes a^2 independent GEMMs over the transformed tiles,
// M[xi] = U[xi] V[xi] with U[xi] [K, C] from the weights and V[xi] [C, tiles]
// from the input: a^2 / m^2 multiplies per output and input channel instead
// of 9 (F(2x2, 3x3): 16 / 4, F(4x4, 3x3): 36 / 16). The transforms are
// linear maps of the tiles, and so are their adjoints:
//
//   backward data:   image_grad = the same convolution of output_grad with
//                    pad 2 - p and the kernel flipped and transposed (U^T);
//   backward weight: dU[xi] = sum over tiles (A dY A^T)[xi] V[xi]^T, then
//                    weight_grad = G^T dU G.
//
// The GEMMs run per block of tiles, one block per thread at a time, so the
// transformed tiles never exist for the whole image at once. The numbers
// differ from im2col + GEMM by rounding only (tests/test_winograd.cpp bounds
// it against a double-precision reference). F(2x2, 3x3), the default, keeps
// an output whose 3x3 window is constant the same number wherever it lies in
// its tile; across tiles that rests on the per-tile GEMMs, which OpenBLAS
// does not round alike, so conv_forward (convolution.hpp) equalises outputs of
// equal windows after either path. F(4x4, 3x3) does less arithmetic but
// breaks such ties in the last bit (see winograd.cpp), so it serves the
// backward passes, which decide nothing.
#include <cstdint>

#include "fcn/cpu/convolution.hpp"
#include "fcn/cpu/elementwise.hpp"

namespace fcn::cpu {

// The tile sizes m in use. By default the forward pass uses F(2x2, 3x3),
// which keeps max-pooling ties exact, and the two backward passes use
// F(4x4, 3x3): they make no max/ReLU decisions, so only their rounding
// differs, and they are two thirds of a train step's convolution work.
// FCN_WINOGRAD in the environment overrides: 2 or 4 for every pass, 0 to
// turn the path off (im2col + GEMM for every conv).
int winograd_forward_tile();
int winograd_backward_tile();
// The forward tile for g: F(4x4, 3x3) when g.inference (fp32, FCN_WINOGRAD
// unset), else winograd_forward_tile(). With no backward to route gradients
// by its ReLU and max-pooling decisions, F(4x4)'s larger rounding only moves
// values by that rounding (a decision it makes otherwise than float64 is one
// between two nearly equal numbers); a backward would send a gradient down
// another path, which is why training keeps F(2x2) forward.
int winograd_forward_tile(const ConvGeometry& g);

// Whether the geometry is one the Winograd path computes: 3x3 kernel,
// stride 1, dilation 1, one group, pad <= 2 (backward-data is then a pad
// 2 - p convolution), enough channels on both sides for the GEMMs to pay,
// and the path not turned off.
bool winograd_applies(const ConvGeometry& g);
// Whether it also pays at this map size: applies, and each image has at
// least kMinWinogradTiles output tiles of the given size. Per call the path
// transforms every filter (and, for the weight gradient, reduces per-thread
// partials of O x C x (m+2)^2 floats back to 3x3), a cost independent of the
// map; on ResNet's 10x10 and 20x20 maps it made the backward 2 to 6 times
// slower than im2col + GEMM (fcn bench FCN_PROFILE=1, AVX2 EPYC).
bool winograd_pays(const ConvGeometry& g, int tile);
// Floats of the scratch buffers the three passes keep (per thread: the tiles
// of one block in and out; shared: the transformed weights or the per-thread
// weight-gradient partials), the largest of the three, for memory estimates.
int64_t winograd_scratch_floats(const ConvGeometry& g);

// The three passes, with the semantics of conv_forward, conv_backward_data
// and conv_backward_weight (fcn/cpu/convolution.hpp) for one sample, with tiles
// of `tile` (2 or 4):
//   output = conv(image) + beta * output (+ bias[k])     (beta 0 or 1),
//            then max(output, 0) when rectify
//   image_grad = conv_transpose(output_grad) + beta * image_grad   (beta 0 or 1),
//            then kept_gradient of it where `kept` is given (elementwise.hpp)
//   weight_grad += d conv / d weight, contracted with output_grad
// Tiles whose outputs all lie in `skip` (when not null) are not computed:
// the caller fills those outputs (conv_forward's constant frame).
void winograd_forward(const ConvGeometry& g, const float* weight, const float* image, float beta, float* output,
                      const float* bias = nullptr, bool rectify = false, int tile = winograd_forward_tile(),
                      const ConstantFrame* skip = nullptr);
void winograd_backward_data(const ConvGeometry& g, const float* weight, const float* output_grad, float* image_grad,
                            int tile = winograd_backward_tile(), float beta = 1.f, const KeptBits* kept = nullptr);
void winograd_backward_weight(const ConvGeometry& g, const float* image, const float* output_grad,
                              float* weight_grad, int tile = winograd_backward_tile(),
                              const ConstantFrame* skip = nullptr);
// The outputs of the tiles of size `tile` that lie wholly in `frame` (those
// that winograd_forward and winograd_backward_weight skip): a frame again.
ConstantFrame winograd_skipped(const ConvGeometry& g, const ConstantFrame& frame, int tile);

}  // namespace fcn::cpu
