#include "fcn/cpu/softmax.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace fcn::cpu {

namespace {

constexpr int64_t kChunk = 4096;  // pixels per partial loss sum
// Pixels one pass over the class planes handles: its per-pixel max, sum and
// label stay in L1 while the planes stream through.
constexpr int64_t kBlock = 256;

// exp(x) for x <= 0 in a loop the compiler vectorises (std::exp does not
// without -ffast-math): Cephes' expf. x = n ln2 + r with |r| <= ln2/2, ln2
// split in two so that r is exact; exp(r) by its degree-6 minimax polynomial,
// within 2 ulp of exp. Below -87.3 the result is 2^-126 times exp(r) (the
// smallest normal float's scale) instead of a denormal: 1e-38 against a sum
// of at least 1.
inline float exp_nonpositive(float x) {
  x = x < -87.3f ? -87.3f : x;
  const float n = std::floor(x * 1.44269504088896341f + 0.5f);
  const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.f;
  // 2^n as a float's exponent bits: n is in [-126, 0]
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

// Softmax of the pixels [0, count) of one image's class planes (plane c at
// score + c * stride) into prob; adds w[label] * -log prob[label], w[label]
// and the count of the labelled pixels to the chunk's sums.
void softmax_block(const SoftmaxLossGeometry& g, const float* score, const float* label, float* prob, int64_t count,
                   double& loss, double& weight, int64_t& valid) {
  float m[kBlock];
  double total[kBlock];
  const int64_t stride = g.pixels;
  std::copy(score, score + count, m);
  for (int64_t c = 1; c < g.classes; ++c) {
    const float* s = score + c * stride;
#pragma omp simd
    for (int64_t p = 0; p < count; ++p) m[p] = std::max(m[p], s[p]);
  }
  std::fill(total, total + count, 0.0);
  for (int64_t c = 0; c < g.classes; ++c) {
    const float* s = score + c * stride;
    float* e = prob + c * stride;
#pragma omp simd
    for (int64_t p = 0; p < count; ++p) {
      e[p] = exp_nonpositive(s[p] - m[p]);
      total[p] += e[p];
    }
  }
  float inv[kBlock];
#pragma omp simd
  for (int64_t p = 0; p < count; ++p) inv[p] = static_cast<float>(1.0 / total[p]);
  for (int64_t c = 0; c < g.classes; ++c) {
    float* e = prob + c * stride;
#pragma omp simd
    for (int64_t p = 0; p < count; ++p) e[p] *= inv[p];
  }
  // -log prob[label] = log(sum_c exp(s_c - m)) - (s_label - m)
  for (int64_t p = 0; p < count; ++p) {
    const int64_t l = static_cast<int64_t>(label[p]);
    if (l == g.ignore_label) continue;
    const double nll = std::log(total[p]) - (static_cast<double>(score[l * stride + p]) - m[p]);
    const double w = g.class_weights ? g.class_weights[l] : 1.0;
    loss += w * nll;
    weight += w;
    ++valid;
  }
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
    for (int64_t p = begin; p < end; p += kBlock)
      softmax_block(g, score + image + p, label + n * g.pixels + p, prob + image + p, std::min(kBlock, end - p),
                    loss[k], weight[k], valid[k]);
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
  const int64_t blocks_per_image = (g.pixels + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (g.n * g.pixels > kChunk)
  for (int64_t k = 0; k < g.n * blocks_per_image; ++k) {
    const int64_t n = k / blocks_per_image, begin = (k % blocks_per_image) * kBlock;
    const int64_t count = std::min(kBlock, g.pixels - begin);
    const float* labels = label + n * g.pixels + begin;
    const int64_t base = n * g.classes * g.pixels + begin;
    // scale * w[label] per pixel, 0 where ignored; class -1 matches no plane
    float pixel_scale[kBlock];
    int32_t target[kBlock];
    for (int64_t p = 0; p < count; ++p) {
      const int64_t l = static_cast<int64_t>(labels[p]);
      const bool ignored = l == g.ignore_label;
      target[p] = ignored ? -1 : static_cast<int32_t>(l);
      pixel_scale[p] = ignored ? 0.f : g.class_weights ? scale * g.class_weights[l] : scale;
    }
    // d(-w_l log softmax_l)/d s_c = w_l (prob_c - [c == l])
    for (int64_t c = 0; c < g.classes; ++c) {
      const float* pc = prob + base + c * g.pixels;
      float* dc = dscore + base + c * g.pixels;
#pragma omp simd
      for (int64_t p = 0; p < count; ++p) {
        const float onehot = target[p] == c ? 1.f : 0.f;
        const float term = pixel_scale[p] * (pc[p] - onehot);
        dc[p] += target[p] < 0 ? 0.f : term;
      }
    }
  }
}

}  // namespace fcn::cpu
