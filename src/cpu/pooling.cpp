#include "fcn/cpu/pooling.hpp"

#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "avx512_lanes.hpp"
#include "fcn/cpu/elementwise.hpp"

namespace fcn::cpu {

namespace {

// Below this many outputs a pass runs on one thread: waking the team costs more.
constexpr int64_t kParallelMin = 1 << 14;

// One output pixel: the window clipped to the input, scanned row-major.
inline void pool_window(const PoolGeometry& g, const float* plane, int64_t oy, int64_t ox, float& best,
                        int32_t& best_index) {
  const int64_t y0 = oy * g.stride_h - g.pad_h, x0 = ox * g.stride_w - g.pad_w;
  const int64_t y_begin = std::max<int64_t>(y0, 0), y_end = std::min(y0 + g.kernel_h, g.in_h);
  const int64_t x_begin = std::max<int64_t>(x0, 0), x_end = std::min(x0 + g.kernel_w, g.in_w);
  best_index = static_cast<int32_t>(y_begin * g.in_w + x_begin);
  best = plane[best_index];
  for (int64_t iy = y_begin; iy < y_end; ++iy) {
    for (int64_t ix = x_begin; ix < x_end; ++ix) {
      const float v = plane[iy * g.in_w + ix];
      if (v > best || std::isnan(v)) {  // strict '>': the first maximum wins ties
        best = v;
        best_index = static_cast<int32_t>(iy * g.in_w + ix);
      }
    }
  }
}

#if defined(__AVX512F__)
// GCC 12's AVX-512 intrinsics start from _mm512_undefined_ps(), which it
// then reports as maybe uninitialised (a known false positive).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// VGG's 2x2, stride-2 windows, 16 outputs at a time: outputs [ox, ox + 16)
// of output row oy, all four inputs of each window inside the plane. The
// same rule as pool_window: visit (0,0), (0,1), (1,0), (1,1), take a value
// that is greater or NaN.
inline void pool_2x2_16(const PoolGeometry& g, const float* plane, int64_t oy, int64_t ox, float* out,
                        int32_t* arg) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  const float* r0 = plane + 2 * oy * g.in_w + 2 * ox;
  const float* r1 = r0 + g.in_w;
  // the next output row's windows, two input rows down (perf: 0.75% -> 0.50% of a bf16 VGG16 step)
  _mm_prefetch(reinterpret_cast<const char*>(r0 + 2 * g.in_w), _MM_HINT_T0);
  _mm_prefetch(reinterpret_cast<const char*>(r0 + 2 * g.in_w + 16), _MM_HINT_T0);
  _mm_prefetch(reinterpret_cast<const char*>(r1 + 2 * g.in_w), _MM_HINT_T0);
  _mm_prefetch(reinterpret_cast<const char*>(r1 + 2 * g.in_w + 16), _MM_HINT_T0);
  const __m512 a0 = _mm512_loadu_ps(r0), a1 = _mm512_loadu_ps(r0 + 16);
  const __m512 b0 = _mm512_loadu_ps(r1), b1 = _mm512_loadu_ps(r1 + 16);
  const __m512 v[4] = {_mm512_permutex2var_ps(a0, even, a1), _mm512_permutex2var_ps(a0, odd, a1),
                       _mm512_permutex2var_ps(b0, even, b1), _mm512_permutex2var_ps(b0, odd, b1)};
  const int32_t offset[4] = {0, 1, static_cast<int32_t>(g.in_w), static_cast<int32_t>(g.in_w + 1)};
  __m512 best = v[0];
  __m512i index = _mm512_setzero_si512();
  for (int k = 1; k < 4; ++k) {
    const __mmask16 take =
        _mm512_cmp_ps_mask(v[k], best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v[k], v[k], _CMP_UNORD_Q);
    best = _mm512_mask_blend_ps(take, best, v[k]);
    index = _mm512_mask_blend_epi32(take, index, _mm512_set1_epi32(offset[k]));
  }
  // index of (2*oy, 2*(ox + l)) in the plane, plus the winner's offset
  const __m512i lanes = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i base = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(2 * oy * g.in_w + 2 * ox)), lanes);
  _mm512_storeu_ps(out, best);
  _mm512_storeu_si512(arg, _mm512_add_epi32(base, index));
}

