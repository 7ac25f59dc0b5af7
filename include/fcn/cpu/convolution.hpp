#pragma once
// Convolution lowered to GEMM (Caffe's im2col): the geometry, im2col/col2im
// and the three per-image GEMMs that serve both conv and deconv. Deconv is
// conv with forward and backward-data swapped, so everything here is named
// after the convolution that maps the "image" side to the "column" side:
//
//   image  [channels, height, width]              (conv input, deconv output)
//   output [out_channels, out_h, out_w]           (conv output, deconv input)
//   weight [out_channels, channels/groups, kernel_h, kernel_w]
//
// All pointers address one sample; the layers loop over the batch.
#include <cstdint>

#include "fcn/core/precision.hpp"

#include "fcn/core/constant_frame.hpp"

namespace fcn::cpu {

struct ConvGeometry {
  int64_t channels = 0, height = 0, width = 0;
  int64_t out_channels = 0, out_h = 0, out_w = 0;
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;
  // what the GEMMs compute in (model.precision); frames and Winograd transforms stay float
  Precision precision = Precision::fp32;
  // No backward pass follows the forward (an inference-only graph): the
  // forward may take F(4x4, 3x3) Winograd (winograd_forward_tile(g)).
  bool inference = false;

  int64_t column_rows() const { return channels * kernel_h * kernel_w; }  // all groups
  int64_t out_area() const { return out_h * out_w; }
  int64_t image_numel() const { return channels * height * width; }
  int64_t output_numel() const { return out_channels * out_area(); }
  int64_t weight_numel() const { return out_channels * column_rows() / groups; }  // [O, C/g, KH, KW]
  // A 1x1, stride-1, unpadded conv whose column buffer IS the image.
  bool is_pointwise() const;
};

// Floats of the scratch buffers conv_forward, conv_backward_data and
// conv_backward_weight use for this geometry (the largest of the three):
// a band of im2col columns, or Winograd's transformed tiles and weights;
// in bf16 also the rounded copies of the weight and of a GEMM's columns.
// With `batch` > 1, the batch's one grid convolution where conv_*_images runs one.
int64_t conv_scratch_floats(const ConvGeometry& g, int64_t batch = 1);

// col[c*KH*KW + ki*KW + kj, oh*OW + ow] = image[c, oh*sh - ph + ki*dh, ow*sw - pw + kj*dw]
// (0 in the padding).                                   // col: [C*KH*KW, OH*OW]
void im2col(const ConvGeometry& g, const float* image, float* col);
// The adjoint of im2col: image += col scattered back (overlaps add up).
void col2im_add(const ConvGeometry& g, const float* col, float* image);
// The same from the columns transposed: col_t[OH*OW, C*KH*KW].
void col2im_add_transposed(const ConvGeometry& g, const float* col_t, float* image);

// output = W · im2col(image) + beta * output (+ bias[o] on output channel o
// when bias is not null), per group; then max(output, 0) when rectify (a
// ReLU fused into the pass that writes the output). With beta 0, an output
// whose window (its im2col column) equals its left or upper neighbour's is
// then set to that neighbour's number, bit for bit: the GEMMs round equal
// windows differently by where they lie (OpenBLAS's micro-kernels sum edge
// and interior tiles in different orders; Winograd's tiles go through those
// GEMMs too), and FCN's 100-pixel padding makes wide constant regions whose
// max-pooling windows hold exact ties, which must stay exact for the pooling
// gradients to go where PyTorch (and exact arithmetic) sends them. An
// inference's forward (g.inference) skips that pass: with no pooling
// gradient to route, an inexact tie moves the pooled value by rounding only.
//
// With `input_frame` (and beta 0), the outputs in conv_output_frame(g,
// *input_frame) are computed once per channel (bias + sum_c v_c * sum of
// the kernel's taps, v_c the input's frame value, in double, then rounded
// and rectified) and written to all of them; the im2col GEMM or Winograd
// runs over the other outputs only (whole Winograd tiles inside the frame
// are skipped). Frame outputs are then bit-equal to each other, so the
// equal-window rule holds among them by construction.
void conv_forward(const ConvGeometry& g, const float* weight, const float* image, float beta, float* output,
                  const float* bias = nullptr, bool rectify = false, const ConstantFrame* input_frame = nullptr);
// The constant frame of a conv's output, given its input's (empty: none):
// the outputs whose window lies wholly in the input's frame, or wholly in the
// zero padding (those are bias[o]), whichever region is larger (their
// values differ, so they cannot be joined).
ConstantFrame conv_output_frame(const ConvGeometry& g, const ConstantFrame& input_frame);
// image_grad += col2im(W^T · output_grad), per group; or, without
// `accumulate`, image_grad = that (its old values are not read).
void conv_backward_data(const ConvGeometry& g, const float* weight, const float* output_grad, float* image_grad,
                        bool accumulate = true);
// weight_grad += output_grad · im2col(image)^T, per group; or, without
// `accumulate`, weight_grad = that (its old values are not read: the im2col
// GEMMs write it, the other paths zero it first).
// With `input_frame`, the outputs in its conv_output_frame add their part
// in closed form, v_c * sum over them of output_grad[o] at every tap (0 when
// their windows read the zero padding), and the GEMMs (or Winograd's tiles)
// run over the other outputs only.
// With `bias_grad`, also bias_grad[o] += the sum of output_grad[o] (the bias
// gradient, add_channel_sums's numbers): with a frame each plane's sum is
// taken just before the frame's, which then reads the plane from cache.
void conv_backward_weight(const ConvGeometry& g, const float* image, const float* output_grad, float* weight_grad,
                          const ConstantFrame* input_frame = nullptr, bool accumulate = true,
                          float* bias_grad = nullptr);

// The three passes over `batch` consecutive samples (images [batch, C, H, W],
// outputs [batch, K, OH, OW]; beta 0), with the per-sample semantics above
// and the weight gradient summed over the batch. Where batch_on_grid, the
// batch runs as one grid convolution (phase_grid.hpp): a dilated conv's
// batch whenever its grid pays, an undilated 3x3 conv's when its maps are
// small; otherwise, and with a constant frame, sample by sample.
bool batch_on_grid(const ConvGeometry& g, int64_t batch, int tile);
// The Winograd tile the forward takes for g (and `batch` images a call):
// winograd_forward_tile(g), unless that tile pays on none of the paths at
// this size (an inference forward's F(4x4) on a map of few tiles), then
// winograd_forward_tile().
int forward_tile(const ConvGeometry& g, int64_t batch = 1);
// Whether the GEMMs of conv_forward_images or conv_backward_data_images
// read the weight itself (the im2col path), not a transform of it (Winograd,
// the phase grid): then a bf16 copy of the weight rounded once serves them
// all (RoundedCopy, bf16_gemm.hpp).
bool gemms_read_weight(const ConvGeometry& g, int64_t batch);
// The rows of the weight's pair-interleaved bf16 copy that conv_backward_data
// reads when a RoundedCopy holds one (RoundedCopy::hold's interleaved_rows),
// or 0 where it reads none: bf16, the im2col path in one band, and a weight
// of at least 1024 x 1024 laid out as a GEMM's B needs (VGG16's fc6 and fc7).
int64_t backward_data_interleaved_rows(const ConvGeometry& g, int64_t batch);
void conv_forward_images(const ConvGeometry& g, int64_t batch, const float* weight, const float* images,
                         float* outputs, const float* bias = nullptr, bool rectify = false,
                         const ConstantFrame* input_frame = nullptr);
// With `kept` (a rectifier's bits over the whole batch of image_grads, bit 0
// at image_grads[0]), each gradient then becomes kept_gradient of itself
// (elementwise.hpp): Winograd applies them as it writes, the other paths in
// one pass after.
void conv_backward_data_images(const ConvGeometry& g, int64_t batch, const float* weight, const float* output_grads,
                               float* image_grads, bool accumulate = true, const uint16_t* kept = nullptr);
// Whether conv_backward_data_images writes every image gradient in its
// pass itself (Winograd, image by image), so that writing them without
// `accumulate` saves the zeroing and the reading of the old values; the
// other paths add, and zero them first to write.
bool backward_data_writes_whole(const ConvGeometry& g, int64_t batch);
void conv_backward_weight_images(const ConvGeometry& g, int64_t batch, const float* images, const float* output_grads,
                                 float* weight_grad, const ConstantFrame* input_frame = nullptr, bool accumulate = true,
                                 float* bias_grad = nullptr);

// Depthwise geometry (groups == channels == out_channels, weight [C, 1, KH, KW]):
// the same as conv_forward / conv_backward_data, one channel at a time in
// parallel, so the column buffer holds one channel instead of all.
void depthwise_forward(const ConvGeometry& g, const float* weight, const float* image, float beta, float* output);
void depthwise_backward_data(const ConvGeometry& g, const float* weight, const float* output_grad, float* image_grad);

// out[c, i] += bias[c]                                  // out: [channels, area]
// out[c] += bias[c] (bias may be null), then max(out[c], 0) when rectify:
// NaN stays NaN, as in the ReLU layer.
void add_channel_bias(int64_t channels, int64_t area, const float* bias, float* out, bool rectify = false);
// bias_grad[c] += sum_i grad[c, i]                      // grad: [channels, area]
void add_channel_sums(int64_t channels, int64_t area, const float* grad, float* bias_grad);
// add_channel_sums of each of `batch` output gradients [K, OH, OW]: a conv's bias gradient
void add_bias_grad_images(const ConvGeometry& g, int64_t batch, const float* output_grads, float* bias_grad);

}  // namespace fcn::cpu
