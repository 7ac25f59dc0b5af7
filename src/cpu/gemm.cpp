#include "cpu/gemm.hpp"

#include <cblas.h>
#include <omp.h>

#include <algorithm>

namespace fcn::cpu {

namespace {

// Below this many multiply-adds a GEMM runs on one thread: waking a team
// costs more than it saves.
constexpr int64_t kParallelMinMacs = int64_t{1} << 20;
// Column/row chunks start on 64-byte boundaries.
constexpr int64_t kAlign = 16;

// One cblas call on the block C[m0:m1, n0:n1] of the full product.
void gemm_block(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                const float* b, float beta, float* c, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const int64_t lda = trans_a ? m : k, ldb = trans_b ? k : n;
  const float* a_block = trans_a ? a + m0 : a + m0 * lda;  // rows m0.. of op(A)
  const float* b_block = trans_b ? b + n0 * ldb : b + n0;  // columns n0.. of op(B)
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(m1 - m0), static_cast<blasint>(n1 - n0), static_cast<blasint>(k), alpha, a_block,
              static_cast<blasint>(lda), b_block, static_cast<blasint>(ldb), beta, c + m0 * n + n0,
              static_cast<blasint>(n));
}

}  // namespace

// fcn runs every parallel loop, GEMMs included, on the one OpenMP team, so
// OpenBLAS's own threads never compete with it for the cores (two thread
// pools on the same cores spin against each other).
SerialBlasScope::SerialBlasScope() : saved_(openblas_get_num_threads()) {
  if (saved_ != 1) openblas_set_num_threads(1);
}

SerialBlasScope::~SerialBlasScope() {
  if (saved_ != 1) openblas_set_num_threads(saved_);
}

void gemm_on_this_thread(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                         const float* b, float beta, float* c) {
  if (m > 0 && n > 0) gemm_block(trans_a, trans_b, m, n, k, alpha, a, b, beta, c, 0, m, 0, n);
}

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          const float* b, float beta, float* c) {
  if (m <= 0 || n <= 0) return;
  if (omp_in_parallel()) {
    // already on a team (a caller's parallel loop): one plain call
    gemm_block(trans_a, trans_b, m, n, k, alpha, a, b, beta, c, 0, m, 0, n);
    return;
  }
  const SerialBlasScope serial;
  // split the larger of m and n into one aligned chunk per thread
  const bool split_n = n >= m;
  const int64_t extent = split_n ? n : m;
  const int64_t max_chunks = std::max<int64_t>(1, extent / kAlign);
  int64_t threads = std::min<int64_t>(omp_get_max_threads(), max_chunks);
  if (m * n * k < kParallelMinMacs) threads = 1;
  if (threads <= 1) {
    gemm_block(trans_a, trans_b, m, n, k, alpha, a, b, beta, c, 0, m, 0, n);
    return;
  }
  const int64_t chunk = (extent + threads - 1) / threads;
  const int64_t step = (chunk + kAlign - 1) / kAlign * kAlign;
#pragma omp parallel num_threads(static_cast<int>(threads))
  {
    const int64_t lo = std::min(extent, omp_get_thread_num() * step);
    const int64_t hi = std::min(extent, lo + step);
    if (lo < hi) {
      if (split_n)
        gemm_block(trans_a, trans_b, m, n, k, alpha, a, b, beta, c, 0, m, lo, hi);
      else
        gemm_block(trans_a, trans_b, m, n, k, alpha, a, b, beta, c, lo, hi, 0, n);
    }
  }
}

}  // namespace fcn::cpu
