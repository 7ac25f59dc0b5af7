// fp32 GEMMs (cpu::gemm) in both libraries behind them (fp32_gemm.hpp):
// the choice over a table, and each library's product against float64 for
// every transpose, strided operands, alpha and beta, on the OpenMP team and
// on one thread inside a parallel region.
#include <catch2/catch.hpp>

#include <omp.h>

#include <cmath>
#include <random>
#include <vector>

#include "fcn/cpu/fp32_gemm.hpp"
#include "fcn/cpu/gemm.hpp"
#include "reference_conv.hpp"

using namespace fcn::cpu;

namespace {

// Restores the process's choice when a test has set another.
struct BackendScope {
  Fp32Gemm saved = fp32_gemm();
  explicit BackendScope(Fp32Gemm backend) { set_fp32_gemm(backend); }
  ~BackendScope() { set_fp32_gemm(saved); }
};

// C[m, n] (leading dimension ldc) = alpha op(A) op(B) + beta C in double.
std::vector<double> reference(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                              int64_t lda, const float* b, int64_t ldb, float beta, const std::vector<float>& c,
                              int64_t ldc) {
  std::vector<double> out(c.begin(), c.end());
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double sum = 0;
      for (int64_t p = 0; p < k; ++p)
        sum += static_cast<double>(ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]);
      out[i * ldc + j] = alpha * sum + beta * static_cast<double>(c[i * ldc + j]);
    }
  return out;
}

}  // namespace

TEST_CASE("fp32 GEMMs go to oneDNN only where OpenBLAS's kernel is far below the CPU and oneDNN has AVX-512") {
  const auto none = std::nullopt;
  CHECK(decide_fp32_gemm(none, "Cooperlake", "", "avx512_core_bf16").backend == Fp32Gemm::openblas);
  CHECK(decide_fp32_gemm(none, "Haswell", "", "avx2").backend == Fp32Gemm::openblas);
  const Fp32GemmDecision pinned = decide_fp32_gemm(none, "Haswell", "Cooperlake", "avx512_core_bf16");
  CHECK(pinned.backend == Fp32Gemm::onednn);
  CHECK(pinned.reason == "OpenBLAS's Haswell kernel is far below this CPU's Cooperlake");
  // oneDNN capped below AVX-512 (ONEDNN_MAX_CPU_ISA): nothing to gain
  CHECK(decide_fp32_gemm(none, "Haswell", "SkylakeX", "avx2").backend == Fp32Gemm::openblas);
  CHECK(decide_fp32_gemm(std::string("openblas"), "Haswell", "Cooperlake", "avx512_core").backend ==
        Fp32Gemm::openblas);
  CHECK(decide_fp32_gemm(std::string("onednn"), "Cooperlake", "", "avx2").backend == Fp32Gemm::onednn);
}

TEST_CASE("fp32 GEMM in OpenBLAS and in oneDNN: the float64 product, every transpose, strides, alpha and beta") {
  struct Shape {
    int64_t m, n, k;
  };
  // small (one call), and large enough to be split across the team
  const std::vector<Shape> shapes = {{7, 5, 3}, {33, 129, 70}, {150, 260, 96}};
  for (Fp32Gemm backend : {Fp32Gemm::openblas, Fp32Gemm::onednn}) {
    const BackendScope scope(backend);
    INFO(fp32_gemm_kernel());
    std::mt19937_64 rng(3);
    for (const Shape& s : shapes)
      for (int transposes = 0; transposes < 4; ++transposes) {
        const bool ta = transposes & 1, tb = transposes & 2;
        const int64_t lda = (ta ? s.m : s.k) + 3, ldb = (tb ? s.k : s.n) + 5, ldc = s.n + 2;  // padded rows
        const auto a = fcn::testing::random_normal((ta ? s.k : s.m) * lda, rng), b = fcn::testing::random_normal((tb ? s.n : s.k) * ldb, rng);
        const auto c0 = fcn::testing::random_normal(s.m * ldc, rng);
        for (const auto& [alpha, beta] : {std::pair{1.f, 0.f}, std::pair{-0.5f, 1.f}, std::pair{2.f, 0.25f}}) {
          INFO(s.m << "x" << s.n << "x" << s.k << " trans " << ta << tb << " alpha " << alpha << " beta " << beta);
          const auto expected = reference(ta, tb, s.m, s.n, s.k, alpha, a.data(), lda, b.data(), ldb, beta, c0, ldc);
          std::vector<float> c = c0;
          gemm(ta, tb, s.m, s.n, s.k, alpha, a.data(), lda, b.data(), ldb, beta, c.data(), ldc);
          double worst = 0;
          for (int64_t i = 0; i < s.m; ++i)
            for (int64_t j = 0; j < ldc; ++j) {
              const int64_t at = i * ldc + j;
              if (j >= s.n) {
                REQUIRE(c[at] == c0[at]);  // the row padding is not C's
                continue;
              }
              worst = std::max(worst, std::fabs(c[at] - expected[at]) / (std::sqrt(double(s.k)) + 1));
            }
          CHECK(worst < 1e-5);
        }
      }
  }
}

TEST_CASE("fp32 GEMM inside a parallel region runs on the calling thread, in both libraries, with the team's numbers") {
  for (Fp32Gemm backend : {Fp32Gemm::openblas, Fp32Gemm::onednn}) {
    const BackendScope scope(backend);
    INFO(fp32_gemm_kernel());
    std::mt19937_64 rng(9);
    const int64_t m = 64, n = 96, k = 128;
    const auto a = fcn::testing::random_normal(m * k, rng), b = fcn::testing::random_normal(k * n, rng);
    std::vector<float> team(m * n);
    gemm(false, false, m, n, k, 1.f, a.data(), b.data(), 0.f, team.data());
    std::vector<std::vector<float>> each(4, std::vector<float>(m * n));
    {
      const SerialBlasScope serial;
#pragma omp parallel for num_threads(2)
      for (int i = 0; i < 4; ++i) gemm_on_this_thread(false, false, m, n, k, 1.f, a.data(), b.data(), 0.f, each[i].data());
    }
    const auto expected = reference(false, false, m, n, k, 1.f, a.data(), k, b.data(), n, 0.f, team, n);
    for (const auto& c : each)
      for (int64_t i = 0; i < m * n; ++i) REQUIRE(std::fabs(c[i] - expected[i]) < 1e-4);
  }
}
