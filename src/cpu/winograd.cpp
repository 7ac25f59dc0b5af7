#include "fcn/cpu/winograd.hpp"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "avx512_lanes.hpp"
#include "bf16_lanes.hpp"
#include "even_chunks.hpp"
#include "fcn/cpu/bf16_gemm.hpp"
#include "fcn/cpu/elementwise.hpp"
#include "fcn/cpu/gemm.hpp"
#include "fcn/core/environment.hpp"
#include "fcn/core/error.hpp"
#include "fcn/core/tensor.hpp"

namespace fcn::cpu {

namespace {

constexpr int kLanes = 16;  // tiles transformed together: one AVX-512 vector per tile element
// Narrower layers keep im2col + GEMM. They are cheap (a few ms in a narrow
// model; the path would still be ~1.7x faster there), and their rounding
// stays im2col's: Winograd's is 2-3x larger, which matters where a ReLU
// input is within rounding noise of zero and the two paths can decide the
// ReLU differently (a width-1/16 FCN in tests/cli/model_parity.sh has one
// such pixel). Every 3x3 layer of VGG16 but conv1_1 has 64 or more.
constexpr int64_t kMinChannels = 64;

#define FCN_LANES for (int l = 0; l < kLanes; ++l)

// One element of kLanes tiles: a vector of GCC's extension, so that the 1-d
// transforms below are whole-vector arithmetic (all loads before the
// stores, nothing for the compiler to prove about aliasing).
// Without AVX-512 (-march=x86-64-v3) GCC splits each vector into two AVX
// registers and warns that passing one by value changes the ABI: these
// helpers are internal and inlined, so no call crosses that ABI.
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float Lanes __attribute__((vector_size(kLanes * sizeof(float))));
inline Lanes load(const float* p) {
  Lanes v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store(float* p, Lanes v) { std::memcpy(p, &v, sizeof v); }

// The 1-d transforms of F(m, 3) on lane vectors (a = m + 2 taps in, m out).
// The 2-d transforms apply them to the rows, then the columns of a tile.
// Each is factored so that it is exact on constant data (a difference of
// equal values is exactly 0).
//
// F(2, 3), interpolation points 0, 1, -1, infinity:
//   B^T = 1 0 -1 0 / 0 1 1 0 / 0 -1 1 0 / 0 1 0 -1     G = 1 0 0 / .5 .5 .5 / .5 -.5 .5 / 0 0 1
//   A^T = 1 1 1 0 / 0 1 -1 -1
// Every output of a tile depends only on the transformed rows (and columns)
// that combine the input rows (columns) of its own 3x3 window, so an output
// whose window is constant gets the same number wherever it lies in its tile
// and whatever surrounds it. Across tiles it is the GEMMs' rounding, which
// OpenBLAS makes depend on a tile's place in the block: conv_forward
// (convolution.hpp) makes the outputs of equal windows equal after this pass, so
// that FCN's exact max-pooling ties in its padded regions stay exact.
struct F2x3 {
  static constexpr int m = 2, a = 4;
  static constexpr float G[a][3] = {{1, 0, 0}, {.5f, .5f, .5f}, {.5f, -.5f, .5f}, {0, 0, 1}};
  // t = B^T d
  static void input(const float* const d[a], float* const t[a]) {
    const Lanes d0 = load(d[0]), d1 = load(d[1]), d2 = load(d[2]), d3 = load(d[3]);
    store(t[0], d0 - d2);
    store(t[1], d1 + d2);
    store(t[2], d2 - d1);
    store(t[3], d1 - d3);
  }
  // y = A^T x
  static void output(const float* const x[a], float* const y[m]) {
    const Lanes x0 = load(x[0]), x1 = load(x[1]), x2 = load(x[2]), x3 = load(x[3]);
    store(y[0], x0 + x1 + x2);
    store(y[1], x1 - x2 - x3);
  }
  // t = A y (the adjoint of output)
  static void output_adjoint(const float* const y[m], float* const t[a]) {
    const Lanes y0 = load(y[0]), y1 = load(y[1]);
    store(t[0], y0);
    store(t[1], y0 + y1);
    store(t[2], y0 - y1);
    store(t[3], -y1);
  }
};

// F(4, 3), interpolation points 0, 1, -1, 2, -2, infinity (Lavin & Gray):
//   B^T = 4 0 -5 0 1 0 / 0 -4 -4 1 1 0 / 0 4 -4 -1 1 0 / 0 -2 -1 2 1 0 / 0 2 -1 -2 1 0 / 0 4 0 -5 0 1
//   A^T = 1 1 1 1 1 0 / 0 1 -1 2 -2 0 / 0 1 1 4 4 0 / 0 1 -1 8 -8 1
// A quarter of direct convolution's multiplies (F(2, 3): 4/9), but every
// output depends on the whole 6x6 patch: equal windows can come out unequal
// in the last bits, which breaks exact max-pooling ties (see F2x3).
struct F4x3 {
  static constexpr int m = 4, a = 6;
  static constexpr float G[a][3] = {{1.f / 4, 0, 0},
                                    {-1.f / 6, -1.f / 6, -1.f / 6},
                                    {-1.f / 6, 1.f / 6, -1.f / 6},
                                    {1.f / 24, 1.f / 12, 1.f / 6},
                                    {1.f / 24, -1.f / 12, 1.f / 6},
                                    {0, 0, 1}};
  static void input(const float* const d[a], float* const t[a]) {
    const Lanes d0 = load(d[0]), d1 = load(d[1]), d2 = load(d[2]), d3 = load(d[3]), d4 = load(d[4]),
                d5 = load(d[5]);
    store(t[0], 4.f * (d0 - d2) + (d4 - d2));
    store(t[1], (d3 + d4) - 4.f * (d1 + d2));
    store(t[2], 4.f * (d1 - d2) + (d4 - d3));
    store(t[3], 2.f * (d3 - d1) + (d4 - d2));
    store(t[4], 2.f * (d1 - d3) + (d4 - d2));
    store(t[5], 4.f * (d1 - d3) + (d5 - d3));
  }
  static void output(const float* const x[a], float* const y[m]) {
    const Lanes x0 = load(x[0]), x1 = load(x[1]), x2 = load(x[2]), x3 = load(x[3]), x4 = load(x[4]),
                x5 = load(x[5]);
    const Lanes s12 = x1 + x2, d12 = x1 - x2, s34 = x3 + x4, d34 = x3 - x4;
    store(y[0], x0 + s12 + s34);
    store(y[1], d12 + 2.f * d34);
    store(y[2], s12 + 4.f * s34);
    store(y[3], d12 + 8.f * d34 + x5);
  }
  static void output_adjoint(const float* const y[m], float* const t[a]) {
    const Lanes y0 = load(y[0]), y1 = load(y[1]), y2 = load(y[2]), y3 = load(y[3]);
    store(t[0], y0);
    store(t[1], (y0 + y2) + (y1 + y3));
    store(t[2], (y0 + y2) - (y1 + y3));
    store(t[3], (y0 + 4.f * y2) + 2.f * (y1 + 4.f * y3));
    store(t[4], (y0 + 4.f * y2) - 2.f * (y1 + 4.f * y3));
    store(t[5], y3);
  }
};

// A tile's elements across the lanes: x[i][j][l] = element (i, j) of tile l.
template <int R, int S>
using LaneTiles = float[R][S][kLanes];

// The m x m tiles covering a conv output (out_h x out_w) and the image their
// a x a patches are read from (in_h x in_w, `pad` rows/columns of zeros
// around it).
template <class T>
struct TileGrid {
  int64_t in_h, in_w, out_h, out_w, pad_h, pad_w;
  int64_t rows, cols;
  // the AVX-512 gather_patches and scatter_output_tiles also prefetch the
  // columns of each row that a later group reads or writes (far_prefetch_for;
  // the portable ones, not measured so, ignore it)
  bool far_prefetch = false;
  TileGrid(int64_t in_h_, int64_t in_w_, int64_t out_h_, int64_t out_w_, int64_t pad_h_, int64_t pad_w_)
      : in_h(in_h_), in_w(in_w_), out_h(out_h_), out_w(out_w_), pad_h(pad_h_), pad_w(pad_w_),
        rows((out_h_ + T::m - 1) / T::m), cols((out_w_ + T::m - 1) / T::m) {}
  int64_t count() const { return rows * cols; }
};

// far_prefetch of a pass that gathers patches from `channels` planes:
// gather_patches then also prefetches the columns of each row that the
// group two after this one reads and this one does not, in the same plane.
// The passes prefetch the next channel's rows as they go, but a narrow pass
// goes round its few planes' rows, 4 or 6 of each, so fast that those lines
// are still on their way from memory when it reads them. Where the planes
// are many their far lines would not stay in L2 until read. 3x3 conv, one
// layer, Zen 5, 2 threads, bf16 (forward, backward-data, weight gradient,
// ms): 64 ch 698x698 51.3 / 38.0 / 39.5 -> 43.6 / 33.5 / 34.8, 128 ch
// 349x349 36.0 / 24.5 / 26.1 -> 32.4 / 23.5 / 25.3; 256 and 512 channels
// the same or slower; fp32 forward 64 ch 80.7 -> 76.9. The output scatter
// of such a pass prefetches the rows the group two ahead writes, for
// writing (bf16, 64 ch: forward 47.4 -> 44.5, backward-data 36.1 -> 34.7,
// medians of five alternated rounds; 128 ch the same). The weight
// gradient's output-gradient tiles prefetched so: no gain.
constexpr int64_t kFarPrefetchMaxChannels = 128;
bool far_prefetch_for(int64_t channels) { return channels <= kFarPrefetchMaxChannels; }

// The m lines from `offset` floats past `row` (past the row's end: the
// next row's start or the padding, harmless).
template <int m, _mm_hint Hint = _MM_HINT_T1>
inline void prefetch_far(const float* row, int64_t offset) {
  for (int q = 0; q < m; ++q) _mm_prefetch(reinterpret_cast<const char*>(row + offset + 16 * q), Hint);
}

// A group: up to kLanes consecutive tiles of one tile row, (row, col0) the
// first; lane l is tile (row, col0 + l).
struct Group {
  int64_t row, col0;
  int lanes;
};

// The tiles a pass computes, numbered in order: runs of consecutive tiles
// of one tile row, `start` the number of a run's first.
struct TileRun {
  int64_t row, col0, cols, start;
};
using TileRuns = std::vector<TileRun>;

int64_t tile_count(const TileRuns& runs) { return runs.empty() ? 0 : runs.back().start + runs.back().cols; }

void add_run(TileRuns& runs, int64_t row, int64_t col0, int64_t cols) {
  if (cols > 0) runs.push_back({row, col0, cols, tile_count(runs)});
}

// Every tile of the grid.
template <class T>
TileRuns all_tiles(const TileGrid<T>& t) {
  TileRuns runs;
  for (int64_t row = 0; row < t.rows; ++row) add_run(runs, row, 0, t.cols);
  return runs;
}

// The tiles with an output outside `frame` (a tile's outputs are cropped at
// the output's edges).
template <class T>
TileRuns tiles_outside(const TileGrid<T>& t, const ConstantFrame& frame) {
  constexpr int64_t m = T::m;
  auto inside = [&](int64_t row, int64_t col) {
    const FrameRect box{row * m, col * m, std::min(row * m + m, t.out_h), std::min(col * m + m, t.out_w)};
    const FrameRect& outer = frame.outer;
    const FrameRect& inner = frame.inner;
    const bool in_outer = box.top >= outer.top && box.left >= outer.left && box.bottom <= outer.bottom &&
                          box.right <= outer.right;
    const bool meets_inner = !inner.empty() && box.top < inner.bottom && box.bottom > inner.top &&
                             box.left < inner.right && box.right > inner.left;
    return in_outer && !meets_inner;
  };
  TileRuns runs;
  for (int64_t row = 0; row < t.rows; ++row) {
    for (int64_t col = 0; col < t.cols;) {
      if (inside(row, col)) {
        ++col;
        continue;
      }
      int64_t end = col + 1;
      while (end < t.cols && !inside(row, end)) ++end;
      add_run(runs, row, col, end - col);
      col = end;
    }
  }
  return runs;
}

// Calls fn(group, offset) for the groups covering tiles first..first+count-1
// of `runs` (offset: of the group's first tile from `first`). Groups never
// straddle a run, so their patches are consecutive in the image rows.
template <typename Fn>
void for_each_group(const TileRuns& runs, int64_t first, int64_t count, Fn fn) {
  auto run = std::upper_bound(runs.begin(), runs.end(), first,
                              [](int64_t tile, const TileRun& r) { return tile < r.start; }) - 1;
  for (int64_t offset = 0; offset < count;) {
    const int64_t tile = first + offset;
    if (tile >= run->start + run->cols) ++run;
    const int64_t col = run->col0 + (tile - run->start);
    const int64_t left_in_run = run->start + run->cols - tile;
    const int lanes = static_cast<int>(std::min({static_cast<int64_t>(kLanes), count - offset, left_in_run}));
    fn(Group{run->row, col, lanes}, offset);
    offset += lanes;
  }
}

// Calls fn(group, offset, c) for channels c = 0, step, 2 step, ... < channels
// of every group of tiles first..first+count-1 (for_each_group). The passes
// prefetch the planes of channel c + step while they work on channel c
// (gather_patches), so the order sets how much is prefetched before it is
// read: channel by channel, a channel's sweep over the block's groups
// prefetches all of their rows in the next plane; group by group, one
// group's. Up to 64 tiles (4 groups) a channel's sweep and its prefetch fit
// in L1 and the groups next to each other share their edge lines; with
// more (bf16's 256-tile blocks: ~60 KB of F(4x4) rows) the lines
// prefetched for the next channel were, it seems, evicted before they were
// read. Measured (Zen 5, 2 threads, 3x3 conv, one layer, alternated in
// both orders): bf16 forward 64 ch 698x698 61-62 -> 51-53 ms, 128 ch
// 349x349 41 -> 35.5, weight gradient at 128 ch 29.9-31.5 -> 29.1-30.6; fp32
// (128-tile blocks) forward 256 ch 175x175 53-56 -> 49-50; with fp32's
// 64-tile blocks (64 ch 698x698) group by group was slower (forward 78-79
// -> 81-92 ms).
constexpr int64_t kChannelSweepTiles = 64;
template <typename Fn>
void for_each_group_channel(const TileRuns& runs, int64_t first, int64_t count, int64_t channels, int64_t step,
                            Fn fn) {
  if (count <= kChannelSweepTiles) {
    for (int64_t c = 0; c < channels; c += step)
      for_each_group(runs, first, count, [&](const Group& group, int64_t offset) { fn(group, offset, c); });
    return;
  }
  for_each_group(runs, first, count, [&](const Group& group, int64_t offset) {
    for (int64_t c = 0; c < channels; c += step) fn(group, offset, c);
  });
}

// Moving a group's tiles between image rows and lane vectors: each image row
// is read (written) with whole, masked vector loads (stores) and
// (de)interleaved in registers.
#if defined(__AVX512F__)
// GCC 12's AVX-512 intrinsics start from _mm512_undefined_ps(), which it
// then reports as maybe uninitialised (a known false positive).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// Bits b of a 16-lane mask with lo <= base + b < hi.
__mmask16 range_mask(int64_t base, int64_t lo, int64_t hi) {
  const int64_t first = std::clamp<int64_t>(lo - base, 0, 16), last = std::clamp<int64_t>(hi - base, 0, 16);
  if (first >= last) return 0;
  return static_cast<__mmask16>(((1u << last) - 1u) & ~((1u << first) - 1u));
}

// v[0..3] hold 64 consecutive floats e = 16q + r; afterwards v[j][l] holds
// element 4l + j (128-bit blocks transposed across the registers, then 4x4
// within each block).
inline void deinterleave4(__m512 v[4]) {
  const __m512 t0 = _mm512_shuffle_f32x4(v[0], v[1], _MM_SHUFFLE(1, 0, 1, 0));
  const __m512 t1 = _mm512_shuffle_f32x4(v[0], v[1], _MM_SHUFFLE(3, 2, 3, 2));
  const __m512 t2 = _mm512_shuffle_f32x4(v[2], v[3], _MM_SHUFFLE(1, 0, 1, 0));
  const __m512 t3 = _mm512_shuffle_f32x4(v[2], v[3], _MM_SHUFFLE(3, 2, 3, 2));
  const __m512 w0 = _mm512_shuffle_f32x4(t0, t2, _MM_SHUFFLE(2, 0, 2, 0));
  const __m512 w1 = _mm512_shuffle_f32x4(t0, t2, _MM_SHUFFLE(3, 1, 3, 1));
  const __m512 w2 = _mm512_shuffle_f32x4(t1, t3, _MM_SHUFFLE(2, 0, 2, 0));
  const __m512 w3 = _mm512_shuffle_f32x4(t1, t3, _MM_SHUFFLE(3, 1, 3, 1));
  const __m512 u0 = _mm512_unpacklo_ps(w0, w1), u1 = _mm512_unpackhi_ps(w0, w1);
  const __m512 u2 = _mm512_unpacklo_ps(w2, w3), u3 = _mm512_unpackhi_ps(w2, w3);
  v[0] = _mm512_shuffle_ps(u0, u2, _MM_SHUFFLE(1, 0, 1, 0));
  v[1] = _mm512_shuffle_ps(u0, u2, _MM_SHUFFLE(3, 2, 3, 2));
  v[2] = _mm512_shuffle_ps(u1, u3, _MM_SHUFFLE(1, 0, 1, 0));
  v[3] = _mm512_shuffle_ps(u1, u3, _MM_SHUFFLE(3, 2, 3, 2));
}

// The inverse of deinterleave4.
inline void interleave4(__m512 v[4]) {
  const __m512 u0 = _mm512_unpacklo_ps(v[0], v[1]), u1 = _mm512_unpackhi_ps(v[0], v[1]);
  const __m512 u2 = _mm512_unpacklo_ps(v[2], v[3]), u3 = _mm512_unpackhi_ps(v[2], v[3]);
  const __m512 w0 = _mm512_shuffle_ps(u0, u2, _MM_SHUFFLE(1, 0, 1, 0));
  const __m512 w1 = _mm512_shuffle_ps(u0, u2, _MM_SHUFFLE(3, 2, 3, 2));
  const __m512 w2 = _mm512_shuffle_ps(u1, u3, _MM_SHUFFLE(1, 0, 1, 0));
  const __m512 w3 = _mm512_shuffle_ps(u1, u3, _MM_SHUFFLE(3, 2, 3, 2));
  const __m512 t0 = _mm512_shuffle_f32x4(w0, w1, _MM_SHUFFLE(1, 0, 1, 0));
  const __m512 t1 = _mm512_shuffle_f32x4(w0, w1, _MM_SHUFFLE(3, 2, 3, 2));
  const __m512 t2 = _mm512_shuffle_f32x4(w2, w3, _MM_SHUFFLE(1, 0, 1, 0));
  const __m512 t3 = _mm512_shuffle_f32x4(w2, w3, _MM_SHUFFLE(3, 2, 3, 2));
  v[0] = _mm512_shuffle_f32x4(t0, t2, _MM_SHUFFLE(2, 0, 2, 0));
  v[1] = _mm512_shuffle_f32x4(t0, t2, _MM_SHUFFLE(3, 1, 3, 1));
  v[2] = _mm512_shuffle_f32x4(t1, t3, _MM_SHUFFLE(2, 0, 2, 0));
  v[3] = _mm512_shuffle_f32x4(t1, t3, _MM_SHUFFLE(3, 1, 3, 1));
}

// v[l] -> v[l + 1], the last lane taken from lane `from` of next.
inline __m512 shift_in(__m512 v, __m512 next, int from) {
  const __m512i n = _mm512_castps_si512(next);
  const __m512i src = from == 0 ? n : _mm512_alignr_epi32(n, n, 1);
  return _mm512_castsi512_ps(_mm512_alignr_epi32(src, _mm512_castps_si512(v), 1));
}

// The unmasked ones of a row's `vectors` 16-float vectors at `offset` in
// next_plane (when not null), prefetched: the row a pass reads or writes in
// the channel after this one.
template <_mm_hint Hint>
inline void prefetch_row(const float* next_plane, int64_t offset, const __mmask16* mask, int vectors) {
  if (!next_plane) return;
  for (int q = 0; q < vectors; ++q)
    if (mask[q]) _mm_prefetch(reinterpret_cast<const char*>(next_plane + offset + 16 * q), Hint);
}

// d[i][j][l] = image element (row*m - pad_h + i, (col0 + l)*m - pad_w + j), 0 outside.
// When next_plane is not null, the same patches of it are prefetched: the
// passes transform a block's tiles channel by channel, each channel's rows a
// plane apart, too many streams for the hardware prefetchers (at 64 channels
// the masked loads of the rows took most of the input transform's time).
template <class T>
void gather_patches(const TileGrid<T>& t, const float* plane, const Group& g, LaneTiles<T::a, T::a>& d,
                    const float* next_plane) {
  constexpr int m = T::m, a = T::a;
  constexpr int vectors = m + 1;  // 16 tiles span 16m floats, plus the a - m columns after them
  const int64_t x0 = g.col0 * m - t.pad_w;
  __mmask16 mask[vectors];
  for (int q = 0; q < vectors; ++q) mask[q] = range_mask(x0 + 16 * q, 0, t.in_w);
  for (int i = 0; i < a; ++i) {
    const int64_t y = g.row * m - t.pad_h + i;
    __m512 v[vectors];
    if (y < 0 || y >= t.in_h) {
      for (__m512& x : v) x = _mm512_setzero_ps();
    } else {
      // masked-off lanes are neither read nor faulted on, even left of the row (load_lanes)
      const float* row = plane + y * t.in_w + x0;
      for (int q = 0; q < vectors; ++q) v[q] = load_lanes(row + 16 * q, mask[q]);
      prefetch_row<_MM_HINT_T0>(next_plane, y * t.in_w + x0, mask, vectors);
      if (t.far_prefetch) prefetch_far<m>(row, 16 * (2 * m + 1));  // a group spans 16 m + 16 floats
    }
    if constexpr (m == 4) {
      deinterleave4(v);
    } else {
      deinterleave2(v);
    }
    // columns m and m + 1 of tile l are columns 0 and 1 of tile l + 1
    const __m512 c_m = shift_in(v[0], v[m], 0), c_m1 = shift_in(v[1], v[m], 1);
    for (int j = 0; j < m; ++j) _mm512_store_ps(d[i][j], v[j]);
    _mm512_store_ps(d[i][m], c_m);
    _mm512_store_ps(d[i][m + 1], c_m1);
  }
}

// dy[i][j][l] = output element (row*m + i, (col0 + l)*m + j), 0 beyond the output;
// next_plane: prefetched as in gather_patches (the weight gradient reads the
// output gradient channel by channel too).
template <class T>
void gather_output_tiles(const TileGrid<T>& t, const float* plane, const Group& g, LaneTiles<T::m, T::m>& dy,
                         const float* next_plane) {
  constexpr int m = T::m;
  const int64_t x0 = g.col0 * m;
  __mmask16 mask[m];
  for (int q = 0; q < m; ++q) mask[q] = range_mask(x0 + 16 * q, 0, t.out_w);
  for (int i = 0; i < m; ++i) {
    const int64_t y = g.row * m + i;
    __m512 v[m];
    if (y >= t.out_h) {
      for (__m512& x : v) x = _mm512_setzero_ps();
    } else {
      const float* row = plane + y * t.out_w + x0;
      for (int q = 0; q < m; ++q) v[q] = load_lanes(row + 16 * q, mask[q]);
      prefetch_row<_MM_HINT_T0>(next_plane, y * t.out_w + x0, mask, m);
    }
    if constexpr (m == 4) {
      deinterleave4(v);
    } else {
      deinterleave2(v);
    }
    for (int j = 0; j < m; ++j) _mm512_store_ps(dy[i][j], v[j]);
  }
}

// Output element (row*m + i, (col0 + l)*m + j) = y[i][j][l] + beta * itself,
// for the group's lanes and inside the output.
template <class T>
void scatter_output_tiles(const TileGrid<T>& t, const LaneTiles<T::m, T::m>& y, const Group& g, float beta,
                          bool rectify, const KeptBits* kept, float* plane, float* next_plane) {
  constexpr int m = T::m;
  const int64_t x0 = g.col0 * m;
  __mmask16 mask[m];
  for (int q = 0; q < m; ++q) mask[q] = range_mask(x0 + 16 * q, x0, std::min(t.out_w, x0 + m * g.lanes));
  const int64_t rows = std::min<int64_t>(m, t.out_h - g.row * m);
  for (int64_t i = 0; i < rows; ++i) {
    __m512 v[m];
    for (int j = 0; j < m; ++j) v[j] = _mm512_load_ps(y[i][j]);
    if constexpr (m == 4) {
      interleave4(v);
    } else {
      interleave2(v);
    }
    float* row = plane + (g.row * m + i) * t.out_w + x0;
    prefetch_row<_MM_HINT_ET0>(next_plane, row - plane, mask, m);
    if (t.far_prefetch) prefetch_far<m, _MM_HINT_ET0>(row, 16 * 2 * m);  // a group writes 16 m floats
    for (int q = 0; q < m; ++q) {
      if (!mask[q]) continue;
      if (beta != 0.f) v[q] = _mm512_add_ps(v[q], load_lanes(row + 16 * q, mask[q]));
      if (rectify) v[q] = _mm512_max_ps(_mm512_setzero_ps(), v[q]);  // a NaN or -0 in v passes, as in max(x, 0)
      if (kept)
        v[q] = kept_gradient_lanes(static_cast<__mmask16>(kept_lanes(kept->bits, row + 16 * q - kept->origin)), v[q]);
      store_lanes(row + 16 * q, mask[q], v[q]);
    }
  }
}
#pragma GCC diagnostic pop
#else
template <class T>
void gather_patches(const TileGrid<T>& t, const float* plane, const Group& g, LaneTiles<T::a, T::a>& d,
                    const float* next_plane) {
  if (next_plane)
    for (int i = 0; i < T::a; ++i) {
      const int64_t y = g.row * T::m - t.pad_h + i, x0 = std::max<int64_t>(0, g.col0 * T::m - t.pad_w);
      const int64_t x1 = std::min(t.in_w, (g.col0 + g.lanes) * T::m - t.pad_w + T::a);
      if (y >= 0 && y < t.in_h)
        for (int64_t x = x0; x < x1; x += 16) __builtin_prefetch(next_plane + y * t.in_w + x);
    }
  for (int l = 0; l < kLanes; ++l)
    for (int i = 0; i < T::a; ++i)
      for (int j = 0; j < T::a; ++j) {
        const int64_t y = g.row * T::m - t.pad_h + i, x = (g.col0 + l) * T::m - t.pad_w + j;
        d[i][j][l] = l < g.lanes && y >= 0 && y < t.in_h && x >= 0 && x < t.in_w ? plane[y * t.in_w + x] : 0.f;
      }
}

template <class T>
void gather_output_tiles(const TileGrid<T>& t, const float* plane, const Group& g, LaneTiles<T::m, T::m>& dy,
                         const float*) {
  for (int l = 0; l < kLanes; ++l)
    for (int i = 0; i < T::m; ++i)
      for (int j = 0; j < T::m; ++j) {
        const int64_t y = g.row * T::m + i, x = (g.col0 + l) * T::m + j;
        dy[i][j][l] = l < g.lanes && y < t.out_h && x < t.out_w ? plane[y * t.out_w + x] : 0.f;
      }
}

template <class T>
void scatter_output_tiles(const TileGrid<T>& t, const LaneTiles<T::m, T::m>& y, const Group& g, float beta,
                          bool rectify, const KeptBits* kept, float* plane, float*) {
  for (int l = 0; l < g.lanes; ++l)
    for (int i = 0; i < T::m; ++i)
      for (int j = 0; j < T::m; ++j) {
        const int64_t oy = g.row * T::m + i, ox = (g.col0 + l) * T::m + j;
        if (oy >= t.out_h || ox >= t.out_w) continue;
        float& dst = plane[oy * t.out_w + ox];
        dst = y[i][j][l] + (beta != 0.f ? dst : 0.f);
        if (rectify && dst < 0.f) dst = 0.f;
        if (kept) dst = kept_gradient(kept_bit(kept->bits, &dst - kept->origin), dst);
      }
}
#endif

// Stores the group's lanes of one transformed element.
inline void store_lanes(const float* x, int lanes, float* dst) {
  if (lanes == kLanes) {
    FCN_LANES dst[l] = x[l];
  } else {
    for (int l = 0; l < lanes; ++l) dst[l] = x[l];
  }
}
// rows lane vectors of 16 floats, rounded to bf16, into rows `stride` apart:
// inlined where the build targets AVX512-BF16 (a call per tile group cost
// ~1.5% of a step), else round_lanes_to_bf16's dispatch
inline void round_lanes(const float* x, int lanes, int rows, uint16_t* dst, int64_t stride) {
#ifdef __AVX512BF16__
  round_lanes_avx512(x, lanes, rows, dst, stride);
#else
  round_lanes_to_bf16(x, lanes, rows, dst, stride);
#endif
}
inline void store_lanes(const float* x, int lanes, uint16_t* dst) { round_lanes(x, lanes, 1, dst, 0); }
// Two rows of a pair-interleaved block at once (round_lane_pairs_to_bf16_interleaved)
inline void round_lane_pairs(const float* even, const float* odd, int rows, const InterleavedLanes& place,
                             int64_t stride) {
#ifdef __AVX512BF16__
  round_lane_pairs_interleaved_avx512(even, odd, rows, place, stride);
#else
  round_lane_pairs_to_bf16_interleaved(even, odd, rows, place, stride);
#endif
}

// The 2-d transform x -> P x Q^T of two 1-d maps: row_fn on the rows of an
// R x S tile of lane vectors, then col_fn on the columns of the result.
// in[i * S + j] and out[i * S2 + j] point at the lane vectors.
template <int R, int S, int R2, int S2, typename RowFn, typename ColFn>
__attribute__((always_inline)) inline void transform_2d(const float* const* in, float* const* out, RowFn row_fn,
                                                     ColFn col_fn) {
  alignas(64) LaneTiles<R, S2> rows;
  for (int i = 0; i < R; ++i) {
    float* y[S2];
    for (int j = 0; j < S2; ++j) y[j] = rows[i][j];
    row_fn(in + i * S, y);
  }
  for (int j = 0; j < S2; ++j) {
    const float* x[R];
    float* y[R2];
    for (int i = 0; i < R; ++i) x[i] = rows[i][j];
    for (int i = 0; i < R2; ++i) y[i] = out[i * S2 + j];
    col_fn(x, y);
  }
}

// The distance between the a*a matrices of a transformed block ([xi][rows][cols]).
// rows*cols is mostly a power of two (64 channels x 64 tiles: 16 KB), which
// would put a tile's a*a elements (36 lines for F(4x4)) into one L1 set and
// 4K-alias their stores; one cache line more spreads them over the sets. With
// gather_patches' prefetch in place it pays: a 64-channel 698x698 forward,
// alternated against the unpadded layout on a Zen 5, F(4x4) 56-57 vs 63-66 ms,
// F(2x2) 87-89 vs 92-100 ms. (Before the prefetch the row loads hid it.)
// In elements of the block's type E: one cache line more, and every matrix
// starts on a cache line (oneDNN's bf16 kernels read their operands from there).
template <class E = float>
int64_t xi_stride(int64_t rows, int64_t cols) {
  return rows * cols + 64 / static_cast<int64_t>(sizeof(E));
}

// A transformed block's elements: float, or bfloat16 (uint16_t) where the
// GEMMs run in bf16 (the transforms round as they write, which saves the pass
// that would round the block before each GEMM, and half the block's bytes).
//
// Pointers to the a x a lane vectors of a transformed tile: straight into
// a float block buffer (xi_stride apart) for a full group, into `local` for
// a partial one or a bf16 block (whose lanes are then stored with store_tile).
template <int A, class E>
void tile_pointers(E* base, int64_t xi_stride, int lanes, LaneTiles<A, A>& local, float* ptr[A * A]) {
  for (int xi = 0; xi < A * A; ++xi) {
    if constexpr (std::is_same_v<E, float>)
      ptr[xi] = lanes == kLanes ? base + xi * xi_stride : local[xi / A][xi % A];
    else
      ptr[xi] = local[xi / A][xi % A];
  }
}

template <int A>
void store_tile(const LaneTiles<A, A>& local, int lanes, float* base, int64_t xi_stride) {
  if (lanes == kLanes) return;  // written in place
  for (int xi = 0; xi < A * A; ++xi) store_lanes(local[xi / A][xi % A], lanes, base + xi * xi_stride);
}

template <int A>
void store_tile(const LaneTiles<A, A>& local, int lanes, uint16_t* base, int64_t xi_stride) {
  round_lanes(local[0][0], lanes, A * A, base, xi_stride);
}

// The input transform (B^T d B)[xi] of the group's patches in one image
// plane into the lane vectors out[xi]. next_plane: see gather_patches.
template <class T>
__attribute__((always_inline)) inline void input_tiles(const TileGrid<T>& t, const float* plane, const Group& g,
                                                       const float* next_plane, float* const* out) {
  constexpr int a = T::a;
  alignas(64) LaneTiles<a, a> d;
  gather_patches(t, plane, g, d, next_plane);
  const float* in[a * a];
  for (int e = 0; e < a * a; ++e) in[e] = d[e / a][e % a];
  transform_2d<a, a, a, a>(in, out, T::input, T::input);
}

// V[xi][l] = (B^T d B)[xi] of the group's patches; v points at lane 0 of
// xi = 0, xi_stride apart.
template <class T, class E>
void transform_input(const TileGrid<T>& t, const float* plane, const Group& g, E* v, int64_t xi_stride,
                     const float* next_plane) {
  constexpr int a = T::a;
  alignas(64) LaneTiles<a, a> local;
  float* out[a * a];
  tile_pointers(v, xi_stride, g.lanes, local, out);
  input_tiles(t, plane, g, next_plane, out);
  store_tile(local, g.lanes, v, xi_stride);
}

// transform_input of channels c and c + 1 (c even) of the image, plane_stride
// apart, into a pair-interleaved bf16 block (V[xi] = [channels, block tiles]
// as vnni_offset lays it out), the group's place in V[0] given for channel c.
// Both channels at once write each word pair whole: one channel at a time
// stored every word pair in halves (twice the masked stores; 1.8% of a bf16
// VGG16 step more).
template <class T>
void transform_input_pair(const TileGrid<T>& t, const float* plane, int64_t plane_stride, const Group& g,
                          const InterleavedLanes& place, int64_t xi_stride, const float* next_plane) {
  constexpr int a = T::a;
  alignas(64) LaneTiles<a, a> even, odd;
  float* out[a * a];
  for (int xi = 0; xi < a * a; ++xi) out[xi] = even[xi / a][xi % a];
  input_tiles(t, plane, g, next_plane, out);
  for (int xi = 0; xi < a * a; ++xi) out[xi] = odd[xi / a][xi % a];
  input_tiles(t, plane + plane_stride, g, next_plane ? next_plane + plane_stride : nullptr, out);
  round_lane_pairs(even[0][0], odd[0][0], a * a, place, xi_stride);
}

// The adjoint of the output transform, for the weight gradient: Mbar = A dY
// A^T of the group's m x m output-gradient tiles (zero beyond the output).
template <class T, class E>
void transform_output_grad(const TileGrid<T>& t, const float* plane, const Group& g, E* mbar,
                           int64_t xi_stride, const float* next_plane) {
  constexpr int m = T::m, a = T::a;
  alignas(64) LaneTiles<m, m> dy;
  alignas(64) LaneTiles<a, a> local;
  gather_output_tiles(t, plane, g, dy, next_plane);
  const float* in[m * m];
  for (int e = 0; e < m * m; ++e) in[e] = dy[e / m][e % m];
  float* out[a * a];
  tile_pointers(mbar, xi_stride, g.lanes, local, out);
  transform_2d<m, m, a, a>(in, out, T::output_adjoint, T::output_adjoint);
  store_tile(local, g.lanes, mbar, xi_stride);
}

// Y = A^T M A of the group's tiles, written into one output plane (cropped
// at its edges): plane = Y + bias + beta * plane, then max(plane, 0) when
// rectify, and kept_gradient of it where `kept` is given. m points at lane 0 of xi = 0; the
// lanes past a partial group are read (the block buffers have kLanes floats
// of slack) but not stored.
template <class T>
void transform_output(const TileGrid<T>& t, const float* m, int64_t xi_stride, const Group& g, float beta,
                      float bias, bool rectify, const KeptBits* kept, float* plane, float* next_plane) {
  constexpr int a = T::a, mm = T::m;
  alignas(64) LaneTiles<mm, mm> y;
  const float* in[a * a];
  for (int xi = 0; xi < a * a; ++xi) in[xi] = m + xi * xi_stride;
  float* out[mm * mm];
  for (int e = 0; e < mm * mm; ++e) out[e] = y[e / mm][e % mm];
  transform_2d<a, a, mm, mm>(in, out, T::output, T::output);
  if (bias != 0.f)
    for (int e = 0; e < mm * mm; ++e)
      for (int l = 0; l < kLanes; ++l) y[e / mm][e % mm][l] += bias;
  scatter_output_tiles(t, y, g, beta, rectify, kept, plane, next_plane);
}

// g[i][j][l] = element (i, j) of kernel f = first + l (rotated by 180
// degrees when `flip`), lanes past `lanes` repeating the last kernel;
// kernel_at(f) points at kernel f. A lane's kernel is found once, not once an
// element: transposed, its position costs a division. 512 x 512 kernels
// read from memory (Zen 5, 2 threads): bf16 backward-data's transform 4.2
// -> 2.7 ms, bf16 forward's 1.7 -> 1.3. (Gathering each element of the 16
// lanes as one vector was faster with the weight in cache, slower from
// memory: forward 1.9 ms.)
template <class KernelAt>
void gather_kernels(const KernelAt& kernel_at, int64_t first, int lanes, bool flip, float (&g)[3][3][kLanes]) {
  const float* w[kLanes];
  for (int l = 0; l < kLanes; ++l) w[l] = kernel_at(first + std::min(l, lanes - 1));
  for (int l = 0; l < kLanes; ++l)
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) g[i][j][l] = flip ? w[l][(2 - i) * 3 + (2 - j)] : w[l][i * 3 + j];
}

// U[xi][k][c] = (G g G^T)[xi] of every 3x3 kernel g = weight[k][c], rotated
// by 180 degrees when `flip` (the kernel of backward-data); stored
// [xi][c][k] when `transpose`. Kernels go kLanes at a time, so that each
// U[xi] row segment is written whole.
template <class T, class E>
void transform_weights(int64_t out_channels, int64_t channels, const float* weight, bool flip, bool transpose, E* u) {
  constexpr int a = T::a;
  const int64_t count = out_channels * channels, groups = (count + kLanes - 1) / kLanes;
  // the kernel at position f of U[xi]: weight[k][c] with f = k * C + c, or f = c * K + k
  const auto kernel_at = [&](int64_t f) {
    return weight + (transpose ? (f % out_channels) * channels + f / out_channels : f) * 9;
  };
  const int64_t stride = xi_stride<E>(out_channels, channels);
#pragma omp parallel for schedule(static) if (groups >= 64)
  for (int64_t group = 0; group < groups; ++group) {
    const int64_t first = group * kLanes;
    const int lanes = static_cast<int>(std::min<int64_t>(kLanes, count - first));
    alignas(64) float g[3][3][kLanes];
    gather_kernels(kernel_at, first, lanes, flip, g);
    alignas(64) float gt[a][3][kLanes];  // G g
    for (int mu = 0; mu < a; ++mu)
      for (int j = 0; j < 3; ++j)
        FCN_LANES gt[mu][j][l] = T::G[mu][0] * g[0][j][l] + T::G[mu][1] * g[1][j][l] + T::G[mu][2] * g[2][j][l];
    for (int mu = 0; mu < a; ++mu)
      for (int nu = 0; nu < a; ++nu) {
        alignas(64) float out[kLanes];
        FCN_LANES out[l] = gt[mu][0][l] * T::G[nu][0] + gt[mu][1][l] * T::G[nu][1] + gt[mu][2][l] * T::G[nu][2];
        store_lanes(out, lanes, u + (mu * a + nu) * stride + first);
      }
  }
}

// weight_grad[k][c] += G^T dU[k][c] G (the adjoint of transform_weights),
// kLanes kernels at a time: dU[xi] holds them side by side. (Kernel by
// kernel, GCC left the loop scalar for its stride-9 stores: 1.8% of a bf16
// VGG16 step.) Each lane adds in the order a scalar loop would.
template <class T>
void accumulate_weight_grad(int64_t out_channels, int64_t channels, const float* du, float* weight_grad) {
  constexpr int a = T::a;
  const int64_t count = out_channels * channels, stride = xi_stride(out_channels, channels);
  const int64_t groups = (count + kLanes - 1) / kLanes;
#pragma omp parallel for schedule(static) if (count >= 4096)
  for (int64_t group = 0; group < groups; ++group) {
    const int64_t first = group * kLanes;
    const int lanes = static_cast<int>(std::min<int64_t>(kLanes, count - first));
    // the lanes past `count` read dU's padding (xi_stride) or the scratch's slack, and are not stored
    Lanes gt[3][a];  // G^T dU
    for (int i = 0; i < 3; ++i)
      for (int nu = 0; nu < a; ++nu) {
        Lanes sum = {};
        for (int mu = 0; mu < a; ++mu) sum += T::G[mu][i] * load(du + (mu * a + nu) * stride + first);
        gt[i][nu] = sum;
      }
    alignas(64) float kernel[9][kLanes];  // (G^T dU G)[i][j] of each lane
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) {
        Lanes sum = {};
        for (int nu = 0; nu < a; ++nu) sum += gt[i][nu] * T::G[nu][j];
        store(kernel[i * 3 + j], sum);
      }
    float* out = weight_grad + first * 9;
    for (int l = 0; l < lanes; ++l)
      for (int e = 0; e < 9; ++e) out[l * 9 + e] += kernel[e][l];
  }
}

#undef FCN_LANES

// Scratch buffers: `slot` names a use; each thread keeps its own (the
// OpenMP team's threads persist, so the buffers are allocated once).
// kWeights holds U (forward, backward-data) or the weight-gradient partials.
enum Slot { kTilesIn, kTilesOut, kWeights };
float* scratch(Slot slot, int64_t numel) {
  thread_local Tensor buffers[3];
  Tensor& t = buffers[slot];
  numel += kLanes;  // slack: transform_output reads whole lane vectors
  if (t.numel() < numel) t.reshape({numel});
  return t.data();
}
// The same buffer holding `count` elements of E (float, or bf16 as uint16_t).
template <class E>
E* scratch_as(Slot slot, int64_t count) {
  const int64_t floats = (count * static_cast<int64_t>(sizeof(E)) + sizeof(float) - 1) / sizeof(float);
  return reinterpret_cast<E*>(scratch(slot, floats));
}

// Calls fn with a null E*, E the element type of the transformed blocks
// (tile_pointers) in `precision`.
template <class Fn>
void in_element_type(Precision precision, Fn fn) {
  if (precision == Precision::bf16)
    fn(static_cast<uint16_t*>(nullptr));
  else
    fn(static_cast<float*>(nullptr));
}

// C[m, n] = op(A) op(B) + beta * C of one Winograd point on this thread, all
// three dense, in the operands' element type.
void multiply(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a, const float* b, float beta,
              float* c) {
  gemm_on_this_thread(Precision::fp32, trans_a, trans_b, m, n, k, 1.f, a, b, beta, c);
}
void multiply(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const uint16_t* a, const uint16_t* b,
              float beta, float* c) {
  gemm_bf16_rounded(trans_a, trans_b, m, n, k, a, trans_a ? m : k, b, trans_b ? k : n, beta, c, n);
}

// Tiles per block (one thread transforms and multiplies a block at a time):
// few for narrow layers, whose GEMMs are small and whose transformed tiles
// should stay in cache, more for wide ones, whose GEMMs repack U[xi] [K, C]
// once per block (measured on VGG16's layers), but no more than a thread's
// share of the tiles. bf16 GEMMs cost more per call and repack their B
// operand too: 256 tiles for every width (measured on VGG16 FCN-8s at
// 500x500: a 5% shorter train step than 64/128). On small maps, fewer and
// larger blocks pay: each block of the weight gradient adds into its
// thread's dU (36 x 512 x 512 floats for F(4x4) at 512 channels) and each
// block of the others reads all of U, so a block's GEMMs over few tiles are
// bound by that traffic. One block per thread rather than two, on a Zen 5
// (512 channels, 2 threads): bf16 44x44 backward-data 20.4 -> 16.3 ms,
// weight gradient 20.6 -> 13.1, 88x88 35 -> 30 and 34 -> 28; fp32 44x44
// weight gradient 22 -> 16.7; the forwards and larger maps unchanged.
int64_t block_tiles(int64_t tiles, int64_t widest_channels, int threads, Precision precision) {
  int64_t block = precision == Precision::bf16 ? 256 : widest_channels <= 128 ? 64 : 128;
  block = std::min(block, (tiles + threads - 1) / threads);
  return std::max<int64_t>(kLanes, (block + kLanes - 1) / kLanes * kLanes);
}

// A pass's blocks of tiles: block b is tiles [first(b), first(b + 1)),
// its GEMMs `width(b)` columns wide (the tiles past the last one zero).
// fp32 cuts them `block` tiles long, each GEMM `block` wide (one shape:
// OpenBLAS rounds a column by its place in the block, see F2x3). bf16 cuts
// whole units (kLanes tiles, or kVnniCols where the block is
// pair-interleaved) as evenly as they go into a multiple of `threads`
// blocks, so that the threads finish together. With 256-tile blocks the
// weight gradient's last one of 512 channels at 88x88 (484 tiles: 256 +
// 228) or of 256 channels at 175x175 (1936 tiles: 7 x 256 + 144) left one
// thread idle ~10% of the pass (Zen 5, 2 threads, CPU time / wall
// 1.88-1.90), and 7744 tiles (conv3_x's forward, conv2_x's backward-data)
// made 31 blocks: one thread ran the 31st alone.
struct BlockSplit {
  int64_t tiles, block, unit, units, blocks;
  bool even;
  BlockSplit(int64_t tiles, int64_t block, int threads, Precision precision, int64_t unit = kLanes)
      : tiles(tiles), block(block), unit(unit), units((tiles + unit - 1) / unit), blocks((tiles + block - 1) / block),
        even(precision == Precision::bf16 && blocks > 1) {
    if (even) blocks = std::min(units, (blocks + threads - 1) / threads * threads);
  }
  int64_t first_unit(int64_t b) const { return b * units / blocks; }
  int64_t first(int64_t b) const { return std::min(tiles, even ? first_unit(b) * unit : b * block); }
  int64_t width(int64_t b) const { return even ? (first_unit(b + 1) - first_unit(b)) * unit : block; }
};

// One Winograd convolution of a [channels, grid.in_h, grid.in_w] image into
// [out_channels, grid.out_h, grid.out_w] (+ bias[k] when not null): u holds
// the transformed weights ([xi][out_channels][channels], or
// [xi][channels][out_channels] read transposed when trans_u), in the
// element type of the GEMMs.
template <class T, class E>
void convolve(Precision precision, const TileGrid<T>& grid, const TileRuns& runs, int64_t channels,
              int64_t out_channels, const E* u, bool trans_u, const float* image, float beta, const float* bias,
              bool rectify, const KeptBits* kept, float* output) {
  constexpr int xis = T::a * T::a;
  const int64_t tiles = tile_count(runs);
  if (tiles == 0) return;
  const int threads = omp_get_max_threads();
  // bf16: the transforms write V in the layout oneDNN's kernels read (which
  // they would otherwise repack each V[xi] into on every GEMM) where it needs
  // no padding
  const int64_t block = block_tiles(tiles, std::max(channels, out_channels), threads, precision);
  const bool interleaved = std::is_same_v<E, uint16_t> && channels % kVnniRows == 0 && block % kVnniCols == 0;
  const BlockSplit split(tiles, block, threads, precision, interleaved ? kVnniCols : kLanes);
  const int64_t in_plane = grid.in_h * grid.in_w, out_plane = grid.out_h * grid.out_w;
  const int64_t u_stride = xi_stride<E>(out_channels, channels);
#pragma omp parallel for schedule(dynamic, 1) if (split.blocks > 1)
  for (int64_t b = 0; b < split.blocks; ++b) {
    // the GEMMs multiply `width` columns, the tiles past `count` zero
    const int64_t first = split.first(b), count = split.first(b + 1) - first, width = split.width(b);
    const int64_t v_stride = xi_stride<E>(channels, width), m_stride = xi_stride(out_channels, width);
    E* v = scratch_as<E>(kTilesIn, xis * xi_stride<E>(channels, block));  // [xi][channels][width]
    float* m = scratch(kTilesOut, xis * xi_stride(out_channels, block));  // [xi][out_channels][width]
    if (interleaved && count < width) std::fill_n(v, xis * v_stride, E{0});
    // interleaved: channels two at a time (channels is even), the next two prefetched
    const int64_t step = interleaved ? 2 : 1;
    for_each_group_channel(runs, first, count, channels, step, [&](const Group& group, int64_t t, int64_t c) {
      const float* next_plane = c + step < channels ? image + (c + step) * in_plane : nullptr;
      if constexpr (std::is_same_v<E, uint16_t>) {
        if (interleaved) {
          const InterleavedLanes place = interleaved_lanes(v, channels, c, t, group.lanes);
          return transform_input_pair(grid, image + c * in_plane, in_plane, group, place, v_stride, next_plane);
        }
      }
      transform_input(grid, image + c * in_plane, group, v + c * width + t, v_stride, next_plane);
    });
    if (count < width && !interleaved)
      for (int64_t c = 0; c < channels; ++c)
        for (int xi = 0; xi < xis; ++xi) std::fill_n(v + xi * v_stride + c * width + count, width - count, E{0});
    for (int xi = 0; xi < xis; ++xi) {
      // m[xi][K, width] = U[xi][K, C] . v[xi][C, width];  K = out_channels, C = channels
      if constexpr (std::is_same_v<E, uint16_t>) {
        if (interleaved) {
          gemm_bf16_rounded_blocked_b(trans_u, out_channels, width, channels, u + xi * u_stride,
                                      trans_u ? out_channels : channels, v + xi * v_stride, 0.f, m + xi * m_stride,
                                      width);
          continue;
        }
      }
      multiply(trans_u, false, out_channels, width, channels, u + xi * u_stride, v + xi * v_stride, 0.f,
               m + xi * m_stride);
    }
    for_each_group_channel(runs, first, count, out_channels, 1, [&](const Group& group, int64_t t, int64_t k) {
      transform_output(grid, m + k * width + t, m_stride, group, beta, bias ? bias[k] : 0.f, rectify, kept,
                       output + k * out_plane, k + 1 < out_channels ? output + (k + 1) * out_plane : nullptr);
    });
  }
}

template <class T>
void forward(const ConvGeometry& g, const float* weight, const float* image, float beta, float* output,
             const float* bias, bool rectify, const ConstantFrame* skip) {
  const SerialBlasScope serial_blas;
  TileGrid<T> grid(g.height, g.width, g.out_h, g.out_w, g.pad_h, g.pad_w);
  grid.far_prefetch = far_prefetch_for(g.channels);
  const TileRuns runs = skip ? tiles_outside(grid, *skip) : all_tiles(grid);
  in_element_type(g.precision, [&](auto* tag) {
    using E = std::remove_pointer_t<decltype(tag)>;
    E* u = scratch_as<E>(kWeights, T::a * T::a * xi_stride<E>(g.out_channels, g.channels));  // [xi][K][C]
    transform_weights<T>(g.out_channels, g.channels, weight, false, false, u);
    convolve(g.precision, grid, runs, g.channels, g.out_channels, u, false, image, beta, bias, rectify, nullptr,
             output);
  });
}

template <class T>
void backward_data(const ConvGeometry& g, const float* weight, const float* output_grad, float beta,
                   const KeptBits* kept, float* image_grad) {
  const SerialBlasScope serial_blas;
  // image_grad = conv(output_grad, pad 2 - p, kernel rot180(W)^T): the GEMMs
  // read U[xi]^T, [C][K]. bf16 stores it so: oneDNN's bf16 matmul copies a
  // transposed A on every call, which made these GEMMs ~30% slower than the
  // forward's on a Zen 5; fp32's sgemm reads U[xi][K][C] transposed as it is.
  TileGrid<T> grid(g.out_h, g.out_w, g.height, g.width, 2 - g.pad_h, 2 - g.pad_w);
  grid.far_prefetch = far_prefetch_for(g.out_channels);  // it gathers the output gradient's planes
  in_element_type(g.precision, [&](auto* tag) {
    using E = std::remove_pointer_t<decltype(tag)>;
    constexpr bool stored_transposed = std::is_same_v<E, uint16_t>;
    E* u = scratch_as<E>(kWeights, T::a * T::a * xi_stride<E>(g.out_channels, g.channels));
    transform_weights<T>(g.out_channels, g.channels, weight, true, stored_transposed, u);
    convolve(g.precision, grid, all_tiles(grid), g.out_channels, g.channels, u, !stored_transposed, output_grad, beta,
             nullptr, false, kept, image_grad);
  });
}

// Waits until `turn` reaches `block`: the weight gradient's partial p takes
// blocks p, p + P, p + 2P, ... in that order, whichever thread runs them.
void wait_for_turn(const std::atomic<int64_t>& turn, int64_t block) {
  for (int spins = 0; turn.load(std::memory_order_acquire) != block; ++spins) {
    if (spins < 4096)
      _mm_pause();
    else
      std::this_thread::yield();  // more threads than cores: let the one we wait for run
  }
}

// dU[xi] = sum over the tiles of Mbar[xi] V[xi]^T in P = `threads`
// partials, into `partials` (P x du_numel floats); returns how many of them
// were written, the first min(blocks, P). Block b adds into partial b % P,
// and each partial adds its blocks in the order of their numbers
// (wait_for_turn), so each partial, and so the weight gradient, is the same
// number in every run (resume and MPI equivalence are bit-exact for a
// thread count) whichever thread runs a block. Thread p takes partial p's
// blocks (the round-robin deal, which keeps a partial in one core's cache),
// then the blocks of the other partials that no thread has taken yet: the
// two vCPUs of the machines measured here run at different speeds from
// moment to moment, and with the deal alone the faster thread waited at the
// end of every weight gradient for the slower one (perf: the worker thread
// off-CPU ~20 ms of a VGG16 FCN-8s step). A thread transforms a block, then
// waits for the block before it in that partial, if it is still running,
// to add its own.
template <class T, class E>
int64_t weight_grad_partials(const ConvGeometry& g, const TileGrid<T>& grid, const TileRuns& runs, const float* image,
                          const float* output_grad, float* partials, int threads) {
  constexpr int xis = T::a * T::a;
  const int64_t tiles = tile_count(runs), channels = g.channels, out_channels = g.out_channels;
  const BlockSplit split(tiles, block_tiles(tiles, std::max(channels, out_channels), threads, g.precision), threads,
                         g.precision);
  const int64_t blocks = split.blocks;
  const int64_t in_plane = g.height * g.width, out_plane = g.out_h * g.out_w;
  const int64_t du_stride = xi_stride(out_channels, channels), du_numel = xis * du_stride;
  // turns[p]: the block partial p adds next; unclaimed[p]: its next block no thread has taken
  std::vector<std::atomic<int64_t>> turns(threads), unclaimed(threads);
  for (int p = 0; p < threads; ++p) {
    turns[p].store(p, std::memory_order_relaxed);
    unclaimed[p].store(p, std::memory_order_relaxed);
  }
  auto run_block = [&](int64_t b, int64_t partial) {
    float* du = partials + partial * du_numel;
    const int64_t first = split.first(b), count = split.first(b + 1) - first;
    const int64_t v_stride = xi_stride<E>(channels, count), mbar_stride = xi_stride<E>(out_channels, count);
    E* v = scratch_as<E>(kTilesIn, xis * v_stride);          // [xi][C][count]
    E* mbar = scratch_as<E>(kTilesOut, xis * mbar_stride);  // [xi][K][count]
    for_each_group_channel(runs, first, count, channels, 1, [&](const Group& group, int64_t t, int64_t c) {
      transform_input(grid, image + c * in_plane, group, v + c * count + t, v_stride,
                      c + 1 < channels ? image + (c + 1) * in_plane : nullptr);
    });
    for_each_group_channel(runs, first, count, out_channels, 1, [&](const Group& group, int64_t t, int64_t k) {
      transform_output_grad(grid, output_grad + k * out_plane, group, mbar + k * count + t, mbar_stride,
                            k + 1 < out_channels ? output_grad + (k + 1) * out_plane : nullptr);
    });
    wait_for_turn(turns[partial], b);
    for (int xi = 0; xi < xis; ++xi) {
      // dU[xi][K, C] (+)= mbar[xi][K, count] . v[xi][C, count]^T;  the sum runs over the block's tiles
      multiply(false, true, out_channels, channels, count, mbar + xi * mbar_stride, v + xi * v_stride,
               b >= threads ? 1.f : 0.f, du + xi * du_stride);  // a partial's first block is b == partial
    }
    turns[partial].store(b + threads, std::memory_order_release);
  };
#pragma omp parallel num_threads(threads) if (blocks > 1)
  {
    // a thread takes its own partial's blocks (which keeps that partial in
    // its cache), then those the other threads have not taken yet
    const int me = omp_get_thread_num();
    for (int k = 0; k < threads; ++k) {
      const int partial = (me + k) % threads;
      for (int64_t b; (b = unclaimed[partial].fetch_add(threads)) < blocks;) run_block(b, partial);
    }
  }
  return std::min<int64_t>(blocks, threads);
}

// The bf16 weight gradient's chunks of tiles (weight_grad_chunks): as many
// tiles as keep the team's V and Mbar (bf16) within kChunkBytes, evenly cut
// in multiples of kLanes; 0 where it does not apply: fp32, one thread, or
// fewer than 256 channels on a side, where a thread's block of 256 tiles
// keeps its V, Mbar and dU in cache and its GEMMs are deep enough (64
// channels at 698x698: 39-42 ms in blocks, 46-52 in chunks; 128 at 349x349
// gained 1-3 ms alone but lost 5 in the net, conv2_2's backward 59.1 ->
// 64.2 ms, medians of three rounds). The budget: 16, 32, 64 and 256 MB
// chunks, two rounds each at 128, 256 and 512 channels (below): 64 MB the
// best or within a round's noise of it.
constexpr int64_t kChunkBytes = int64_t{64} << 20;
constexpr int64_t kChunkMinChannels = 256;
int64_t weight_grad_chunk(Precision precision, int64_t tiles, int64_t channels, int64_t out_channels, int xis,
                          int threads) {
  if (precision != Precision::bf16 || threads < 2 || tiles == 0 ||
      std::min(channels, out_channels) < kChunkMinChannels)
    return 0;
  const int64_t per_tile = xis * (channels + out_channels) * static_cast<int64_t>(sizeof(uint16_t));
  const int64_t most = std::max<int64_t>(kLanes, kChunkBytes / per_tile / kLanes * kLanes);
  return chunk_size(tiles, most, kLanes);
}

// dU[xi] = sum over the tiles of Mbar[xi] V[xi]^T, a chunk of `chunk`
// tiles at a time, into `du`: the team transforms the chunk's image and
// output-gradient channels into one shared V and Mbar (a few channels per
// turn), then takes the xi's GEMMs in turn, each adding the chunk into
// dU[xi] (the first writes it). Each dU[xi] adds its chunks in their order,
// however the threads share them: the same number in every run. Against
// weight_grad_partials (a block of 256 tiles per thread, each into its
// thread's dU, summed after) the GEMMs run over thousands of tiles instead
// of 256, and no partials go to memory and back. Two threads, Zen 5, one
// layer alone (3x3, pad 1), two rounds, blocks -> 64 MB chunks: 256
// channels at 175x175 28.6 / 27.8 -> 22.0 / 22.6 ms, 512 at 88x88 24.9 /
// 22.5 -> 18.6 / 18.5, 512 at 44x44 9.1 / 7.9 -> 5.8 / 5.9 (and 128 at
// 349x349 37.0 / 31.7 -> 30.1 / 30.4, which lost in the net: see
// weight_grad_chunk).
template <class T>
void weight_grad_chunks(const ConvGeometry& g, const TileGrid<T>& grid, const TileRuns& runs, const float* image,
                        const float* output_grad, int64_t chunk, float* du) {
  using E = uint16_t;
  constexpr int xis = T::a * T::a;
  const int64_t tiles = tile_count(runs), channels = g.channels, out_channels = g.out_channels;
  const int64_t in_plane = g.height * g.width, out_plane = g.out_h * g.out_w;
  const int64_t du_stride = xi_stride(out_channels, channels);
  E* v = scratch_as<E>(kTilesIn, xis * xi_stride<E>(channels, chunk));             // [xi][C][chunk], the team's
  E* mbar = scratch_as<E>(kTilesOut, xis * xi_stride<E>(out_channels, chunk));     // [xi][K][chunk]
#pragma omp parallel
  for (int64_t first = 0; first < tiles; first += chunk) {
    const int64_t count = std::min(chunk, tiles - first);
    const int64_t v_stride = xi_stride<E>(channels, count), mbar_stride = xi_stride<E>(out_channels, count);
#pragma omp for schedule(dynamic, 4) nowait
    for (int64_t c = 0; c < channels; ++c)
      for_each_group(runs, first, count, [&](const Group& group, int64_t t) {
        transform_input(grid, image + c * in_plane, group, v + c * count + t, v_stride,
                        c + 1 < channels ? image + (c + 1) * in_plane : nullptr);
      });
#pragma omp for schedule(dynamic, 4)
    for (int64_t k = 0; k < out_channels; ++k)
      for_each_group(runs, first, count, [&](const Group& group, int64_t t) {
        transform_output_grad(grid, output_grad + k * out_plane, group, mbar + k * count + t, mbar_stride,
                              k + 1 < out_channels ? output_grad + (k + 1) * out_plane : nullptr);
      });
#pragma omp for schedule(dynamic, 1)
    for (int xi = 0; xi < xis; ++xi)
      // dU[xi][K, C] (+)= mbar[xi][K, count] . v[xi][C, count]^T
      multiply(false, true, out_channels, channels, count, mbar + xi * mbar_stride, v + xi * v_stride,
               first > 0 ? 1.f : 0.f, du + xi * du_stride);
  }
}

template <class T>
void backward_weight(const ConvGeometry& g, const float* image, const float* output_grad, float* weight_grad,
                     const ConstantFrame* skip) {
  constexpr int xis = T::a * T::a;
  const SerialBlasScope serial_blas;
  TileGrid<T> grid(g.height, g.width, g.out_h, g.out_w, g.pad_h, g.pad_w);
  grid.far_prefetch = far_prefetch_for(g.channels);  // the image's patches
  const TileRuns runs = skip ? tiles_outside(grid, *skip) : all_tiles(grid);
  const int threads = omp_get_max_threads();
  const int64_t du_numel = xis * xi_stride(g.out_channels, g.channels);
  const int64_t chunk = weight_grad_chunk(g.precision, tile_count(runs), g.channels, g.out_channels, xis, threads);
  if (chunk > 0) {
    float* du = scratch(kWeights, du_numel);
    weight_grad_chunks(g, grid, runs, image, output_grad, chunk, du);
    return accumulate_weight_grad<T>(g.out_channels, g.channels, du, weight_grad);
  }
  float* partials = scratch(kWeights, du_numel * threads);  // threads dU [xi][K][C] partials, summed in their order
  int64_t written = 0;
  in_element_type(g.precision, [&](auto* tag) {
    using E = std::remove_pointer_t<decltype(tag)>;
    written = weight_grad_partials<T, E>(g, grid, runs, image, output_grad, partials, threads);
  });
  if (written == 0) return;
  for (int64_t t = 1; t < written; ++t) axpy(partials + t * du_numel, 1.f, partials, du_numel);
  accumulate_weight_grad<T>(g.out_channels, g.channels, partials, weight_grad);
}

// FCN_WINOGRAD: 0 (off), 2 (F(2x2, 3x3) everywhere), 4 (F(4x4, 3x3)
// everywhere); unset: forward 2, backward 4. Returns {forward, backward}.
struct Tiles {
  int forward, backward;
  bool forced;  // by FCN_WINOGRAD
};
Tiles configured_tiles() {
  static const Tiles tiles = [] {
    const std::optional<std::string> value = env_value("FCN_WINOGRAD");
    if (!value) return Tiles{2, 4, false};
    if (*value == "0") return Tiles{0, 0, true};
    if (*value == "4") return Tiles{4, 4, true};
    return Tiles{2, 2, true};
  }();
  return tiles;
}

}  // namespace

