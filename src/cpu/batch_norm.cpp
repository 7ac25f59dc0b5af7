#include "fcn/cpu/batch_norm.hpp"

#include <algorithm>
#include <cmath>

namespace fcn::cpu {

namespace {

// Below this many elements a pass runs on one thread: waking the team costs more.
constexpr int64_t kParallelMin = 1 << 15;

bool parallel(const BatchNormGeometry& g) { return g.batch * g.channels * g.area >= kParallelMin; }

// Element (n, c, i) of an NCHW blob.
inline int64_t offset(const BatchNormGeometry& g, int64_t n, int64_t c) { return (n * g.channels + c) * g.area; }

}  // namespace

void channel_moments(const BatchNormGeometry& g, const float* x, double* mean, double* var) {
  const double count = static_cast<double>(g.per_channel());
#pragma omp parallel for schedule(static) if (parallel(g))
  for (int64_t c = 0; c < g.channels; ++c) {
    // shifted by one of the channel's values k: var = E[(x-k)^2] - E[x-k]^2
    // in double cancels only as much as (mean - k)^2 / var, a few units for
    // any k drawn from the data, where E[x^2] - mean^2 would cancel mean^2/var
    const double k = x[offset(g, 0, c)];
    double sum = 0, squares = 0;
    for (int64_t n = 0; n < g.batch; ++n) {
      const float* plane = x + offset(g, n, c);
#pragma omp simd reduction(+ : sum, squares)
      for (int64_t i = 0; i < g.area; ++i) {
        const double d = plane[i] - k;
        sum += d;
        squares += d * d;
      }
    }
    const double shift = sum / count;
    mean[c] = k + shift;
    var[c] = std::max(squares / count - shift * shift, 0.0);
  }
}

void batch_norm_forward(const BatchNormGeometry& g, const float* x, const float* mean, const float* scale,
                        const float* beta, float* y, bool rectify) {
#pragma omp parallel for collapse(2) schedule(static) if (parallel(g))
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t c = 0; c < g.channels; ++c) {
      const float* in = x + offset(g, n, c);
      float* out = y + offset(g, n, c);
      const float m = mean[c], a = scale[c], b = beta[c];
      if (rectify) {
#pragma omp simd
        for (int64_t i = 0; i < g.area; ++i) out[i] = std::max((in[i] - m) * a + b, 0.f);
      } else {
#pragma omp simd
        for (int64_t i = 0; i < g.area; ++i) out[i] = (in[i] - m) * a + b;
      }
    }
}

void channel_gradient_sums(const BatchNormGeometry& g, const float* x, const float* dy, const float* mean,
                           double* sum_dy, double* dot) {
#pragma omp parallel for schedule(static) if (parallel(g))
  for (int64_t c = 0; c < g.channels; ++c) {
    double s = 0, d = 0;
    const float m = mean[c];
    for (int64_t n = 0; n < g.batch; ++n) {
      const float* in = x + offset(g, n, c);
      const float* grad = dy + offset(g, n, c);
#pragma omp simd reduction(+ : s, d)
      for (int64_t i = 0; i < g.area; ++i) {
        s += grad[i];
        d += static_cast<double>(in[i] - m) * grad[i];
      }
    }
    sum_dy[c] = s;
    dot[c] = d;
  }
}

void batch_norm_backward_data(const BatchNormGeometry& g, const float* x, const float* dy, const float* mean,
                              const float* invstd, const float* scale, const double* sum_dy, const double* dot,
                              float* dx) {
  const double count = static_cast<double>(g.per_channel());
#pragma omp parallel for collapse(2) schedule(static) if (parallel(g))
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t c = 0; c < g.channels; ++c) {
      const float* in = x + offset(g, n, c);
      const float* grad = dy + offset(g, n, c);
      float* out = dx + offset(g, n, c);
      const float m = mean[c], a = scale[c];
      const float grad_mean = static_cast<float>(sum_dy[c] / count);
      // d var / d x folded with the chain through invstd: dot * invstd^2 / M
      const float k = static_cast<float>(dot[c] * invstd[c] * invstd[c] / count);
#pragma omp simd
      for (int64_t i = 0; i < g.area; ++i) out[i] += (grad[i] - grad_mean - (in[i] - m) * k) * a;
    }
}

void channel_scale_accumulate(const BatchNormGeometry& g, const float* dy, const float* scale, float* dx) {
#pragma omp parallel for collapse(2) schedule(static) if (parallel(g))
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t c = 0; c < g.channels; ++c) {
      const float* grad = dy + offset(g, n, c);
      float* out = dx + offset(g, n, c);
      const float a = scale[c];
#pragma omp simd
      for (int64_t i = 0; i < g.area; ++i) out[i] += grad[i] * a;
    }
}

void fold_batch_norm(int64_t channels, int64_t per_channel, const float* gamma, const float* beta, const float* mean,
                     const float* var, double eps, float* weight, float* bias) {
  for (int64_t o = 0; o < channels; ++o) {
    const double s = gamma[o] / std::sqrt(static_cast<double>(var[o]) + eps);
    float* block = weight + o * per_channel;
    for (int64_t i = 0; i < per_channel; ++i) block[i] = static_cast<float>(block[i] * s);
    bias[o] = static_cast<float>((static_cast<double>(bias[o]) - mean[o]) * s + beta[o]);
  }
}

}  // namespace fcn::cpu
