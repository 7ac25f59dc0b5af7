#include "fcn/cpu/gemm.hpp"

#include <cblas.h>
#include <omp.h>

#include <oneapi/dnnl/dnnl.h>

#include <algorithm>

#include "fcn/cpu/bf16_gemm.hpp"
#include "fcn/core/error.hpp"
#include "fcn/cpu/blas_kernel.hpp"
#include "fcn/cpu/fp32_gemm.hpp"

namespace fcn::cpu {

namespace {

// Below this many multiply-adds a GEMM runs on one thread: waking a team
// costs more than it saves.
constexpr int64_t kParallelMinMacs = int64_t{1} << 20;
// Column/row chunks start on 64-byte boundaries.
constexpr int64_t kAlign = 16;

// Row-major operands with their leading dimensions (row strides).
struct Operands {
  bool trans_a, trans_b;
  int64_t m, n, k;
  float alpha;
  const float* a;
  int64_t lda;
  const float* b;
  int64_t ldb;
  float beta;
  float* c;
  int64_t ldc;
};

// One sgemm call (OpenBLAS's or oneDNN's: fp32_gemm.hpp) on the block
// C[m0:m1, n0:n1] of the full product. Called inside a parallel region,
// oneDNN runs it on the calling thread, as OpenBLAS does at one thread.
void gemm_block(const Operands& o, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const float* a_block = o.trans_a ? o.a + m0 : o.a + m0 * o.lda;  // rows m0.. of op(A)
  const float* b_block = o.trans_b ? o.b + n0 * o.ldb : o.b + n0;  // columns n0.. of op(B)
  if (fp32_gemm() == Fp32Gemm::onednn) {
    const dnnl_status_t status = dnnl_sgemm(o.trans_a ? 'T' : 'N', o.trans_b ? 'T' : 'N', m1 - m0, n1 - n0, o.k,
                                            o.alpha, a_block, o.lda, b_block, o.ldb, o.beta, o.c + m0 * o.ldc + n0, o.ldc);
    if (status != dnnl_success)
      throw Error("internal: oneDNN sgemm failed (status " + std::to_string(static_cast<int>(status)) + ")");
    return;
  }
  cblas_sgemm(CblasRowMajor, o.trans_a ? CblasTrans : CblasNoTrans, o.trans_b ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(m1 - m0), static_cast<blasint>(n1 - n0), static_cast<blasint>(o.k), o.alpha,
              a_block, static_cast<blasint>(o.lda), b_block, static_cast<blasint>(o.ldb), o.beta,
              o.c + m0 * o.ldc + n0, static_cast<blasint>(o.ldc));
}

// The dense leading dimensions: A is [m, k] or [k, m], B [k, n] or [n, k], C [m, n].
Operands dense(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
               const float* b, float beta, float* c) {
  return {trans_a, trans_b, m, n, k, alpha, a, trans_a ? m : k, b, trans_b ? k : n, beta, c, n};
}

void run_gemm(const Operands& o) {
  if (o.m <= 0 || o.n <= 0) return;
  if (omp_in_parallel()) {
    // already on a team (a caller's parallel loop): one plain call
    gemm_block(o, 0, o.m, 0, o.n);
    return;
  }
  const SerialBlasScope serial;
  // split the larger of m and n into one aligned chunk per thread
  const bool split_n = o.n >= o.m;
  const int64_t extent = split_n ? o.n : o.m;
  const int64_t max_chunks = std::max<int64_t>(1, extent / kAlign);
  int64_t threads = std::min<int64_t>(omp_get_max_threads(), max_chunks);
  if (o.m * o.n * o.k < kParallelMinMacs) threads = 1;
  if (threads <= 1) {
    gemm_block(o, 0, o.m, 0, o.n);
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
        gemm_block(o, 0, o.m, lo, hi);
      else
        gemm_block(o, lo, hi, 0, o.n);
    }
  }
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
  if (m > 0 && n > 0) gemm_block(dense(trans_a, trans_b, m, n, k, alpha, a, b, beta, c), 0, m, 0, n);
}

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          const float* b, float beta, float* c) {
  run_gemm(dense(trans_a, trans_b, m, n, k, alpha, a, b, beta, c));
}

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  run_gemm({trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc});
}

namespace {

void run_in(Precision precision, const Operands& o, bool on_this_thread) {
  if (precision == Precision::bf16)
    return gemm_bf16(o.trans_a, o.trans_b, o.m, o.n, o.k, o.alpha, o.a, o.lda, o.b, o.ldb, o.beta, o.c, o.ldc);
  if (on_this_thread) {
    if (o.m > 0 && o.n > 0) gemm_block(o, 0, o.m, 0, o.n);
    return;
  }
  run_gemm(o);
}

}  // namespace

void gemm(Precision precision, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
          const float* a, const float* b, float beta, float* c) {
  run_in(precision, dense(trans_a, trans_b, m, n, k, alpha, a, b, beta, c), false);
}

void gemm(Precision precision, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
          const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  run_in(precision, {trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc}, false);
}

void gemm_on_this_thread(Precision precision, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                         float alpha, const float* a, const float* b, float beta, float* c) {
  run_in(precision, dense(trans_a, trans_b, m, n, k, alpha, a, b, beta, c), true);
}

std::string precision_kernel(Precision precision) {
  return precision == Precision::bf16 ? "oneDNN " + bf16_support().kernel : fp32_gemm_kernel();
}

std::string describe_precision(Precision precision) {
  return precision_name(precision) + " via " + precision_kernel(precision);
}

}  // namespace fcn::cpu