int winograd_forward_tile() { return configured_tiles().forward; }
int winograd_backward_tile() { return configured_tiles().backward; }

int winograd_forward_tile(const ConvGeometry& g) {
  const Tiles tiles = configured_tiles();
  return g.inference && g.precision == Precision::fp32 && !tiles.forced ? 4 : tiles.forward;
}

namespace {

void check_tile(int tile) {
  if (tile != 2 && tile != 4) throw Error("internal: Winograd tile must be 2 or 4, got " + std::to_string(tile));
}

}  // namespace

bool winograd_applies(const ConvGeometry& g) {
  return configured_tiles().forward != 0 && g.kernel_h == 3 && g.kernel_w == 3 && g.stride_h == 1 && g.stride_w == 1 &&
         g.dilation_h == 1 && g.dilation_w == 1 && g.groups == 1 && g.pad_h <= 2 && g.pad_w <= 2 &&
         g.channels >= kMinChannels && g.out_channels >= kMinChannels;
}

bool winograd_pays(const ConvGeometry& g, int tile) {
  // measured crossover: 25 F(4x4) tiles (20x20) lose to im2col, 100 (40x40) win;
  // 25 F(2x2) tiles (10x10) lose, 100 (20x20) win
  constexpr int64_t kMinWinogradTiles = 64;
  if (tile == 0 || !winograd_applies(g)) return false;
  return ((g.out_h + tile - 1) / tile) * ((g.out_w + tile - 1) / tile) >= kMinWinogradTiles;
}