// The backward of pool_2x2_16's windows, written densely: input rows 2*oy
// and 2*oy + 1, columns [2*ox, 2*ox + 32) of `plane` (the plane's first
// element is element `at` of the array the kept bits gate) get
// kept_gradient of their window's gradient where they won it, else 0.
inline void unpool_2x2_16(const PoolGeometry& g, const float* grad, const int32_t* arg, int64_t oy, int64_t ox,
                          float* plane, const uint16_t* kept, int64_t at) {
  const __m512i lanes = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512 dy = _mm512_loadu_ps(grad);
  const __m512i winner = _mm512_loadu_si512(arg);
  for (int64_t r = 0; r < 2; ++r) {
    const int64_t row = (2 * oy + r) * g.in_w + 2 * ox;
    const __m512i even_index = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(row)), lanes);
    const __m512i odd_index = _mm512_add_epi32(even_index, _mm512_set1_epi32(1));
    const __m512 even = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(winner, even_index), dy);
    const __m512 odd = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(winner, odd_index), dy);
    // the 32 inputs of the row in order: even column 2l from lane l of `even`, odd 2l + 1 of `odd`
    __m512 v[2] = {even, odd};
    interleave2(v);
    // a lane that did not win holds 0, and 0 + 0 * 0 is 0; without bits every lane is kept (-0 becomes +0, as 0 + g)
    for (int q = 0; q < 2; ++q) {
      const __mmask16 keep = kept ? static_cast<__mmask16>(kept_lanes(kept, at + row + 16 * q)) : 0xFFFF;
      _mm512_storeu_ps(plane + row + 16 * q, kept_gradient_lanes(keep, v[q]));
    }
  }
}
#pragma GCC diagnostic pop
#endif

// Outputs [ox_begin, ox_end) of row oy whose windows lie inside the input's
// columns (rows clipped as in pool_window), with pool_window's rule branch-free:
// the window positions in row-major order, each taken where it is greater or
// NaN; one loop over the outputs per position, which the compiler vectorises
// (the loads strided by a compile-time stride; 0 means g.stride_w).
template <int kStride>
void pool_row_inside(const PoolGeometry& g, const float* plane, int64_t oy, int64_t ox_begin, int64_t ox_end,
                     float* best, int32_t* best_index) {
  const int64_t stride = kStride > 0 ? kStride : g.stride_w;
  const int64_t y0 = oy * g.stride_h - g.pad_h;
  const int64_t y_begin = std::max<int64_t>(y0, 0), y_end = std::min(y0 + g.kernel_h, g.in_h);
  for (int64_t iy = y_begin; iy < y_end; ++iy) {
    for (int64_t kx = 0; kx < g.kernel_w; ++kx) {
      // input column of output ox: ox * stride + shift
      const int64_t shift = kx - g.pad_w;
      const float* row = plane + iy * g.in_w;
      const int32_t row_start = static_cast<int32_t>(iy * g.in_w + shift);
      if (iy == y_begin && kx == 0) {
#pragma omp simd
        for (int64_t ox = ox_begin; ox < ox_end; ++ox) {
          best[ox] = row[ox * stride + shift];
          best_index[ox] = row_start + static_cast<int32_t>(ox * stride);
        }
        continue;
      }
#pragma omp simd
      for (int64_t ox = ox_begin; ox < ox_end; ++ox) {
        const float v = row[ox * stride + shift];
        const bool take = v > best[ox] || v != v;
        best[ox] = take ? v : best[ox];
        best_index[ox] = take ? row_start + static_cast<int32_t>(ox * stride) : best_index[ox];
      }
    }
  }
}

// The window of one average-pooling output, clipped to the input, with its divisor.
struct AverageWindow {
  int64_t y_begin, y_end, x_begin, x_end;
  double divisor;
};

inline AverageWindow average_window(const PoolGeometry& g, bool count_include_pad, int64_t oy, int64_t ox) {
  const int64_t y0 = oy * g.stride_h - g.pad_h, x0 = ox * g.stride_w - g.pad_w;
  AverageWindow w{std::max<int64_t>(y0, 0), std::min(y0 + g.kernel_h, g.in_h), std::max<int64_t>(x0, 0),
                  std::min(x0 + g.kernel_w, g.in_w), 0.0};
  if (count_include_pad) {
    // padding counts, but a ceil-mode window reaching past the padded input is clipped to it
    const int64_t y_end = std::min(y0 + g.kernel_h, g.in_h + g.pad_h), x_end = std::min(x0 + g.kernel_w, g.in_w + g.pad_w);
    w.divisor = static_cast<double>(y_end - y0) * static_cast<double>(x_end - x0);
  } else {
    w.divisor = static_cast<double>(w.y_end - w.y_begin) * static_cast<double>(w.x_end - w.x_begin);
  }
  return w;
}

}  // namespace

