#include "fcn/cpu/convolution.hpp"

#include <omp.h>

#include <algorithm>
#include <array>
#include <type_traits>
#include <vector>

#include "fcn/cpu/bf16_gemm.hpp"
#include "fcn/cpu/elementwise.hpp"
#include "fcn/cpu/gemm.hpp"
#include "fcn/cpu/phase_grid.hpp"
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

// col_t is read in its own order, a pixel's row after the other: in
// col2im_add's order each column entry sat a row of col_t (fc6: 100 KB)
// from the one before, and fc6's 25 MB of col_t cost 12 ms of CPU a bf16
// step in cache misses. Each thread owns a range of channels, so each image
// element adds its terms in one order (pixels, then ki, kj) on any team.
void col2im_add_transposed(const ConvGeometry& g, const float* col_t, float* image) {
  const int64_t rows = g.column_rows();
#pragma omp parallel if (rows * g.out_area() >= kParallelMinEntries)
  {
    const int64_t threads = omp_get_num_threads(), thread = omp_get_thread_num();
    const int64_t first = g.channels * thread / threads, last = g.channels * (thread + 1) / threads;
    for (int64_t oh = 0; oh < g.out_h; ++oh)
      for (int64_t ow = 0; ow < g.out_w; ++ow) {
        const float* from = col_t + (oh * g.out_w + ow) * rows;
        // iw = ow*sw - pw + kj*dw inside the image for kj in [kj_lo, kj_hi)
        const int64_t col_offset = ow * g.stride_w - g.pad_w;
        const int64_t kj_lo = std::min(g.kernel_w, first_index_reaching(0, col_offset, g.dilation_w));
        const int64_t kj_hi = std::max(kj_lo, std::min(g.kernel_w, first_index_reaching(g.width, col_offset, g.dilation_w)));
        for (int64_t c = first; c < last; ++c)
          for (int64_t ki = 0; ki < g.kernel_h; ++ki) {
            const int64_t ih = oh * g.stride_h - g.pad_h + ki * g.dilation_h;
            if (ih < 0 || ih >= g.height) continue;
            const float* terms = from + (c * g.kernel_h + ki) * g.kernel_w;
            float* image_row = image + (c * g.height + ih) * g.width + col_offset;
            for (int64_t kj = kj_lo; kj < kj_hi; ++kj) image_row[kj * g.dilation_w] += terms[kj];
          }
      }
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
  const int64_t weight_floats = g.weight_numel();
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

namespace {

// An undilated conv's batch goes into one grid only when each image gives
// Winograd fewer tiles than this: there the per-image calls pay a weight
// transform each and run GEMMs over few tiles (ResNet's 10x10 to 40x40
// maps); larger maps fill their blocks alone and would only pay the copies.
constexpr int64_t kBatchGridMaxTiles = 1024;

}  // namespace

bool batch_on_grid(const ConvGeometry& g, int64_t batch, int tile) {
  if (batch < 2 || tile == 0) return false;
  const int64_t tiles = ((g.out_h + tile - 1) / tile) * ((g.out_w + tile - 1) / tile);
  const bool dilated = g.dilation_h > 1 || g.dilation_w > 1;
  if (!dilated && tiles >= kBatchGridMaxTiles) return false;
  return phase_grid_pays(g, tile, batch);
}

namespace {

// Whether a pass over `batch` images with this Winograd tile runs im2col +
// GEMM: neither Winograd nor the phase grid (of one image or of the batch) pays.
bool takes_im2col(const ConvGeometry& g, int64_t batch, int tile) {
  return !winograd_pays(g, tile) && !phase_grid_pays(g, tile) && !batch_on_grid(g, batch, tile);
}

}  // namespace

int forward_tile(const ConvGeometry& g, int64_t batch) {
  const int preferred = winograd_forward_tile(g), configured = winograd_forward_tile();
  if (preferred == configured) return configured;
  return takes_im2col(g, batch, preferred) ? configured : preferred;
}

int64_t conv_scratch_floats(const ConvGeometry& g, int64_t batch) {
  // with a constant frame (conv_forward) the im2col path also keeps the band's outputs, and pointwise its columns
  const int64_t columns = (g.column_rows() + g.out_channels) * chunk_rows(g) * g.out_w;
  // forward and backward may take different paths (winograd_pays per tile size)
  const std::array<int, 2> tiles = {forward_tile(g, batch), winograd_backward_tile()};
  const bool winograd = std::any_of(tiles.begin(), tiles.end(), [&](int tile) { return winograd_pays(g, tile); });
  int64_t floats = winograd ? std::max(columns, winograd_scratch_floats(g)) : columns;
  // a dilated conv's passes may go through its phase grid (phase_grid.hpp)
  const bool grid = std::any_of(tiles.begin(), tiles.end(), [&](int tile) { return phase_grid_pays(g, tile); });
  if (grid) floats = std::max(floats, phase_grid_scratch_floats(g));
  for (int tile : tiles)
    if (batch_on_grid(g, batch, tile)) floats = std::max(floats, phase_grid_scratch_floats(g, batch));
  if (g.precision != Precision::bf16) return floats;
  // bf16 also keeps rounded copies (2 bytes an element, so half a float each): the weight
  // (RoundedOperand) or Winograd's (m + 2)^2 transformed taps of it, and a GEMM's B operand (the columns)
  int64_t weight = g.weight_numel();
  for (int tile : tiles)
    if (winograd_pays(g, tile) || phase_grid_pays(g, tile)) weight = std::max<int64_t>(weight, (tile + 2) * (tile + 2) * g.out_channels * g.channels);
  return floats + (weight + columns + 1) / 2;
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
  const int tile = forward_tile(g);
  if (winograd_pays(g, tile)) return winograd_forward(g, weight, image, beta, output, bias, rectify, tile);
  if (phase_grid_pays(g, tile)) return phase_grid_forward(g, 1, weight, image, beta, output, bias, rectify, tile);
  const bool banded = for_each_row_band(g, [&](const ConvGeometry& band, int64_t first, float* col) {
    im2col(band, image, col);  // [C*KH*KW, band OH*OW]
    // output[:, band] = W[O, C*KH*KW] · col + beta * output[:, band]  (rows of length OH*OW)
    gemm(g.precision, false, false, g.out_channels, band.out_area(), g.column_rows(), 1.f, weight, g.column_rows(), col,
         band.out_area(), beta, output + first * g.out_w, g.out_area());
  });
  if (!banded) {
    const float* col = columns_of(g, image);  // [C*KH*KW, OH*OW]
    const int64_t m = g.out_channels / g.groups, n = g.out_area(), k = g.column_rows() / g.groups;
    for (int64_t group = 0; group < g.groups; ++group) {
      // output_g[m, n] = W_g[m, k] · col_g[k, n] + beta * output_g;  m = O/g, n = OH*OW, k = C/g*KH*KW
      gemm(g.precision, false, false, m, n, k, 1.f, weight + group * m * k, col + group * k * n, beta, output + group * m * n);
    }
  }
  if (bias || rectify) add_channel_bias(g.out_channels, g.out_area(), bias, output, rectify);
}

// Where output[:, p] reads its value from in equalize_equal_windows: itself,
// its left neighbour (p - 1) or its upper one (p - out_w).
enum class Source : uint8_t { own, left, up };

using Runs = std::vector<std::pair<int64_t, int64_t>>;

// Appends the runs [lo, hi) of the j in [from, to) with compared(j), in order.
template <class Compared>
void append_runs_where(int64_t from, int64_t to, Compared compared, Runs& runs) {
  bool open = false;  // the last run ends at j
  for (int64_t j = from; j < to; ++j) {
    if (!compared(j)) {
      open = false;
      continue;
    }
    if (open)
      ++runs.back().second;
    else
      runs.push_back({j, j + 1});
    open = true;
  }
}

template <class Compared>
Runs runs_where(int64_t from, int64_t to, Compared compared) {
  Runs runs;
  append_runs_where(from, to, compared, runs);
  return runs;
}

// What an element of the padded input holds in every channel as far as is
// known without reading it: the zero padding, its channel's frame value
// (input_frame), or unknown (read it).
enum class Held : uint8_t { padding, frame, unknown };

// Whether two elements that are both known (not Held::unknown) are equal in
// every channel: padding and padding always; the frame and itself unless a
// frame value is NaN; the frame and the padding when every frame value is 0.
struct KnownEquality {
  bool frame_self = true, frame_zero = false;
  KnownEquality(const ConvGeometry& g, const float* image, const ConstantFrame* input_frame) {
    if (!input_frame || input_frame->empty()) return;
    const auto [y, x] = input_frame->first_pixel();
    frame_zero = true;
    for (int64_t c = 0; c < g.channels; ++c) {
      const float v = image[(c * g.height + y) * g.width + x];
      frame_self = frame_self && v == v;
      frame_zero = frame_zero && v == 0.f;
    }
  }
  bool operator()(Held a, Held b) const {
    if (a == b) return a == Held::padding || frame_self;
    return frame_zero;
  }
};

// The equal-window pass's per-output and per-element buffers, kept by each
// thread for its next call: allocated afresh (~13 MB for a 698x698 layer),
// their page faults and zero fills cost more than the pass itself (conv1_1's
// training forward 38 ms against 12 without the pass, in isolation). Every
// buffer but meets_frame is written whole before it is read.
struct EqualWindowScratch {
  std::vector<int32_t> same_left, same_up, row_left, row_up;
  std::vector<Source> source;
  std::vector<int64_t> root;
  std::vector<char> meets_frame;
};

EqualWindowScratch& equal_window_scratch() {
  thread_local EqualWindowScratch scratch;
  return scratch;
}

// v with at least n elements (it never shrinks, so a smaller layer keeps the storage).
template <class T>
T* at_least(std::vector<T>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(n);
  return v.data();
}

// For every output: whether its window (its im2col column, over all
// channels) equals its left neighbour's, else its upper neighbour's. Two
// windows a stride apart are equal exactly when every image element they
// read equals the one a stride to the left (up), padding zeros included,
// so one pass over the padded image finds them all. (Flags are int32 all
// ones or zero, so that the loops vectorise.) A pair of elements that both
// lie in `input_frame` (one value per channel, by the frame's construction)
// or the padding is decided once, from the frame's values, without reading
// the rows: in FCN's padded layers the frame is half of the image, and its
// flags, read and set in every channel, kept every row from stopping early
// (2.6% of a bf16 VGG16 step went here).
// Returns source[p] for the g.out_area() outputs, in the thread's scratch.
const Source* equal_window_sources(const ConvGeometry& g, const float* image, const ConstantFrame* input_frame) {
  const int64_t rows = g.height + 2 * g.pad_h, cols = g.width + 2 * g.pad_w;  // the padded image
  const int64_t sh = g.stride_h, sw = g.stride_w, x0 = g.pad_w;               // x0: the image's first column
  const KnownEquality known_equal(g, image, input_frame);
  const auto held = [&](int64_t y, int64_t x) {  // image coordinates
    if (y < 0 || y >= g.height || x < 0 || x >= g.width) return Held::padding;
    return input_frame && input_frame->contains(y, x) ? Held::frame : Held::unknown;
  };
  // same_left[r * cols + i]: padded element (r, i) equals (r, i - sw) in every channel; same_up: (r - sh, i)
  EqualWindowScratch& scratch = equal_window_scratch();
  int32_t* const same_left = at_least(scratch.same_left, rows * cols);
  int32_t* const same_up = at_least(scratch.same_up, rows * cols);
#pragma omp parallel for schedule(static) if (g.image_numel() >= kParallelMinEntries)
  for (int64_t r = 0; r < rows; ++r) {
    int32_t* left = same_left + r * cols;
    int32_t* up = same_up + r * cols;
    for (int64_t i = 0; i < cols; ++i) left[i] = i >= sw ? -1 : 0;
    std::fill(up, up + cols, r >= sh ? -1 : 0);
    // image rows (-1: padding) of this padded row and of the one a stride up
    const int64_t y = r >= g.pad_h && r < g.pad_h + g.height ? r - g.pad_h : -1;
    const int64_t y_up = r >= sh && r - sh >= g.pad_h && r - sh < g.pad_h + g.height ? r - sh - g.pad_h : -1;
    if (y < 0 && y_up < 0) continue;  // zeros only: all equal
    int32_t* left_in = left + x0;  // the image's columns, and the right padding's first sw
    int32_t* up_in = up + x0;
    // the pairs a channel can tell apart: (y, j) against (y, j - sw) where y is an image row
    // (against the left padding below sw, the right padding against the image from the image's
    // width), and (y, j) against (y_up, j); those of two known elements are decided here
    const int64_t right_end = std::min(cols - x0, g.width + sw);
    // whether pair j must be read; a pair of two known elements sets its flag here instead
    const auto must_read = [&](int32_t& flag, Held a, Held b) {
      if (a == Held::unknown || b == Held::unknown) return true;
      flag &= known_equal(a, b) ? -1 : 0;
      return false;
    };
    const auto read_left = [&](int64_t j) { return must_read(left_in[j], held(y, j), held(y, j - sw)); };
    const auto read_up = [&](int64_t j) { return must_read(up_in[j], held(y, j), held(y_up, j)); };
    Runs left_image = y >= 0 ? runs_where(sw, g.width, read_left) : Runs{};
    Runs left_padding = y >= 0 ? runs_where(0, std::min(sw, g.width), read_left) : Runs{};
    Runs right_padding = y >= 0 ? runs_where(std::max(g.width, sw), right_end, read_left) : Runs{};
    Runs up_runs = runs_where(0, g.width, read_up);
    // a clear flag stays clear: every 16 channels the runs shrink to the flags still set (ResNet's
    // inputs clear nearly all within a few channels; an FCN's have some equal pairs in every row,
    // at the frame's edges and in flat regions of the image)
    Runs kept;  // reused: its storage goes back and forth with the runs'
    const auto still_set = [&kept](Runs& runs, const int32_t* flags) {
      kept.clear();
      for (const auto& [lo, hi] : runs) append_runs_where(lo, hi, [&](int64_t j) { return flags[j] != 0; }, kept);
      runs.swap(kept);
      return !runs.empty();
    };
    const auto any_set = [&] {
      bool any = false;
      for (Runs* runs : {&left_image, &left_padding, &right_padding}) any = still_set(*runs, left_in) || any;
      return still_set(up_runs, up_in) || any;
    };
    for (int64_t c = 0; c < g.channels; ++c) {
      if (c % 16 == 0 && !any_set()) break;
      const float* here = y >= 0 ? image + (c * g.height + y) * g.width : nullptr;
      const float* above = y_up >= 0 ? image + (c * g.height + y_up) * g.width : nullptr;
      for (const auto& [lo, hi] : left_image)
        for (int64_t j = lo; j < hi; ++j) left_in[j] &= -static_cast<int32_t>(here[j] == here[j - sw]);
      for (const auto& [lo, hi] : left_padding)
        for (int64_t j = lo; j < hi; ++j) left_in[j] &= -static_cast<int32_t>(here[j] == 0.f);
      for (const auto& [lo, hi] : right_padding)
        for (int64_t j = lo; j < hi; ++j) left_in[j] &= -static_cast<int32_t>(here[j - sw] == 0.f);
      for (const auto& [lo, hi] : up_runs) {
        if (here && above) {
          for (int64_t j = lo; j < hi; ++j) up_in[j] &= -static_cast<int32_t>(here[j] == above[j]);
        } else if (here) {
          for (int64_t j = lo; j < hi; ++j) up_in[j] &= -static_cast<int32_t>(here[j] == 0.f);
        } else {
          for (int64_t j = lo; j < hi; ++j) up_in[j] &= -static_cast<int32_t>(above[j] == 0.f);
        }
      }
    }
  }
  // the same over each window: its kernel columns (every padded row), then its kernel rows
  int32_t* const row_left = at_least(scratch.row_left, rows * g.out_w);
  int32_t* const row_up = at_least(scratch.row_up, rows * g.out_w);
#pragma omp parallel for schedule(static) if (rows * g.out_w * g.kernel_w >= kParallelMinEntries)
  for (int64_t r = 0; r < rows; ++r) {
    int32_t* left = row_left + r * g.out_w;
    int32_t* up = row_up + r * g.out_w;
    std::fill(left, left + g.out_w, -1);
    std::fill(up, up + g.out_w, -1);
    for (int64_t kj = 0; kj < g.kernel_w; ++kj) {
      const int32_t* same_l = same_left + r * cols + kj * g.dilation_w;
      const int32_t* same_u = same_up + r * cols + kj * g.dilation_w;
      for (int64_t ow = 0; ow < g.out_w; ++ow) {
        left[ow] &= same_l[ow * sw];
        up[ow] &= same_u[ow * sw];
      }
    }
  }
  Source* const source = at_least(scratch.source, g.out_area());
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
// With `frame` (its outputs hold the frame's value already), a chain of
// equal windows that meets the frame takes the frame's value, root
// included: a window outside the frame can equal the frame's by value (the
// max of the frame value and a smaller neighbour is the frame value).
void equalize_equal_windows(const ConvGeometry& g, const float* image, float* output,
                            const ConstantFrame* frame = nullptr, const ConstantFrame* input_frame = nullptr) {
  const Source* source = equal_window_sources(g, image, input_frame);
  EqualWindowScratch& scratch = equal_window_scratch();
  // each output's root: the first output of its chain of equal windows
  // (itself when its window differs from both neighbours'); the outputs that
  // are not their own root, as runs of consecutive outputs with one root
  struct Run {
    int64_t first, count, root;
  };
  std::vector<Run> runs;
  int64_t* const root = at_least(scratch.root, g.out_area());
  for (int64_t p = 0; p < g.out_area(); ++p)
    root[p] = source[p] == Source::own ? p : root[source[p] == Source::left ? p - 1 : p - g.out_w];
  // Calls fn(p, whether output p lies in `frame`) for every output in order
  // (by rows and columns: a division per output kept these loops ~4 ms of
  // conv1_2's forward on one thread while the other waited).
  const auto for_each_output = [&](auto fn) {
    for (int64_t oy = 0; oy < g.out_h; ++oy)
      for (int64_t ox = 0; ox < g.out_w; ++ox) fn(oy * g.out_w + ox, frame && frame->contains(oy, ox));
  };
  if (frame && !frame->empty()) {
    const auto [y, x] = frame->first_pixel();
    char* const meets_frame = at_least(scratch.meets_frame, g.out_area());  // by root
    std::fill_n(meets_frame, g.out_area(), 0);
    for_each_output([&](int64_t p, bool in_frame) {
      if (in_frame) meets_frame[root[p]] = 1;
    });
    // a root precedes its chain, so root[p] is still the original root here
    for (int64_t p = 0; p < g.out_area(); ++p)
      if (meets_frame[root[p]]) root[p] = y * g.out_w + x;
  }
  for_each_output([&](int64_t p, bool in_frame) {
    if (root[p] == p || in_frame) return;
    if (!runs.empty() && runs.back().first + runs.back().count == p && runs.back().root == root[p])
      ++runs.back().count;
    else
      runs.push_back({p, 1, root[p]});
  });
  if (runs.empty()) return;
#pragma omp parallel for schedule(static) if (g.output_numel() >= kParallelMinEntries)
  for (int64_t o = 0; o < g.out_channels; ++o) {
    float* plane = output + o * g.out_area();
    for (const Run& run : runs) std::fill_n(plane + run.first, run.count, plane[run.root]);  // roots are not in runs
  }
}

// A conv's output frame and what its windows read there.
struct OutputFrame {
  ConstantFrame frame;
  bool reads_input = false;  // the input's frame; else the zero padding only
};

WindowAxis window_axis(int64_t kernel, int64_t dilation, int64_t stride, int64_t pad, int64_t out) {
  return {dilation * (kernel - 1) + 1, stride, pad, out};
}

OutputFrame output_frame_of(const ConvGeometry& g, const ConstantFrame& input) {
  const WindowAxis h = window_axis(g.kernel_h, g.dilation_h, g.stride_h, g.pad_h, g.out_h);
  const WindowAxis w = window_axis(g.kernel_w, g.dilation_w, g.stride_w, g.pad_w, g.out_w);
  // the zero padding: the padded plane minus the image
  const ConstantFrame padding{{-g.pad_h, -g.pad_w, g.height + g.pad_h, g.width + g.pad_w}, {0, 0, g.height, g.width}};
  OutputFrame from_padding{windows_inside(padding, h, w), false};
  OutputFrame from_input{windows_inside(input, h, w), true};
  return from_input.frame.count() > from_padding.frame.count() ? from_input : from_padding;
}

// y[o] = bias[o] + sum_c v_c * sum_taps W[o, c, :, :] over o's group (v_c:
// the input frame's value in channel c; 0 in the padding), in double, then
// rounded and rectified as the output pass does.
std::vector<float> frame_values(const ConvGeometry& g, const OutputFrame& frame, const ConstantFrame& input,
                                const float* weight, const float* image, const float* bias, bool rectify) {
  const int64_t taps = g.kernel_h * g.kernel_w, group_in = g.channels / g.groups;
  const int64_t group_out = g.out_channels / g.groups;
  const auto [y, x] = input.first_pixel();
  std::vector<float> values(g.out_channels);
  // O x C/g x taps terms (2.4 M in VGG16's 512-channel layers): on the team
#pragma omp parallel for schedule(static) if (frame.reads_input && g.weight_numel() >= kParallelMinEntries)
  for (int64_t o = 0; o < g.out_channels; ++o) {
    double sum = bias ? bias[o] : 0.0;
    for (int64_t c = 0; frame.reads_input && c < group_in; ++c) {
      const float* w = weight + (o * group_in + c) * taps;
      double taps_sum = 0;
      for (int64_t t = 0; t < taps; ++t) taps_sum += w[t];
      const int64_t channel = o / group_out * group_in + c;
      sum += static_cast<double>(image[(channel * g.height + y) * g.width + x]) * taps_sum;
    }
    const float value = static_cast<float>(sum);
    values[o] = rectify && value < 0.f ? 0.f : value;  // NaN passes, as in add_channel_bias
  }
  return values;
}

void fill_frame(const ConvGeometry& g, const ConstantFrame& frame, const std::vector<float>& values, float* output) {
  const FrameRect& outer = frame.outer;
  const FrameRect& inner = frame.inner;
#pragma omp parallel for schedule(static) if (g.output_numel() >= kParallelMinEntries)
  for (int64_t o = 0; o < g.out_channels; ++o) {
    for (int64_t y = outer.top; y < outer.bottom; ++y) {
      float* row = output + o * g.out_area() + y * g.out_w;
      if (y < inner.top || y >= inner.bottom || inner.empty()) {
        std::fill(row + outer.left, row + outer.right, values[o]);
        continue;
      }
      std::fill(row + outer.left, row + std::clamp(inner.left, outer.left, outer.right), values[o]);
      std::fill(row + std::clamp(inner.right, outer.left, outer.right), row + outer.right, values[o]);
    }
  }
}

// Output pixels (row, lo..hi-1).
struct Segment {
  int64_t row, lo, hi;
};

// The outputs outside `frame`, row by row.
std::vector<Segment> segments_outside(const ConstantFrame& frame, int64_t out_h, int64_t out_w) {
  std::vector<Segment> segments;
  auto add = [&](int64_t row, int64_t lo, int64_t hi) {
    lo = std::clamp<int64_t>(lo, 0, out_w);
    hi = std::clamp<int64_t>(hi, lo, out_w);
    if (lo == hi) return;
    if (!segments.empty() && segments.back().row == row && segments.back().hi == lo)
      segments.back().hi = hi;
    else
      segments.push_back({row, lo, hi});
  };
  const FrameRect& outer = frame.outer;
  const FrameRect& inner = frame.inner;
  for (int64_t row = 0; row < out_h; ++row) {
    if (row < outer.top || row >= outer.bottom) {
      add(row, 0, out_w);
      continue;
    }
    add(row, 0, outer.left);
    if (!inner.empty() && row >= inner.top && row < inner.bottom)
      add(row, std::max(inner.left, outer.left), std::min(inner.right, outer.right));
    add(row, outer.right, out_w);
  }
  return segments;
}

// dst[i] = src[i * stride] for i < count; rounded to bf16 when T is
// uint16_t: the framed im2col passes of a bf16 conv round their GEMM
// operands as they gather them, where a separate pass over the gathered
// floats would read them once more (conv1_1's weight gradient gathers 64 x
// ~250,000 output gradients).
template <class T>
void store_strided(const float* src, int64_t stride, int64_t count, T* dst) {
  if constexpr (std::is_same_v<T, float>) {
    if (stride == 1) {
      std::copy(src, src + count, dst);
      return;
    }
    for (int64_t i = 0; i < count; ++i) dst[i] = src[i * stride];
  } else if (stride == 1) {
    round_to_bf16(src, dst, count);
  } else {
    for (int64_t i = 0; i < count; ++i) round_to_bf16(src + i * stride, dst + i, 1);
  }
}

// im2col of the outputs of `segments` only, side by side:
// col [C*KH*KW, n], n their pixel count (T: float, or uint16_t for bf16).
template <class T>
void im2col_segments(const ConvGeometry& g, const float* image, const std::vector<Segment>& segments,
                     size_t first, size_t last, int64_t n, T* col) {
#pragma omp parallel for if (g.column_rows() * n >= kParallelMinEntries)
  for (int64_t c = 0; c < g.channels; ++c) {
    for (int64_t ki = 0; ki < g.kernel_h; ++ki) {
      for (int64_t kj = 0; kj < g.kernel_w; ++kj) {
        T* dst = col + ((c * g.kernel_h + ki) * g.kernel_w + kj) * n;
        const int64_t col_offset = kj * g.dilation_w - g.pad_w;  // iw = ow*sw + col_offset
        const int64_t valid_lo = first_index_reaching(0, col_offset, g.stride_w);
        const int64_t valid_hi = first_index_reaching(g.width, col_offset, g.stride_w);
        for (size_t s = first; s < last; ++s) {
          const Segment& seg = segments[s];
          const int64_t ih = seg.row * g.stride_h - g.pad_h + ki * g.dilation_h;
          const bool inside = ih >= 0 && ih < g.height;
          const int64_t a = inside ? std::clamp(valid_lo, seg.lo, seg.hi) : seg.hi;
          const int64_t b = inside ? std::clamp(valid_hi, a, seg.hi) : seg.hi;
          const float* src = image + (c * g.height + ih) * g.width + col_offset;
          std::fill(dst, dst + (a - seg.lo), T(0));  // bf16's zero is all zero bits too
          store_strided(src + a * g.stride_w, g.stride_w, b - a, dst + (a - seg.lo));
          std::fill(dst + (b - seg.lo), dst + (seg.hi - seg.lo), T(0));
          dst += seg.hi - seg.lo;
        }
      }
    }
  }
}

// The outputs of `segments` [first, last) from a compact [O, n] into the output planes.
void scatter_segments(const ConvGeometry& g, const std::vector<Segment>& segments, size_t first, size_t last,
                      int64_t n, const float* compact, float* output) {
#pragma omp parallel for schedule(static) if (g.out_channels * n >= kParallelMinEntries)
  for (int64_t o = 0; o < g.out_channels; ++o) {
    const float* src = compact + o * n;
    for (size_t s = first; s < last; ++s) {
      const Segment& seg = segments[s];
      std::copy(src, src + (seg.hi - seg.lo), output + o * g.out_area() + seg.row * g.out_w + seg.lo);
      src += seg.hi - seg.lo;
    }
  }
}

// A second scratch buffer, for a GEMM's compact output.
float* output_workspace(int64_t numel) {
  thread_local Tensor workspace;
  if (workspace.numel() < numel) workspace.reshape({numel});
  return workspace.data();
}

// Outputs per band of the im2col path with a frame: as many as chunk_rows's rows.
int64_t frame_band_pixels(const ConvGeometry& g) { return chunk_rows(g) * g.out_w; }

// Calls visit(first, last, n) for bands of whole segments of at most
// `band` outputs (at least one segment each), n the band's outputs.
template <typename Visit>
void for_each_segment_band(const std::vector<Segment>& segments, int64_t band, Visit visit) {
  for (size_t first = 0; first < segments.size();) {
    size_t last = first;
    int64_t n = 0;
    for (; last < segments.size(); ++last) {
      const int64_t length = segments[last].hi - segments[last].lo;
      if (last > first && n + length > band) break;
      n += length;
    }
    visit(first, last, n);
    first = last;
  }
}

// conv_forward (beta 0) of the outputs outside `frame`: Winograd's tiles
// that meet them, or im2col + GEMM of just those outputs, a band at a time.
// Outputs in the frame are left for fill_frame (Winograd's partial tiles write some).
void forward_outside_frame(const ConvGeometry& g, const float* weight, const float* image, const float* bias,
                           bool rectify, const ConstantFrame& frame, float* output) {
  const int tile = forward_tile(g);
  if (winograd_pays(g, tile)) return winograd_forward(g, weight, image, 0.f, output, bias, rectify, tile, &frame);
  const std::vector<Segment> segments = segments_outside(frame, g.out_h, g.out_w);
  const int64_t band = frame_band_pixels(g);
  const int64_t m = g.out_channels / g.groups, k = g.column_rows() / g.groups;
  for_each_segment_band(segments, band, [&](size_t first, size_t last, int64_t n) {
    float* col = column_workspace(g.column_rows() * n);
    float* compact = output_workspace(g.out_channels * n);
    im2col_segments(g, image, segments, first, last, n, col);
    for (int64_t group = 0; group < g.groups; ++group) {
      // compact_g[m, n] = W_g[m, k] · col_g[k, n];  m = O/g, k = C/g*KH*KW
      gemm(g.precision, false, false, m, n, k, 1.f, weight + group * m * k, col + group * k * n, 0.f, compact + group * m * n);
    }
    if (bias || rectify) add_channel_bias(g.out_channels, n, bias, compact, rectify);
    scatter_segments(g, segments, first, last, n, compact, output);
  });
}

// The outputs of `segments` [first, last) gathered from the output planes
// into a compact [O, n] (the adjoint of scatter_segments; T as im2col_segments's).
template <class T>
void gather_segments(const ConvGeometry& g, const std::vector<Segment>& segments, size_t first, size_t last,
                     int64_t n, const float* output, T* compact) {
#pragma omp parallel for schedule(static) if (g.out_channels * n >= kParallelMinEntries)
  for (int64_t o = 0; o < g.out_channels; ++o) {
    T* dst = compact + o * n;
    for (size_t s = first; s < last; ++s) {
      const Segment& seg = segments[s];
      const float* src = output + o * g.out_area() + seg.row * g.out_w;
      store_strided(src + seg.lo, 1, seg.hi - seg.lo, dst);
      dst += seg.hi - seg.lo;
    }
  }
}

// A float workspace viewed as bf16 words (a bf16 operand needs half its floats).
uint16_t* as_bf16(float* workspace) { return static_cast<uint16_t*>(static_cast<void*>(workspace)); }

// The sum of a plane's values in double: planes hold up to ~10^6 terms;
// summed a vector at a time (the one-term-at-a-time loop, bound by the
// latency of its adds, was ~3% of a VGG16 train step).
double plane_sum(const float* plane, int64_t area) {
  double sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < area; ++i) sum += plane[i];
  return sum;
}

// The sum of a plane's values over the frame's pixels, in double (up to
// ~10^6 terms): each row's runs left and right of the inner rectangle, or
// the whole row outside its rows, summed a vector at a time (a test of every
// pixel against the inner rectangle kept this loop scalar: ~3.6% of a VGG16
// train step).
double frame_sum(const ConstantFrame& pixels, const float* plane, int64_t width) {
  const FrameRect& o = pixels.outer;
  const FrameRect& i = pixels.inner;
  double sum = 0;
  auto add_run = [&](const float* row, int64_t from, int64_t to) {
#pragma omp simd reduction(+ : sum)
    for (int64_t q = from; q < to; ++q) sum += row[q];
  };
  for (int64_t r = o.top; r < o.bottom; ++r) {
    const float* row = plane + r * width;
    if (i.empty() || r < i.top || r >= i.bottom) {
      add_run(row, o.left, o.right);
    } else {
      add_run(row, o.left, std::min(o.right, std::max(o.left, i.left)));
      add_run(row, std::max(o.left, std::min(o.right, i.right)), o.right);
    }
  }
  return sum;
}

// weight_grad[o, c, :, :] += v_c * sum_{p in pixels} output_grad[o, p]: the
// frame outputs' part, whose windows read v_c at every tap (c in o's group).
// With bias_grad, also bias_grad[o] += the sum of all of plane o (as
// add_channel_sums), just before the frame's sum reads part of the plane
// again, from cache rather than memory (the two passes over all planes
// each read conv1_2's 125 MB of output gradients).
void add_frame_weight_grad(const ConvGeometry& g, const ConstantFrame& pixels, const ConstantFrame& input,
                           const float* image, const float* output_grad, float* weight_grad, float* bias_grad) {
  const int64_t taps = g.kernel_h * g.kernel_w, group_in = g.channels / g.groups;
  const int64_t group_out = g.out_channels / g.groups;
  const auto [y, x] = input.first_pixel();
#pragma omp parallel for schedule(static) if (g.out_channels * pixels.count() >= kParallelMinEntries)
  for (int64_t o = 0; o < g.out_channels; ++o) {
    const float* plane = output_grad + o * g.out_area();
    if (bias_grad) bias_grad[o] += static_cast<float>(plane_sum(plane, g.out_area()));
    const double sum = frame_sum(pixels, plane, g.out_w);
    for (int64_t c = 0; c < group_in; ++c) {
      const int64_t channel = o / group_out * group_in + c;
      const float part = static_cast<float>(sum * image[(channel * g.height + y) * g.width + x]);
      float* w = weight_grad + (o * group_in + c) * taps;
      for (int64_t t = 0; t < taps; ++t) w[t] += part;
    }
  }
}

// conv_backward_weight over the outputs outside the frame (Winograd's tiles
// that meet them, or im2col + GEMM of just those), plus the frame's part in
// closed form (none when its windows read the zero padding).
// With bias_grad, the bias gradient's sums too (conv_backward_weight).
void backward_weight_with_frame(const ConvGeometry& g, const float* image, const float* output_grad,
                                float* weight_grad, const OutputFrame& frame, const ConstantFrame& input,
                                bool accumulate, float* bias_grad) {
  const int tile = winograd_backward_tile();
  const bool winograd = winograd_pays(g, tile);
  // the frame's outputs whose part comes in closed form: none when their windows read the zero padding
  const ConstantFrame pixels =
      !frame.reads_input ? ConstantFrame{} : winograd ? winograd_skipped(g, frame.frame, tile) : frame.frame;
  if (bias_grad && pixels.empty()) add_channel_sums(g.out_channels, g.out_area(), output_grad, bias_grad);
  const auto add_frame_part = [&] {
    if (!pixels.empty()) add_frame_weight_grad(g, pixels, input, image, output_grad, weight_grad, bias_grad);
  };
  if (winograd) {
    if (!accumulate) std::fill_n(weight_grad, g.weight_numel(), 0.f);  // a 3x3 weight: the passes below add
    winograd_backward_weight(g, image, output_grad, weight_grad, tile, &frame.frame);
    return add_frame_part();
  }
  const std::vector<Segment> segments = segments_outside(frame.frame, g.out_h, g.out_w);
  const int64_t m = g.out_channels / g.groups, k = g.column_rows() / g.groups;
  if (segments.empty() && !accumulate) std::fill_n(weight_grad, g.weight_numel(), 0.f);
  float beta = accumulate ? 1.f : 0.f;  // the first band writes (fc6's 411 MB gradient is not read)
  const bool bf16 = g.precision == Precision::bf16;  // the operands gathered rounded (store_strided)
  for_each_segment_band(segments, frame_band_pixels(g), [&](size_t first, size_t last, int64_t n) {
    float* col = column_workspace(g.column_rows() * n);
    float* compact = output_workspace(g.out_channels * n);
    if (bf16) {
      im2col_segments(g, image, segments, first, last, n, as_bf16(col));
      gather_segments(g, segments, first, last, n, output_grad, as_bf16(compact));
    } else {
      im2col_segments(g, image, segments, first, last, n, col);
      gather_segments(g, segments, first, last, n, output_grad, compact);
    }
    for (int64_t group = 0; group < g.groups; ++group) {
      // weight_grad_g[m, k] = compact_g[m, n] · col_g^T[n, k] + beta * weight_grad_g;  m = O/g, k = C/g*KH*KW
      float* weight_grad_g = weight_grad + group * m * k;
      if (bf16)
        gemm_bf16_rounded(false, true, m, k, n, as_bf16(compact) + group * m * n, n, as_bf16(col) + group * k * n, n,
                          beta, weight_grad_g, k);
      else
        gemm(g.precision, false, true, m, k, n, 1.f, compact + group * m * n, col + group * k * n, beta, weight_grad_g);
    }
    beta = 1.f;
  });
  add_frame_part();
}

}  // namespace

ConstantFrame conv_output_frame(const ConvGeometry& g, const ConstantFrame& input_frame) {
  return output_frame_of(g, input_frame).frame;
}

void conv_forward(const ConvGeometry& g, const float* weight, const float* image, float beta, float* output,
                  const float* bias, bool rectify, const ConstantFrame* input_frame) {
  // bf16: the weight rounded once for the GEMMs of every row band (Winograd rounds its transform)
  const bool im2col = takes_im2col(g, 1, forward_tile(g));
  const RoundedOperand rounded_weight(g.precision, weight, im2col ? g.weight_numel() : 0);
  if (input_frame && beta == 0.f) {
    const OutputFrame frame = output_frame_of(g, *input_frame);
    if (!frame.frame.empty()) {
      forward_outside_frame(g, weight, image, bias, rectify, frame.frame, output);
      const std::vector<float> values = frame_values(g, frame, *input_frame, weight, image, bias, rectify);
      fill_frame(g, frame.frame, values, output);
      if (!g.inference) equalize_equal_windows(g, image, output, &frame.frame, input_frame);
      return;
    }
  }
  convolve_forward(g, weight, image, beta, output, bias, rectify);
  // a pass that adds to an output (beta != 0) keeps its own sums: only a
  // fresh output's equal windows are known to give equal numbers
  if (beta == 0.f && !g.inference) equalize_equal_windows(g, image, output);
}

namespace {

// image_grad += col2im(W^T output_grad) as col^T = output_grad^T W, W the
// held pair-interleaved copy (backward_data_interleaved_rows) as the GEMM's
// B: oneDNN's bf16 matmul reads a B so laid out as it is, where the product
// W^T output_grad made it copy W^T, fc6's 205 MB, on every call. fc6's
// backward-data at 500x500 (Zen 5, 2 threads, a driver) 87-89 -> 70-71 ms,
// fc7's 16.3 -> 11.5.
void backward_data_interleaved(const ConvGeometry& g, const uint16_t* interleaved, const float* output_grad,
                               float* image_grad) {
  const int64_t rows = g.column_rows(), pixels = g.out_area(), outputs = g.out_channels;
  // output_grad^T [pixels, outputs] in bf16, a tile at a time (both sides' lines stay in cache)
  uint16_t* output_grad_t = as_bf16(output_workspace((pixels * outputs + 1) / 2));
  constexpr int64_t kTile = 64;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t o0 = 0; o0 < outputs; o0 += kTile)
    for (int64_t p0 = 0; p0 < pixels; p0 += kTile) {
      alignas(64) float tile[kTile];
      for (int64_t p = p0; p < std::min(pixels, p0 + kTile); ++p) {
        const int64_t count = std::min(kTile, outputs - o0);
        for (int64_t o = 0; o < count; ++o) tile[o] = output_grad[(o0 + o) * pixels + p];
        round_to_bf16(tile, output_grad_t + p * outputs + o0, count);
      }
    }
  float* col_t = column_workspace(pixels * rows);  // [OH*OW, C*KH*KW]
  gemm_bf16_rounded_blocked_b(false, pixels, rows, outputs, output_grad_t, outputs, interleaved, 0.f, col_t, rows);
  col2im_add_transposed(g, col_t, image_grad);
}

}  // namespace

