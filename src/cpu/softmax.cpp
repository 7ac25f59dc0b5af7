#include "fcn/cpu/softmax.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace fcn::cpu {

namespace {

constexpr int64_t kChunk = 4096;  // pixels per partial loss sum

// Softmax of one pixel (classes strided by `stride`); returns
// -log prob[label] = log(sum_c exp(s_c - m)) - (s_label - m), or 0 when ignored.
double softmax_pixel(const float* score, float* prob, int64_t classes, int64_t stride, int64_t label) {
  float m = score[0];
  for (int64_t c = 1; c < classes; ++c) m = std::max(m, score[c * stride]);
  double total = 0;
  for (int64_t c = 0; c < classes; ++c) {
    const float e = std::exp(score[c * stride] - m);
    prob[c * stride] = e;
    total += e;
  }
  const float inv = static_cast<float>(1.0 / total);
  for (int64_t c = 0; c < classes; ++c) prob[c * stride] *= inv;
  return label < 0 ? 0.0 : std::log(total) - (static_cast<double>(score[label * stride]) - m);
}

}  // namespace

SoftmaxLossSum softmax_loss_forward(const SoftmaxLossGeometry& g, const float* score, const float* label, float* prob) {
  const int64_t chunks_per_image = (g.pixels + kChunk - 1) / kChunk;
  const int64_t chunks = g.n * chunks_per_image;
  std::vector<double> loss(chunks, 0.0);
  std::vector<int64_t> valid(chunks, 0);
  std::vector<double> weight(chunks, 0.0);
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t k = 0; k < chunks; ++k) {
    const int64_t n = k / chunks_per_image, begin = (k % chunks_per_image) * kChunk;
    const int64_t end = std::min(begin + kChunk, g.pixels);
    const int64_t image = n * g.classes * g.pixels;
    for (int64_t p = begin; p < end; ++p) {
      const int64_t l = static_cast<int64_t>(label[n * g.pixels + p]);
      const bool ignored = l == g.ignore_label;
      const double nll = softmax_pixel(score + image + p, prob + image + p, g.classes, g.pixels, ignored ? -1 : l);
      if (ignored) continue;
      const double w = g.class_weights ? g.class_weights[l] : 1.0;
      loss[k] += w * nll;
      weight[k] += w;
      ++valid[k];
    }
  }
  SoftmaxLossSum sum;
  for (int64_t k = 0; k < chunks; ++k) {
    sum.loss += loss[k];
    sum.valid += valid[k];
    sum.weight += weight[k];
  }
  return sum;
}

void softmax_loss_backward_accumulate(const SoftmaxLossGeometry& g, const float* prob, const float* label, float scale,
                                      float* dscore) {
#pragma omp parallel for collapse(2) schedule(static) if (g.n * g.pixels > kChunk)
  for (int64_t n = 0; n < g.n; ++n) {
    for (int64_t p = 0; p < g.pixels; ++p) {
      const int64_t l = static_cast<int64_t>(label[n * g.pixels + p]);
      if (l == g.ignore_label) continue;
      const int64_t base = n * g.classes * g.pixels + p;
      const float pixel_scale = g.class_weights ? scale * g.class_weights[l] : scale;
      // d(-w_l log softmax_l)/d s_c = w_l (prob_c - [c == l])
      for (int64_t c = 0; c < g.classes; ++c) {
        const float onehot = c == l ? 1.f : 0.f;
        dscore[base + c * g.pixels] += pixel_scale * (prob[base + c * g.pixels] - onehot);
      }
    }
  }
}

}  // namespace fcn::cpu
