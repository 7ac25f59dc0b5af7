#pragma once
// `fcn explain deconv`: what a deconvolution (transposed convolution) layer
// does — FCN paper section 3.3, "upsampling is backwards strided
// convolution" — computed by fcn's own conv, deconv and crop layers and the
// model zoo's graphs, so the explanation cannot drift from the engine.
//
// Every function returns plain numbers (Grid = a small 2-D array) that the
// tests check and the CLI prints. All layers here are single-channel,
// batch 1, bias-free; a Grid is one [H, W] plane.
#include <cstdint>
#include <string>
#include <vector>

#include "fcn/core/layer.hpp"

namespace fcn {

// A small dense 2-D array of numbers, row-major: images, kernels, matrices.
struct Grid {
  int64_t rows = 0, cols = 0;
  std::vector<double> values;

  Grid() = default;
  Grid(int64_t rows, int64_t cols, double fill = 0.0);
  static Grid from_rows(const std::vector<std::vector<double>>& rows);
  double& operator()(int64_t r, int64_t c) { return values[r * cols + c]; }
  double operator()(int64_t r, int64_t c) const { return values[r * cols + c]; }
  bool same_shape(const Grid& other) const { return rows == other.rows && cols == other.cols; }
};

Grid transpose(const Grid& m);
Grid matmul(const Grid& a, const Grid& b);
// Sum of elementwise products (the inner product <a, b> of two same-shaped grids).
double dot(const Grid& a, const Grid& b);
// max |a - b|; infinity when the shapes differ.
double max_abs_diff(const Grid& a, const Grid& b);
// A [rows*cols, 1] column holding the grid row by row, and back.
Grid flatten(const Grid& g);
Grid unflatten(const Grid& column, int64_t rows, int64_t cols);

// --- the engine's layers on one plane -------------------------------------

// The `conv` layer (weights = the kernel) applied to x.
Grid conv_layer_forward(const Grid& x, const Grid& weights, int64_t stride, int64_t pad);
// The `conv` layer's backward pass: d<conv(x), dy>/dx for an output gradient dy
// (x only gives the input size).
Grid conv_layer_backward(const Grid& x, const Grid& weights, int64_t stride, int64_t pad, const Grid& dy);
// The `deconv` layer (weights = the kernel) applied to x.
Grid deconv_layer_forward(const Grid& x, const Grid& weights, int64_t stride, int64_t pad,
                          int64_t output_padding = 0);
// The weight of a k x k, stride-s `deconv` layer after weight_init "bilinear".
Grid bilinear_layer_kernel(int64_t kernel, int64_t stride);

// --- 1. convolution as a matrix -------------------------------------------

struct ConvAsMatrix {
  int64_t input_size = 4, stride = 1, pad = 0, output_size = 0;
  int64_t output_padding = 0;  // the deconv's, so that it gives back input_size
  Grid weights;                // the 3x3 kernel
  Grid matrix;                 // C [out*out, in*in]: column j = conv layer on the unit image e_j
  Grid deconv_matrix;          // [in*in, out*out]: column i = deconv layer on the unit image e_i
  Grid conv_backward_matrix;   // [in*in, out*out]: column i = conv backward with dy = e_i
  // The adjoint identity <Cx, y> = <x, C^T y> on random x, y, with Cx from
  // the conv layer and C^T y from the deconv layer.
  Grid x, y, cx, cty;
  double cx_dot_y = 0, x_dot_cty = 0;
};
ConvAsMatrix conv_as_matrix(int64_t stride, int64_t pad, uint64_t seed = 1);

// --- 2. the two views of transposed convolution --------------------------

struct TransposedViews {
  int64_t stride = 1, pad = 0;
  Grid input, weights;
  Grid scatter;         // each input value times the kernel, added at (i*s - p, j*s - p)
  Grid zero_inserted;   // s-1 zeros between neighbours, k-1-p zeros around the border
  Grid flipped;         // the kernel rotated by 180 degrees
  Grid gathered;        // the conv layer (stride 1) on zero_inserted with the flipped kernel
  Grid layer;           // the deconv layer
};
// Needs pad <= kernel - 1 (else the zero border would be negative).
TransposedViews transposed_views(const Grid& input, const Grid& weights, int64_t stride, int64_t pad);
// The scatter-add view alone: out[i*s - p + a][j*s - p + b] += x[i][j] * w[a][b].
Grid scatter_add(const Grid& input, const Grid& weights, int64_t stride, int64_t pad);
Grid zero_insert(const Grid& input, int64_t stride, int64_t border);
Grid flip(const Grid& weights);

// --- 3. worked example ----------------------------------------------------

struct WorkedExample {
  Grid input, weights;  // [[1,2],[3,4]], 3x3 ones
  int64_t stride = 2;
  Grid full;            // deconv layer, pad 0: 5x5
  Grid top_left;        // crop layer, offset 0, to 4x4: what a "same"-padded framework keeps
  Grid padded;          // deconv layer, pad 1, output_padding 1 (PyTorch's way to 4x4)
};
WorkedExample worked_example();

// --- 4. bilinear upsampling -----------------------------------------------

struct BilinearUpsampling {
  int64_t kernel = 4, stride = 2, pad = 1;
  double factor = 0, center = 0;
  Grid layer_kernel;         // the deconv layer's weight after weight_init "bilinear"
  Grid formula_kernel;       // (1-|i-c|/f)(1-|j-c|/f), computed here
  TransposedViews views;     // the ramp upsampled both ways with the bilinear kernel
  std::vector<double> positions;  // input coordinate of each output row/col (the layer's coord map)
  Grid interpolated;         // bilinear interpolation at `positions`, clamped at the borders
  int64_t interior_begin = 0, interior_end = 0;  // outputs whose position lies inside the input
  double interior_max_diff = 0;  // max |deconv - interpolated| over the interior rows and cols
};
BilinearUpsampling bilinear_upsampling();

// --- 5. checkerboard artifacts --------------------------------------------

struct OverlapCase {
  int64_t kernel = 0, stride = 0;
  std::vector<double> axis_counts;  // taps reaching each output of a 1-D row
  Grid counts;                      // all-ones deconv on an all-ones input: taps per output pixel
  Grid learned_kernel;              // a random smooth kernel
  Grid learned_output;              // the deconv layer with it on the all-ones input
  Grid learned_phases;              // a deep-interior stride x stride block of learned_output
};
struct Checkerboard {
  int64_t input_size = 5;
  std::vector<OverlapCase> cases;  // kernel 3 and 4, stride 2
  Grid bilinear_output;            // the bilinear k4s2 deconv on the all-ones input
  Grid bilinear_phases;            // its deep-interior 2x2 block
};
Checkerboard checkerboard(uint64_t seed = 7);
// Draws the maps magnified (nearest neighbour, cell grid, colour map) as
// DIR/overlap_k3s2.png, overlap_k4s2.png, learned_k3s2.png, learned_k4s2.png,
// bilinear_k4s2.png; creates DIR. Returns the paths written.
std::vector<std::string> write_checkerboard_pictures(const Checkerboard& board, const std::string& dir);

// --- 6. the FCN numbers ----------------------------------------------------

// FCN-32s (zoo graph) at input size x size with conv1_1 padded by conv1_pad.
// A size is 0 when the net cannot produce that blob.
struct PadTrial {
  int64_t conv1_pad = 100, input = 0;
  int64_t pool5 = 0, fc6 = 0, upscore = 0;
  bool fits = false;    // the whole net, final crop included, reshapes
  std::string failure;  // the engine's error when it does not
};
std::vector<PadTrial> pad_trials(const std::vector<int64_t>& sizes, const std::vector<int64_t>& pads);

// A layer that moves coordinates: its own map and the composed map data -> its output.
struct GeometryStep {
  std::string layer, type;
  CoordMap own, composed;
};
// A crop "auto": x and ref's maps from the data layer, and the offset the layer took.
struct CropDerivation {
  std::string layer, x, ref;
  CoordMap x_map, ref_map;
  int64_t offset = 0;
};
struct VariantGeometry {
  std::string arch;
  std::vector<GeometryStep> steps;  // layers with a non-identity map, not listed by an earlier variant
  std::vector<CropDerivation> crops;
};
// fcn32s, fcn16s, fcn8s, each reshaped at size x size.
std::vector<VariantGeometry> crop_geometry(int64_t size = 500);

}  // namespace fcn