int64_t winograd_scratch_floats(const ConvGeometry& g) {
  const int threads = omp_get_max_threads();
  int64_t largest = 0;
  for (int tile : {winograd_forward_tile(), winograd_forward_tile(g), winograd_backward_tile()}) {
    const int64_t a = tile + 2, xis = a * a;  // F(m x m, 3x3) transforms (m + 2)^2 points per tile
    const int64_t tiles = ((g.out_h + tile - 1) / tile) * ((g.out_w + tile - 1) / tile);
    const int64_t block = block_tiles(tiles, std::max(g.channels, g.out_channels), threads, g.precision);
    const int64_t per_thread = xis * (xi_stride(g.channels, block) + xi_stride(g.out_channels, block)) + 2 * kLanes;
    const int64_t weights = xis * xi_stride(g.out_channels, g.channels) * threads;  // U, or weight-gradient partials
    // bf16's weight gradient in chunks: the calling thread's V and Mbar hold a chunk for the team
    const int64_t chunk = tile == winograd_backward_tile()
                              ? weight_grad_chunk(g.precision, tiles, g.channels, g.out_channels, xis, threads)
                              : 0;
    const int64_t chunk_floats = chunk ? xis * (xi_stride<uint16_t>(g.channels, chunk) +
                                                xi_stride<uint16_t>(g.out_channels, chunk)) / 2 + kLanes
                                       : 0;
    largest = std::max(largest, threads * per_thread + weights + chunk_floats);
  }
  return largest;
}