void max_pool_forward(const PoolGeometry& g, const float* x, float* y, int32_t* argmax) {
  const int64_t in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
#if defined(__AVX512F__)
  // 2x2 stride 2 without padding: whole windows in the first in_h/2 rows and in_w/2 columns
  const bool two_by_two =
      g.kernel_h == 2 && g.kernel_w == 2 && g.stride_h == 2 && g.stride_w == 2 && g.pad_h == 0 && g.pad_w == 0;
  const int64_t full_rows = two_by_two ? std::min(g.out_h, g.in_h / 2) : 0;
  const int64_t full_cols = two_by_two ? std::min(g.out_w, g.in_w / 2) : 0;
#endif
#pragma omp parallel for schedule(static) if (g.planes * out_plane >= kParallelMin)
  for (int64_t p = 0; p < g.planes; ++p) {
    const float* plane = x + p * in_plane;
    float* out = y + p * out_plane;
    int32_t* arg = argmax + p * out_plane;
    for (int64_t oy = 0; oy < g.out_h; ++oy) {
      int64_t ox = 0;
#if defined(__AVX512F__)
      if (oy < full_rows)
        for (; ox + 16 <= full_cols; ox += 16)
          pool_2x2_16(g, plane, oy, ox, out + oy * g.out_w + ox, arg + oy * g.out_w + ox);
#endif
      // the columns of windows inside the input: [inside_begin, inside_end)
      const int64_t inside_begin = std::max(ox, (g.pad_w + g.stride_w - 1) / g.stride_w);
      const int64_t inside_end = std::min(g.out_w, (g.in_w + g.pad_w - g.kernel_w) / g.stride_w + 1);
      if (inside_end - inside_begin >= 8) {
        for (; ox < inside_begin; ++ox) pool_window(g, plane, oy, ox, out[oy * g.out_w + ox], arg[oy * g.out_w + ox]);
        float* row_out = out + oy * g.out_w;
        int32_t* row_arg = arg + oy * g.out_w;
        if (g.stride_w == 1)
          pool_row_inside<1>(g, plane, oy, ox, inside_end, row_out, row_arg);
        else if (g.stride_w == 2)
          pool_row_inside<2>(g, plane, oy, ox, inside_end, row_out, row_arg);
        else
          pool_row_inside<0>(g, plane, oy, ox, inside_end, row_out, row_arg);
        ox = inside_end;
      }
      for (; ox < g.out_w; ++ox) pool_window(g, plane, oy, ox, out[oy * g.out_w + ox], arg[oy * g.out_w + ox]);
    }
  }
}

namespace {

// plane[arg[o]] += grad[o] for outputs [begin, end) of a plane (`at`: the
// plane's first element in the kept bits), or kept_gradient's share with a
// rectifier's bits: kept_gradient is linear in the winners' sum, so each
// winner adds its own share, and the elements no window chose stay 0 (+0,
// as 0 + 0 * 0).
void add_winners(const float* grad, const int32_t* arg, int64_t begin, int64_t end, float* plane,
                 const uint16_t* kept, int64_t at) {
  if (!kept) {
    for (int64_t o = begin; o < end; ++o) plane[arg[o]] += grad[o];
    return;
  }
  for (int64_t o = begin; o < end; ++o) plane[arg[o]] += kept_bit(kept, at + arg[o]) ? grad[o] : 0.f * grad[o];
}

#if defined(__AVX512F__)
// VGG's pools: 2x2 windows at stride 2, unpadded, that tile the input (each
// element in exactly one window, the last row's or column's clipped where
// the input's size is odd).
bool windows_tile_input(const PoolGeometry& g) {
  return g.kernel_h == 2 && g.kernel_w == 2 && g.stride_h == 2 && g.stride_w == 2 && g.pad_h == 0 && g.pad_w == 0 &&
         g.out_h == (g.in_h + 1) / 2 && g.out_w == (g.in_w + 1) / 2;
}

// max_pool_backward of one plane without accumulate where the windows tile
// the input: each element written once, winners and zeros alike, instead of
// clearing the plane and adding the winners (a scalar scatter: 1.3% of a
// bf16 VGG16 step). `at`: the plane's first element in the kept bits.
void unpool_2x2(const PoolGeometry& g, const float* grad, const int32_t* arg, float* plane, const uint16_t* kept,
                int64_t at) {
  const int64_t whole_rows = g.in_h / 2, vector_windows = g.in_w / 32 * 16;
  for (int64_t oy = 0; oy < g.out_h; ++oy) {
    int64_t ox = 0;
    if (oy < whole_rows)
      for (; ox < vector_windows; ox += 16)
        unpool_2x2_16(g, grad + oy * g.out_w + ox, arg + oy * g.out_w + ox, oy, ox, plane, kept, at);
    // the row's other windows as max_pool_backward does: clear their inputs, add the winners
    for (int64_t iy = 2 * oy; iy < std::min(2 * oy + 2, g.in_h); ++iy)
      std::fill(plane + iy * g.in_w + 2 * ox, plane + (iy + 1) * g.in_w, 0.f);
    add_winners(grad, arg, oy * g.out_w + ox, (oy + 1) * g.out_w, plane, kept, at);
  }
}
#endif

}  // namespace