int64_t backward_data_interleaved_rows(const ConvGeometry& g, int64_t batch) {
  constexpr int64_t kMinSide = 1024;
  const bool applies = g.precision == Precision::bf16 && g.groups == 1 &&
                       takes_im2col(g, batch, winograd_backward_tile()) && chunk_rows(g) >= g.out_h &&
                       g.out_channels >= kMinSide && g.column_rows() >= kMinSide &&
                       g.out_channels % kVnniRows == 0 && g.column_rows() % kVnniCols == 0;
  return applies ? g.out_channels : 0;
}

void conv_backward_data(const ConvGeometry& g, const float* weight, const float* output_grad, float* image_grad,
                        bool accumulate) {
  if (winograd_pays(g, winograd_backward_tile()))
    return winograd_backward_data(g, weight, output_grad, image_grad, winograd_backward_tile(), accumulate ? 1.f : 0.f);
  if (!accumulate) std::fill_n(image_grad, g.image_numel(), 0.f);  // the paths below add
  if (phase_grid_pays(g, winograd_backward_tile())) return phase_grid_backward_data(g, 1, weight, output_grad, image_grad);
  if (backward_data_interleaved_rows(g, 1) > 0)
    if (const uint16_t* interleaved = interleaved_rounding(weight, g.weight_numel()))
      return backward_data_interleaved(g, interleaved, output_grad, image_grad);
  const RoundedOperand rounded_weight(g.precision, weight, g.weight_numel());
  const bool banded = for_each_row_band(g, [&](const ConvGeometry& band, int64_t first, float* col) {
    // col = W^T[C*KH*KW, O] · output_grad[:, band]  (rows of length OH*OW)
    gemm(g.precision, true, false, g.column_rows(), band.out_area(), g.out_channels, 1.f, weight, g.column_rows(),
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
    gemm(g.precision, true, false, m, n, k, 1.f, weight + group * k * m, output_grad + group * k * n, direct ? 1.f : 0.f,
         col + group * m * n);
  }
  if (!direct) col2im_add(g, col, image_grad);
}

void conv_backward_weight(const ConvGeometry& g, const float* image, const float* output_grad, float* weight_grad,
                          const ConstantFrame* input_frame, bool accumulate, float* bias_grad) {
  if (input_frame) {
    const OutputFrame frame = output_frame_of(g, *input_frame);
    if (!frame.frame.empty())
      return backward_weight_with_frame(g, image, output_grad, weight_grad, frame, *input_frame, accumulate, bias_grad);
  }
  if (bias_grad) add_channel_sums(g.out_channels, g.out_area(), output_grad, bias_grad);
  const bool winograd = winograd_pays(g, winograd_backward_tile());
  if (winograd || phase_grid_pays(g, winograd_backward_tile())) {
    if (!accumulate) std::fill_n(weight_grad, g.weight_numel(), 0.f);  // a 3x3 weight: these add
    if (winograd) return winograd_backward_weight(g, image, output_grad, weight_grad);
    return phase_grid_backward_weight(g, 1, image, output_grad, weight_grad);
  }
  float beta = accumulate ? 1.f : 0.f;  // the first GEMM writes
  const bool banded = for_each_row_band(g, [&](const ConvGeometry& band, int64_t first, float* col) {
    im2col(band, image, col);
    // weight_grad[O, C*KH*KW] = output_grad[:, band] · col^T + beta * weight_grad
    gemm(g.precision, false, true, g.out_channels, g.column_rows(), band.out_area(), 1.f, output_grad + first * g.out_w,
         g.out_area(), col, band.out_area(), beta, weight_grad, g.column_rows());
    beta = 1.f;
  });
  if (banded) return;
  const float* col = columns_of(g, image);  // [C*KH*KW, OH*OW]
  const int64_t m = g.out_channels / g.groups, n = g.column_rows() / g.groups, k = g.out_area();
  for (int64_t group = 0; group < g.groups; ++group) {
    // weight_grad_g[m, n] = output_grad_g[m, k] · col_g^T[k, n] + beta * weight_grad_g;  m = O/g, n = C/g*KH*KW, k = OH*OW
    gemm(g.precision, false, true, m, n, k, 1.f, output_grad + group * m * k, col + group * n * k, beta, weight_grad + group * m * n);
  }
}

namespace {

// Whether a frame holds some of g's outputs (those batches keep the per-image passes).
bool framed(const ConvGeometry& g, const ConstantFrame* input_frame) {
  return input_frame && !output_frame_of(g, *input_frame).frame.empty();
}

}  // namespace

bool gemms_read_weight(const ConvGeometry& g, int64_t batch) {
  return takes_im2col(g, batch, forward_tile(g, batch)) || takes_im2col(g, batch, winograd_backward_tile());
}

void conv_forward_images(const ConvGeometry& g, int64_t batch, const float* weight, const float* images,
                         float* outputs, const float* bias, bool rectify, const ConstantFrame* input_frame) {
  const int tile = forward_tile(g, batch);
  if (!framed(g, input_frame) && batch_on_grid(g, batch, tile)) {
    phase_grid_forward(g, batch, weight, images, 0.f, outputs, bias, rectify, tile);
    for (int64_t n = 0; n < batch && !g.inference; ++n)
      equalize_equal_windows(g, images + n * g.image_numel(), outputs + n * g.output_numel());
    return;
  }
  for (int64_t n = 0; n < batch; ++n)
    conv_forward(g, weight, images + n * g.image_numel(), 0.f, outputs + n * g.output_numel(), bias, rectify,
                 input_frame);
}

void conv_backward_data_images(const ConvGeometry& g, int64_t batch, const float* weight, const float* output_grads,
                               float* image_grads, bool accumulate, const uint16_t* kept) {
  if (kept && backward_data_writes_whole(g, batch)) {
    const KeptBits placed{kept, image_grads};
    for (int64_t n = 0; n < batch; ++n)
      winograd_backward_data(g, weight, output_grads + n * g.output_numel(), image_grads + n * g.image_numel(),
                             winograd_backward_tile(), accumulate ? 1.f : 0.f, &placed);
    return;
  }
  if (batch_on_grid(g, batch, winograd_backward_tile())) {
    if (!accumulate) std::fill_n(image_grads, batch * g.image_numel(), 0.f);  // the grid adds
    phase_grid_backward_data(g, batch, weight, output_grads, image_grads);
  } else {
    for (int64_t n = 0; n < batch; ++n)
      conv_backward_data(g, weight, output_grads + n * g.output_numel(), image_grads + n * g.image_numel(), accumulate);
  }
  // relu_backward of slope 0 in place is kept_gradient of every element
  if (kept) relu_backward(kept, image_grads, image_grads, batch * g.image_numel(), 0.f, false);
}

bool backward_data_writes_whole(const ConvGeometry& g, int64_t batch) {
  return !batch_on_grid(g, batch, winograd_backward_tile()) && winograd_pays(g, winograd_backward_tile());
}

void conv_backward_weight_images(const ConvGeometry& g, int64_t batch, const float* images, const float* output_grads,
                                 float* weight_grad, const ConstantFrame* input_frame, bool accumulate,
                                 float* bias_grad) {
  if (!framed(g, input_frame) && batch_on_grid(g, batch, winograd_backward_tile())) {
    if (bias_grad) add_bias_grad_images(g, batch, output_grads, bias_grad);
    if (!accumulate) std::fill_n(weight_grad, g.weight_numel(), 0.f);  // the grid adds
    return phase_grid_backward_weight(g, batch, images, output_grads, weight_grad);
  }
  for (int64_t n = 0; n < batch; ++n)  // the first image writes, the others add
    conv_backward_weight(g, images + n * g.image_numel(), output_grads + n * g.output_numel(), weight_grad,
                         input_frame, accumulate || n > 0, bias_grad);
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

namespace {

// dst[i * stride] += tap * src[i] for i in [lo, hi), each product rounded on
// its own before the add (no fused multiply-add), as col2im adds a GEMM's
// single products.
__attribute__((optimize("fp-contract=off"))) void add_tap_products(float* dst, int64_t stride, float tap,
                                                                    const float* src, int64_t lo, int64_t hi) {
  for (int64_t i = lo; i < hi; ++i) dst[i * stride] += tap * src[i];
}

// dst[i] += a[i] * b[i], each product rounded before the add (as add_tap_products).
__attribute__((optimize("fp-contract=off"))) void add_products(float* dst, const float* a, const float* b,
                                                                int64_t count) {
  for (int64_t i = 0; i < count; ++i) dst[i] += a[i] * b[i];
}

// Whether every image column of g is reached by the same number of kernel
// columns, kernel_w / stride_w of them a stride apart (undilated, the kernel a
// multiple of the stride: FCN's bilinear upsampling, kernel 2s and stride s).
bool upsampling_columns(const ConvGeometry& g) { return g.dilation_w == 1 && g.kernel_w % g.stride_w == 0; }

// One channel of depthwise_backward_data with upsampling_columns(g), an image
// row at a time. Image column x is reached by kernel columns kj_m(x) =
// (x + pw) mod s + m*s, m < kernel_w / s, reading output column ow_m(x) =
// (x + pw) div s - m where that lies in the output; the row's terms go in
// kernel row, then kernel column order, as col2im_add adds them, so each
// image element gets the same sums. Per slot m the weights and output
// gradients are laid out by image column first (`weights`, `grads`), so each
// (kernel row, slot) adds one contiguous, vectorised run to the row, which
// stays in L1; the scatter along columns a stride apart went through the
// whole plane (1.3 MB for upscore8's 568x568) once per tap, 256 times.
void upsample_channel(const ConvGeometry& g, const float* w, const float* dy, float* dx) {
  const int64_t s = g.stride_w, slots = g.kernel_w / s, width = g.width;
  thread_local std::vector<float> weights, grads;
  weights.resize(g.kernel_h * slots * width);  // [kernel row][slot][image column]
  grads.resize(g.out_h * slots * width);       // [output row][slot][image column]
  std::vector<int64_t> lo(slots), hi(slots);   // image columns whose slot m reads the output
  for (int64_t m = 0; m < slots; ++m) {
    lo[m] = width;
    hi[m] = 0;
    for (int64_t x = 0; x < width; ++x) {
      const int64_t kj = (x + g.pad_w) % s + m * s, ow = (x + g.pad_w) / s - m;
      for (int64_t ki = 0; ki < g.kernel_h; ++ki) weights[(ki * slots + m) * width + x] = w[ki * g.kernel_w + kj];
      if (ow < 0 || ow >= g.out_w) continue;
      lo[m] = std::min(lo[m], x);  // ow_m is monotone in x, so the valid columns are one run
      hi[m] = x + 1;
      for (int64_t oh = 0; oh < g.out_h; ++oh) grads[(oh * slots + m) * width + x] = dy[oh * g.out_w + ow];
    }
  }
  for (int64_t y = 0; y < g.height; ++y) {
    float* row = dx + y * width;
    for (int64_t ki = 0; ki < g.kernel_h; ++ki) {
      const int64_t reach = y + g.pad_h - ki * g.dilation_h;  // = oh * stride_h
      if (reach < 0 || reach % g.stride_h != 0 || reach / g.stride_h >= g.out_h) continue;
      const int64_t oh = reach / g.stride_h;
      for (int64_t m = 0; m < slots; ++m)
        if (lo[m] < hi[m])
          add_products(row + lo[m], weights.data() + (ki * slots + m) * width + lo[m],
                       grads.data() + (oh * slots + m) * width + lo[m], hi[m] - lo[m]);
    }
  }
}

}  // namespace

// Each tap's products added straight into the image, in col2im_add's
// order: a one-channel GEMM would write a column buffer of KH*KW rows (256
// for FCN's 16x16 stride-8 upsampling) of single products w * dy, which
// col2im then reads back, so the numbers are those of conv_backward_data.
void depthwise_backward_data(const ConvGeometry& g, const float* weight, const float* output_grad,
                             float* image_grad) {
  const ConvGeometry one = one_channel(g);
  const int64_t kernel = g.kernel_h * g.kernel_w, in_plane = g.height * g.width, out_plane = g.out_area();
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t c = 0; c < g.channels; ++c) {
    const float* w = weight + c * kernel;
    const float* dy = output_grad + c * out_plane;
    float* dx = image_grad + c * in_plane;
    if (upsampling_columns(g)) {
      upsample_channel(g, w, dy, dx);
      continue;
    }
    // col_at = tap * out_area + oh * out_w: the column row is the tap, the rest the output row
    for_each_row_segment(one, 0, [&](int64_t col_at, int64_t image_at, int64_t lo, int64_t hi) {
      const float tap = w[col_at / out_plane];
      const float* src = dy + col_at % out_plane;
      add_tap_products(dx + image_at, g.stride_w, tap, src, lo, hi);
    });
  }
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
  for (int64_t c = 0; c < channels; ++c) bias_grad[c] += static_cast<float>(plane_sum(grad + c * area, area));
}

void add_bias_grad_images(const ConvGeometry& g, int64_t batch, const float* output_grads, float* bias_grad) {
  for (int64_t n = 0; n < batch; ++n)
    add_channel_sums(g.out_channels, g.out_area(), output_grads + n * g.output_numel(), bias_grad);
}

}  // namespace fcn::cpu
