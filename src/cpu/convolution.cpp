#include "fcn/cpu/convolution.hpp"

#include <algorithm>
#include <vector>

#include "fcn/cpu/gemm.hpp"
#include "fcn/cpu/winograd.hpp"
#include "fcn/core/tensor.hpp"

namespace fcn::cpu {

namespace {

// Below this many column entries an OpenMP team costs more than it saves.
constexpr int64_t kParallelMinEntries = 1 << 16;

// Smallest i >= 0 with i*stride + offset >= bound (offset may be negative).
int64_t first_index_reaching(int64_t bound, int64_t offset, int64_t stride) {
  const int64_t need = bound - offset;
  return need <= 0 ? 0 : (need + stride - 1) / stride;
}

// Visits the column rows of image channel c one output row at a time:
// fn(col_at, image_at, lo, hi) where columns col_at + ow, ow in [lo, hi), read
// image element image_at + ow*stride_w and all other columns of that output
// row lie in the padding. image_at may be negative (only [lo, hi) is valid).
template <typename Fn>
void for_each_row_segment(const ConvGeometry& g, int64_t c, Fn fn) {
  for (int64_t ki = 0; ki < g.kernel_h; ++ki) {
    for (int64_t kj = 0; kj < g.kernel_w; ++kj) {
      const int64_t row = (c * g.kernel_h + ki) * g.kernel_w + kj;
      const int64_t col_offset = kj * g.dilation_w - g.pad_w;  // iw = ow*sw + col_offset
      const int64_t lo = std::min(g.out_w, first_index_reaching(0, col_offset, g.stride_w));
      const int64_t hi = std::max(lo, std::min(g.out_w, first_index_reaching(g.width, col_offset, g.stride_w)));
      for (int64_t oh = 0; oh < g.out_h; ++oh) {
        const int64_t ih = oh * g.stride_h - g.pad_h + ki * g.dilation_h;
        const bool inside = ih >= 0 && ih < g.height;
        fn(row * g.out_area() + oh * g.out_w, (c * g.height + ih) * g.width + col_offset, inside ? lo : 0,
           inside ? hi : 0);
      }
    }
  }
}

// Scratch column buffer shared by every conv/deconv of this thread (one
// buffer sized for the largest layer instead of one per layer).
float* column_workspace(int64_t numel) {
  thread_local Tensor workspace;
  if (workspace.numel() < numel) workspace.reshape({numel});
  return workspace.data();
}

// The image viewed as its column buffer: itself when pointwise.
const float* columns_of(const ConvGeometry& g, const float* image) {
  if (g.is_pointwise()) return image;
  float* col = column_workspace(g.column_rows() * g.out_area());
  im2col(g, image, col);
  return col;
}

}  // namespace

bool ConvGeometry::is_pointwise() const {
  return kernel_h == 1 && kernel_w == 1 && stride_h == 1 && stride_w == 1 && pad_h == 0 && pad_w == 0 &&
         out_h == height && out_w == width;
}

void im2col(const ConvGeometry& g, const float* image, float* col) {
#pragma omp parallel for if (g.column_rows() * g.out_area() >= kParallelMinEntries)
  for (int64_t c = 0; c < g.channels; ++c) {
    for_each_row_segment(g, c, [&](int64_t col_at, int64_t image_at, int64_t lo, int64_t hi) {
      float* dst = col + col_at;
      std::fill(dst, dst + lo, 0.f);
      for (int64_t ow = lo; ow < hi; ++ow) dst[ow] = image[image_at + ow * g.stride_w];
      std::fill(dst + hi, dst + g.out_w, 0.f);
    });
  }
}

void col2im_add(const ConvGeometry& g, const float* col, float* image) {
  // parallel over channels: each channel scatters into its own image plane
#pragma omp parallel for if (g.column_rows() * g.out_area() >= kParallelMinEntries)
  for (int64_t c = 0; c < g.channels; ++c) {
    for_each_row_segment(g, c, [&](int64_t col_at, int64_t image_at, int64_t lo, int64_t hi) {
      for (int64_t ow = lo; ow < hi; ++ow) image[image_at + ow * g.stride_w] += col[col_at + ow];
    });
  }
}

namespace {

// Column floats of one chunk of output rows: large column buffers (conv1_1's
// is 52 MB at 500x500) are built a band of output rows at a time.
constexpr int64_t kChunkFloats = int64_t{1} << 21;

// Output rows per chunk; all of them when the columns are small, or when
// the weight is large next to them (each chunk's GEMM repacks the weight:
// fc6's 411 MB weight against its 26 MB of columns).
int64_t chunk_rows(const ConvGeometry& g) {
  const int64_t row_floats = g.column_rows() * g.out_w, total = row_floats * g.out_h;
  const int64_t weight_floats = g.out_channels * g.column_rows() / g.groups;
  if (g.groups != 1 || g.is_pointwise() || total <= kChunkFloats || weight_floats * 4 > total) return g.out_h;
  return std::clamp<int64_t>(kChunkFloats / row_floats, 1, g.out_h);
}

// The geometry of output rows [first, first + rows): the same image, read
// from `first` rows lower (so the top padding may turn negative).
ConvGeometry row_band(const ConvGeometry& g, int64_t first, int64_t rows) {
  ConvGeometry band = g;
  band.out_h = rows;
  band.pad_h = g.pad_h - first * g.stride_h;
  return band;
}

}  // namespace

int64_t conv_scratch_floats(const ConvGeometry& g) {
  const int64_t columns = g.is_pointwise() ? 0 : g.column_rows() * chunk_rows(g) * g.out_w;
  // forward and backward may take different paths (winograd_pays per tile size)
  const bool winograd = winograd_pays(g, winograd_forward_tile()) || winograd_pays(g, winograd_backward_tile());
  return winograd ? std::max(columns, winograd_scratch_floats(g)) : columns;
}

namespace {

// When the columns are too large for one buffer (chunk_rows), calls
// visit(band, first, col) for each band of output rows, `col` a workspace for
// the band's columns, and returns true; otherwise visits nothing.
template <typename Visit>
bool for_each_row_band(const ConvGeometry& g, Visit visit) {
  const int64_t rows = chunk_rows(g);
  if (rows >= g.out_h) return false;
  float* col = column_workspace(g.column_rows() * rows * g.out_w);
  for (int64_t first = 0; first < g.out_h; first += rows)
    visit(row_band(g, first, std::min(rows, g.out_h - first)), first, col);
  return true;
}

// output = W · im2col(image) + beta * output (+ bias), rectified: conv_forward
// without the equal-window pass.
void convolve_forward(const ConvGeometry& g, const float* weight, const float* image, float beta, float* output,
                      const float* bias, bool rectify) {
  if (winograd_pays(g, winograd_forward_tile())) return winograd_forward(g, weight, image, beta, output, bias, rectify);
  const bool banded = for_each_row_band(g, [&](const ConvGeometry& band, int64_t first, float* col) {
    im2col(band, image, col);  // [C*KH*KW, band OH*OW]
    // output[:, band] = W[O, C*KH*KW] · col + beta * output[:, band]  (rows of length OH*OW)
    gemm(false, false, g.out_channels, band.out_area(), g.column_rows(), 1.f, weight, g.column_rows(), col,
         band.out_area(), beta, output + first * g.out_w, g.out_area());
  });
  if (!banded) {
    const float* col = columns_of(g, image);  // [C*KH*KW, OH*OW]
    const int64_t m = g.out_channels / g.groups, n = g.out_area(), k = g.column_rows() / g.groups;
    for (int64_t group = 0; group < g.groups; ++group) {
      // output_g[m, n] = W_g[m, k] · col_g[k, n] + beta * output_g;  m = O/g, n = OH*OW, k = C/g*KH*KW
      gemm(false, false, m, n, k, 1.f, weight + group * m * k, col + group * k * n, beta, output + group * m * n);
    }
  }
  if (bias || rectify) add_channel_bias(g.out_channels, g.out_area(), bias, output, rectify);
}

// Where output[:, p] reads its value from in equalize_equal_windows: itself,
// its left neighbour (p - 1) or its upper one (p - out_w).
enum class Source : uint8_t { own, left, up };

// For every output: whether its window (its im2col column, over all
// channels) equals its left neighbour's, else its upper neighbour's. Two
// windows a stride apart are equal exactly when every image element they
// read equals the one a stride to the left (up), padding zeros included,
// so one pass over the padded image finds them all. (Flags are int32 all
// ones or zero, so that the loops vectorise.)
std::vector<Source> equal_window_sources(const ConvGeometry& g, const float* image) {
  const int64_t rows = g.height + 2 * g.pad_h, cols = g.width + 2 * g.pad_w;  // the padded image
  const int64_t sh = g.stride_h, sw = g.stride_w, x0 = g.pad_w;               // x0: the image's first column
  // same_left[r * cols + i]: padded element (r, i) equals (r, i - sw) in every channel; same_up: (r - sh, i)
  std::vector<int32_t> same_left(rows * cols), same_up(rows * cols);
#pragma omp parallel for schedule(static) if (g.image_numel() >= kParallelMinEntries)
  for (int64_t r = 0; r < rows; ++r) {
    int32_t* left = same_left.data() + r * cols;
    int32_t* up = same_up.data() + r * cols;
    for (int64_t i = 0; i < cols; ++i) left[i] = i >= sw ? -1 : 0;
    std::fill(up, up + cols, r >= sh ? -1 : 0);
    // image rows (-1: padding) of this padded row and of the one a stride up
    const int64_t y = r >= g.pad_h && r < g.pad_h + g.height ? r - g.pad_h : -1;
    const int64_t y_up = r >= sh && r - sh >= g.pad_h && r - sh < g.pad_h + g.height ? r - sh - g.pad_h : -1;
    for (int64_t c = 0; c < g.channels && (y >= 0 || y_up >= 0); ++c) {  // zeros only: all equal
      const float* here = y >= 0 ? image + (c * g.height + y) * g.width : nullptr;
      const float* above = y_up >= 0 ? image + (c * g.height + y_up) * g.width : nullptr;
      int32_t* left_in = left + x0;  // the image's columns
      int32_t* up_in = up + x0;
      if (here) {
        // (r, i) against (r, i - sw): image against image, image against the left padding, the right
        // padding against image
        for (int64_t j = sw; j < g.width; ++j) left_in[j] &= -static_cast<int32_t>(here[j] == here[j - sw]);
        for (int64_t j = 0; j < std::min(sw, g.width); ++j) left_in[j] &= -static_cast<int32_t>(here[j] == 0.f);
        for (int64_t j = std::max(g.width, sw); j < std::min(cols - x0, g.width + sw); ++j)
          left_in[j] &= -static_cast<int32_t>(here[j - sw] == 0.f);
        if (above) {
          for (int64_t j = 0; j < g.width; ++j) up_in[j] &= -static_cast<int32_t>(here[j] == above[j]);
        } else {
          for (int64_t j = 0; j < g.width; ++j) up_in[j] &= -static_cast<int32_t>(here[j] == 0.f);
        }
      } else {
        for (int64_t j = 0; j < g.width; ++j) up_in[j] &= -static_cast<int32_t>(above[j] == 0.f);
      }
    }
  }
  // the same over each window: its kernel columns (every padded row), then its kernel rows
  std::vector<int32_t> row_left(rows * g.out_w), row_up(rows * g.out_w);
#pragma omp parallel for schedule(static) if (rows * g.out_w * g.kernel_w >= kParallelMinEntries)
  for (int64_t r = 0; r < rows; ++r) {
    int32_t* left = row_left.data() + r * g.out_w;
    int32_t* up = row_up.data() + r * g.out_w;
    std::fill(left, left + g.out_w, -1);
    std::fill(up, up + g.out_w, -1);
    for (int64_t kj = 0; kj < g.kernel_w; ++kj) {
      const int32_t* same_l = same_left.data() + r * cols + kj * g.dilation_w;
      const int32_t* same_u = same_up.data() + r * cols + kj * g.dilation_w;
      for (int64_t ow = 0; ow < g.out_w; ++ow) {
        left[ow] &= same_l[ow * sw];
        up[ow] &= same_u[ow * sw];
      }
    }
  }
  std::vector<Source> source(g.out_area());
#pragma omp parallel for schedule(static) if (g.out_area() * g.kernel_h >= kParallelMinEntries)
  for (int64_t oh = 0; oh < g.out_h; ++oh) {
    std::vector<int32_t> left(g.out_w, -1), up(g.out_w, oh > 0 ? -1 : 0);
    left[0] = 0;  // no left neighbour
    for (int64_t ki = 0; ki < g.kernel_h; ++ki) {
      const int64_t r = oh * sh + ki * g.dilation_h;
      for (int64_t ow = 0; ow < g.out_w; ++ow) {
        left[ow] &= row_left[r * g.out_w + ow];
        up[ow] &= row_up[r * g.out_w + ow];
      }
    }
    for (int64_t ow = 0; ow < g.out_w; ++ow)
      source[oh * g.out_w + ow] = left[ow] ? Source::left : up[ow] ? Source::up : Source::own;
  }
  return source;
}

// Makes every output whose window equals its left (else upper) neighbour's
// the same number as that neighbour, bit for bit, in every channel; row-major
// order carries it along runs of equal windows. The arithmetic (OpenBLAS's
// kernels, Winograd's tiles) gives equal windows values that differ in the
// last bits by where they lie; see conv_forward in convolution.hpp for why that
// matters.
void equalize_equal_windows(const ConvGeometry& g, const float* image, float* output) {
  const std::vector<Source> source = equal_window_sources(g, image);
  // each output's root: the first output of its chain of equal windows
  // (itself when its window differs from both neighbours'); the outputs that
  // are not their own root, as runs of consecutive outputs with one root
  struct Run {
    int64_t first, count, root;
  };
  std::vector<Run> runs;
  std::vector<int64_t> root(g.out_area());
  for (int64_t p = 0; p < g.out_area(); ++p) {
    root[p] = source[p] == Source::own ? p : root[source[p] == Source::left ? p - 1 : p - g.out_w];
    if (root[p] == p) continue;
    if (!runs.empty() && runs.back().first + runs.back().count == p && runs.back().root == root[p])
      ++runs.back().count;
    else
      runs.push_back({p, 1, root[p]});
  }
  if (runs.empty()) return;
#pragma omp parallel for schedule(static) if (g.output_numel() >= kParallelMinEntries)
  for (int64_t o = 0; o < g.out_channels; ++o) {
    float* plane = output + o * g.out_area();
    for (const Run& run : runs) std::fill_n(plane + run.first, run.count, plane[run.root]);  // roots stay as they are
  }
}

}  // namespace

void conv_forward(const ConvGeometry& g, const float* weight, const float* image, float beta, float* output,
                  const float* bias, bool rectify) {
  convolve_forward(g, weight, image, beta, output, bias, rectify);
  // a pass that adds to an output (beta != 0) keeps its own sums: only a
  // fresh output's equal windows are known to give equal numbers
  if (beta == 0.f) equalize_equal_windows(g, image, output);
}

void conv_backward_data(const ConvGeometry& g, const float* weight, const float* output_grad, float* image_grad) {
  if (winograd_pays(g, winograd_backward_tile())) return winograd_backward_data(g, weight, output_grad, image_grad);
  const bool banded = for_each_row_band(g, [&](const ConvGeometry& band, int64_t first, float* col) {
    // col = W^T[C*KH*KW, O] · output_grad[:, band]  (rows of length OH*OW)
    gemm(true, false, g.column_rows(), band.out_area(), g.out_channels, 1.f, weight, g.column_rows(),
         output_grad + first * g.out_w, g.out_area(), 0.f, col, band.out_area());
    col2im_add(band, col, image_grad);
  });
  if (banded) return;
  const int64_t m = g.column_rows() / g.groups, n = g.out_area(), k = g.out_channels / g.groups;
  // pointwise: the columns are the image, so accumulate straight into it
  const bool direct = g.is_pointwise();
  float* col = direct ? image_grad : column_workspace(g.column_rows() * n);  // [C*KH*KW, OH*OW]
  for (int64_t group = 0; group < g.groups; ++group) {
    // col_g[m, n] = W_g^T[m, k] · output_grad_g[k, n];  m = C/g*KH*KW, n = OH*OW, k = O/g
    gemm(true, false, m, n, k, 1.f, weight + group * k * m, output_grad + group * k * n, direct ? 1.f : 0.f,
         col + group * m * n);
  }
  if (!direct) col2im_add(g, col, image_grad);
}

void conv_backward_weight(const ConvGeometry& g, const float* image, const float* output_grad, float* weight_grad) {
  if (winograd_pays(g, winograd_backward_tile())) return winograd_backward_weight(g, image, output_grad, weight_grad);
  const bool banded = for_each_row_band(g, [&](const ConvGeometry& band, int64_t first, float* col) {
    im2col(band, image, col);
    // weight_grad[O, C*KH*KW] += output_grad[:, band] · col^T
    gemm(false, true, g.out_channels, g.column_rows(), band.out_area(), 1.f, output_grad + first * g.out_w,
         g.out_area(), col, band.out_area(), 1.f, weight_grad, g.column_rows());
  });
  if (banded) return;
  const float* col = columns_of(g, image);  // [C*KH*KW, OH*OW]
  const int64_t m = g.out_channels / g.groups, n = g.column_rows() / g.groups, k = g.out_area();
  for (int64_t group = 0; group < g.groups; ++group) {
    // weight_grad_g[m, n] += output_grad_g[m, k] · col_g^T[k, n];  m = O/g, n = C/g*KH*KW, k = OH*OW
    gemm(false, true, m, n, k, 1.f, output_grad + group * m * k, col + group * n * k, 1.f, weight_grad + group * m * n);
  }
}

namespace {

// The one-channel geometry of channel c of a depthwise convolution.
ConvGeometry one_channel(const ConvGeometry& g) {
  ConvGeometry one = g;
  one.channels = one.out_channels = one.groups = 1;
  return one;
}

}  // namespace

void depthwise_forward(const ConvGeometry& g, const float* weight, const float* image, float beta, float* output) {
  const ConvGeometry one = one_channel(g);
  const int64_t kernel = g.kernel_h * g.kernel_w, in_plane = g.height * g.width, out_plane = g.out_area();
  const SerialBlasScope serial_blas;  // each channel's GEMM runs on its own thread
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t c = 0; c < g.channels; ++c)
    conv_forward(one, weight + c * kernel, image + c * in_plane, beta, output + c * out_plane);
}