void max_pool_backward(const PoolGeometry& g, const float* dy, const int32_t* argmax, float* dx, bool accumulate,
                       const uint16_t* kept) {
  const int64_t in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
#pragma omp parallel for schedule(static) if (g.planes * out_plane >= kParallelMin)
  for (int64_t p = 0; p < g.planes; ++p) {
    const float* grad = dy + p * out_plane;
    const int32_t* arg = argmax + p * out_plane;
    float* plane = dx + p * in_plane;
#if defined(__AVX512F__)
    if (!accumulate && windows_tile_input(g)) {
      unpool_2x2(g, grad, arg, plane, kept, p * in_plane);
      continue;
    }
#endif
    if (!accumulate) std::fill_n(plane, in_plane, 0.f);
    add_winners(grad, arg, 0, out_plane, plane, kept, p * in_plane);
  }
}

double avg_pool_divisor(const PoolGeometry& g, bool count_include_pad, int64_t oy, int64_t ox) {
  return average_window(g, count_include_pad, oy, ox).divisor;
}

void avg_pool_forward(const PoolGeometry& g, bool count_include_pad, const float* x, float* y) {
  const int64_t in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
#pragma omp parallel for schedule(static) if (g.planes * std::max(out_plane, in_plane) >= kParallelMin)
  for (int64_t p = 0; p < g.planes; ++p) {
    const float* plane = x + p * in_plane;
    float* out = y + p * out_plane;
    for (int64_t oy = 0; oy < g.out_h; ++oy)
      for (int64_t ox = 0; ox < g.out_w; ++ox) {
        const AverageWindow w = average_window(g, count_include_pad, oy, ox);
        double sum = 0;  // a global pool sums a whole plane
        for (int64_t iy = w.y_begin; iy < w.y_end; ++iy) {
          const float* row = plane + iy * g.in_w;
#pragma omp simd reduction(+ : sum)
          for (int64_t ix = w.x_begin; ix < w.x_end; ++ix) sum += row[ix];
        }
        out[oy * g.out_w + ox] = static_cast<float>(sum / w.divisor);
      }
  }
}

void avg_pool_backward(const PoolGeometry& g, bool count_include_pad, const float* dy, float* dx) {
  const int64_t in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
#pragma omp parallel for schedule(static) if (g.planes * std::max(out_plane, in_plane) >= kParallelMin)
  for (int64_t p = 0; p < g.planes; ++p) {
    const float* grad = dy + p * out_plane;
    float* plane = dx + p * in_plane;
    for (int64_t oy = 0; oy < g.out_h; ++oy)
      for (int64_t ox = 0; ox < g.out_w; ++ox) {
        const AverageWindow w = average_window(g, count_include_pad, oy, ox);
        const float share = static_cast<float>(grad[oy * g.out_w + ox] / w.divisor);
        for (int64_t iy = w.y_begin; iy < w.y_end; ++iy) {
          float* row = plane + iy * g.in_w;
#pragma omp simd
          for (int64_t ix = w.x_begin; ix < w.x_end; ++ix) row[ix] += share;
        }
      }
  }
}

}  // namespace fcn::cpu
