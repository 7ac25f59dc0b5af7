#pragma once
// The GEMM wrapper: the only door to sgemm for the layers (OpenBLAS's, or
// oneDNN's where OpenBLAS's kernel lags the CPU: fp32_gemm.hpp), so a second
// backend can replace it without touching them.
//
// Threads: a GEMM runs on the OpenMP team (omp_get_max_threads() threads, one
// block of C's rows or columns each) with OpenBLAS held at one thread per
// call, so the GEMMs and fcn's other parallel loops share one thread pool.
// Called from inside a parallel region it runs on the calling thread.
#include <cstdint>
#include <string>

#include "fcn/core/precision.hpp"

namespace fcn::cpu {

// Row-major C[m, n] = alpha * op(A)[m, k] * op(B)[k, n] + beta * C, where
// op(A) = A^T when trans_a (A stored [k, m]) and likewise for B. The leading
// dimensions are the dense ones: A is [m, k] or [k, m], B is [k, n] or [n, k].
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          const float* b, float beta, float* c);
// The same with explicit leading dimensions (row strides), for blocks of
// larger matrices.
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// For kernels that parallelise over their own blocks and run one GEMM per
// block on each thread: hold a SerialBlasScope around the parallel loop
// (OpenBLAS at one thread while it lives, the caller's setting restored
// after) and call gemm_on_this_thread inside it. Same operands as gemm.
class SerialBlasScope {
 public:
  SerialBlasScope();
  ~SerialBlasScope();
  SerialBlasScope(const SerialBlasScope&) = delete;
  SerialBlasScope& operator=(const SerialBlasScope&) = delete;

 private:
  int saved_;
};
void gemm_on_this_thread(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                         const float* b, float beta, float* c);

// The same three in a precision: fp32 is the calls above, bf16
// rounds A and B to bfloat16 and accumulates in float (bf16_gemm.hpp).
void gemm(Precision precision, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
          const float* a, const float* b, float beta, float* c);
void gemm(Precision precision, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
          const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
void gemm_on_this_thread(Precision precision, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                         float alpha, const float* a, const float* b, float beta, float* c);

// The library that runs a precision's GEMMs, and its kernel:
// "oneDNN avx512_core_bf16" (bf16), "OpenBLAS Cooperlake" or "oneDNN sgemm avx512_core" (fp32).
std::string precision_kernel(Precision precision);
// "bf16 via oneDNN avx512_core_bf16": the training header's and fcn bench's line.
std::string describe_precision(Precision precision);

}  // namespace fcn::cpu
