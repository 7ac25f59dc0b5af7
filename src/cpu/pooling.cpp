#include "cpu/pooling.hpp"

#include <algorithm>
#include <cmath>

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

}  // namespace

void max_pool_forward(const PoolGeometry& g, const float* x, float* y, int32_t* argmax) {
  const int64_t in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
#pragma omp parallel for schedule(static) if (g.planes * out_plane >= kParallelMin)
  for (int64_t p = 0; p < g.planes; ++p) {
    const float* plane = x + p * in_plane;
    float* out = y + p * out_plane;
    int32_t* arg = argmax + p * out_plane;
    for (int64_t oy = 0; oy < g.out_h; ++oy)
      for (int64_t ox = 0; ox < g.out_w; ++ox)
        pool_window(g, plane, oy, ox, out[oy * g.out_w + ox], arg[oy * g.out_w + ox]);
  }
}

void max_pool_backward(const PoolGeometry& g, const float* dy, const int32_t* argmax, float* dx) {
  const int64_t in_plane = g.in_h * g.in_w, out_plane = g.out_h * g.out_w;
#pragma omp parallel for schedule(static) if (g.planes * out_plane >= kParallelMin)
  for (int64_t p = 0; p < g.planes; ++p) {
    const float* grad = dy + p * out_plane;
    const int32_t* arg = argmax + p * out_plane;
    float* plane = dx + p * in_plane;
    for (int64_t o = 0; o < out_plane; ++o) plane[arg[o]] += grad[o];
  }
}

}  // namespace fcn::cpu