void winograd_forward(const ConvGeometry& g, const float* weight, const float* image, float beta, float* output,
                      const float* bias, bool rectify, int tile, const ConstantFrame* skip) {
  check_tile(tile);
  if (tile == 4)
    forward<F4x3>(g, weight, image, beta, output, bias, rectify, skip);
  else
    forward<F2x3>(g, weight, image, beta, output, bias, rectify, skip);
}

void winograd_backward_data(const ConvGeometry& g, const float* weight, const float* output_grad,
                            float* image_grad, int tile, float beta, const KeptBits* kept) {
  check_tile(tile);
  if (tile == 4)
    backward_data<F4x3>(g, weight, output_grad, beta, kept, image_grad);
  else
    backward_data<F2x3>(g, weight, output_grad, beta, kept, image_grad);
}

void winograd_backward_weight(const ConvGeometry& g, const float* image, const float* output_grad,
                              float* weight_grad, int tile, const ConstantFrame* skip) {
  check_tile(tile);
  if (tile == 4)
    backward_weight<F4x3>(g, image, output_grad, weight_grad, skip);
  else
    backward_weight<F2x3>(g, image, output_grad, weight_grad, skip);
}

ConstantFrame winograd_skipped(const ConvGeometry& g, const ConstantFrame& frame, int tile) {
  // tiles are aligned boxes (cropped at the output's edges), so a tile lies in
  // the frame exactly when it lies in the outer rectangle shrunk to tile
  // boundaries and outside the inner one grown to them
  auto down = [&](int64_t x) { return x / tile * tile; };
  auto up = [&](int64_t x, int64_t size) { return std::min(size, (x + tile - 1) / tile * tile); };
  const FrameRect& o = frame.outer;
  const FrameRect& i = frame.inner;
  ConstantFrame aligned;
  aligned.outer = {up(o.top, g.out_h), up(o.left, g.out_w), o.bottom == g.out_h ? g.out_h : down(o.bottom),
                   o.right == g.out_w ? g.out_w : down(o.right)};
  if (!i.empty()) aligned.inner = {down(i.top), down(i.left), up(i.bottom, g.out_h), up(i.right, g.out_w)};
  if (frame.empty() || aligned.empty()) return {};
  return aligned;
}

}  // namespace fcn::cpu
