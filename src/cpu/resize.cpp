#include "fcn/cpu/resize.hpp"

#include <algorithm>
#include <cmath>

namespace fcn::cpu {

namespace {
// Below this many outputs a pass runs on one thread: waking the team costs more.
constexpr int64_t kParallelMin = 1 << 14;
}  // namespace

double resize_source_step(int64_t in, int64_t out, bool align_corners, std::optional<double> scale) {
  if (align_corners) return out > 1 ? static_cast<double>(in - 1) / static_cast<double>(out - 1) : 0.0;
  if (scale) return 1.0 / *scale;
  return static_cast<double>(in) / static_cast<double>(out);
}

LinearAxis linear_axis(int64_t in, int64_t out, double step, bool align_corners) {
  LinearAxis axis;
  axis.size_in = in;
  axis.index0.resize(out);
  axis.index1.resize(out);
  axis.lambda.resize(out);
  for (int64_t o = 0; o < out; ++o) {
    if (out == in) {
      axis.index0[o] = axis.index1[o] = o;
      axis.lambda[o] = 0.f;
      continue;
    }
    const double src = align_corners ? step * static_cast<double>(o)
                                     : std::max(step * (static_cast<double>(o) + 0.5) - 0.5, 0.0);
    const int64_t i0 = std::min(static_cast<int64_t>(src), in - 1);  // src >= 0: the cast floors
    axis.index0[o] = i0;
    axis.index1[o] = i0 + (i0 < in - 1 ? 1 : 0);
    axis.lambda[o] = static_cast<float>(std::clamp(src - static_cast<double>(i0), 0.0, 1.0));
  }
  return axis;
}

void bilinear_forward(const ResizeGeometry& g, const float* x, float* y) {
  const LinearAxis& rows = *g.rows;
  const LinearAxis& cols = *g.cols;
  const int64_t in_h = rows.size_in, in_w = cols.size_in, out_h = rows.size(), out_w = cols.size();
  const int64_t lines = g.planes * out_h;
#pragma omp parallel for schedule(static) if (lines * out_w >= kParallelMin)
  for (int64_t line = 0; line < lines; ++line) {
    const int64_t p = line / out_h, oh = line % out_h;
    const float* top = x + (p * in_h + rows.index0[oh]) * in_w;
    const float* bottom = x + (p * in_h + rows.index1[oh]) * in_w;
    const float h1 = rows.lambda[oh], h0 = 1.f - h1;
    float* out = y + line * out_w;
    for (int64_t ow = 0; ow < out_w; ++ow) {
      const int64_t c0 = cols.index0[ow], c1 = cols.index1[ow];
      const float w1 = cols.lambda[ow], w0 = 1.f - w1;
      // PyTorch's order: rows of the 2x2 taps first, then between them
      out[ow] = h0 * (w0 * top[c0] + w1 * top[c1]) + h1 * (w0 * bottom[c0] + w1 * bottom[c1]);
    }
  }
}

void bilinear_backward_accumulate(const ResizeGeometry& g, const float* dy, float* dx) {
  const LinearAxis& rows = *g.rows;
  const LinearAxis& cols = *g.cols;
  const int64_t in_h = rows.size_in, in_w = cols.size_in, out_h = rows.size(), out_w = cols.size();
  // output rows of one plane scatter into shared input rows: one plane per thread
#pragma omp parallel for schedule(static) if (g.planes * out_h * out_w >= kParallelMin)
  for (int64_t p = 0; p < g.planes; ++p) {
    for (int64_t oh = 0; oh < out_h; ++oh) {
      float* top = dx + (p * in_h + rows.index0[oh]) * in_w;
      float* bottom = dx + (p * in_h + rows.index1[oh]) * in_w;
      const float h1 = rows.lambda[oh], h0 = 1.f - h1;
      const float* grad = dy + (p * out_h + oh) * out_w;
      for (int64_t ow = 0; ow < out_w; ++ow) {
        const int64_t c0 = cols.index0[ow], c1 = cols.index1[ow];
        const float w1 = cols.lambda[ow], w0 = 1.f - w1;
        const float upper = h0 * grad[ow], lower = h1 * grad[ow];
        top[c0] += w0 * upper;
        top[c1] += w1 * upper;
        bottom[c0] += w0 * lower;
        bottom[c1] += w1 * lower;
      }
    }
  }
}

}  // namespace fcn::cpu