void depthwise_backward_data(const ConvGeometry& g, const float* weight, const float* output_grad,
                             float* image_grad) {
  const ConvGeometry one = one_channel(g);
  const int64_t kernel = g.kernel_h * g.kernel_w, in_plane = g.height * g.width, out_plane = g.out_area();
  const SerialBlasScope serial_blas;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t c = 0; c < g.channels; ++c)
    conv_backward_data(one, weight + c * kernel, output_grad + c * out_plane, image_grad + c * in_plane);
}

void add_channel_bias(int64_t channels, int64_t area, const float* bias, float* out, bool rectify) {
#pragma omp parallel for schedule(static) if (channels * area >= kParallelMinEntries)
  for (int64_t c = 0; c < channels; ++c) {
    float* plane = out + c * area;
    const float b = bias ? bias[c] : 0.f;
    // (x < 0 ? 0 : x) lets a NaN through; the ReLU layer's max(x, 0) does too
    for (int64_t i = 0; i < area; ++i) {
      const float x = bias ? plane[i] + b : plane[i];
      plane[i] = rectify && x < 0.f ? 0.f : x;
    }
  }
}

void add_channel_sums(int64_t channels, int64_t area, const float* grad, float* bias_grad) {
#pragma omp parallel for schedule(static) if (channels * area >= kParallelMinEntries)
  for (int64_t c = 0; c < channels; ++c) {
    const float* plane = grad + c * area;
    double sum = 0;  // double: planes hold up to ~10^6 terms
    for (int64_t i = 0; i < area; ++i) sum += plane[i];
    bias_grad[c] += static_cast<float>(sum);
  }
}

}  // namespace fcn::cpu
