// model.precision "bf16" (fcn/cpu/bf16_gemm.hpp): the rounding, the oneDNN
// GEMMs against a float64 product of the rounded operands, each kind of
// conv at photo-sized shapes in bf16 against fp32 on the same inputs, and
// whole FCN-8s nets in bf16 against the same nets in fp32. On a CPU without
// native bf16 the cases that need it exit 77, which ctest reports as skipped.
//
// The bars. One conv, same inputs (what fcn's bf16 GEMMs control): output
// within 1e-2 relative, input and weight gradients at cosine >= 0.999 to
// fp32. The whole net: scores within 3e-2 relative, argmax agreeing on
// >= 99% of the pixels at full width, and every parameter gradient at cosine
// >= 0.98. Measured on a whole net, the gradients' deviation comes from the
// forward, not from the backward GEMMs: a bf16 forward moves activations by
// ~0.5%, which flips some ReLU and max-pool decisions, and each flip passes
// or blocks a whole gradient value. With the forward in fp32 and the
// backward in bf16 every gradient here is at cosine > 0.999; with both in
// bf16 the worst is ~0.985-0.99. PyTorch's own bf16 autocast on the same
// nets, sizes and kind of input (tools/torch_fcn_ref.py, msra weights)
// measures the same: worst gradient cosine 0.9927 (width 1/4, 101x93) and
// 0.9895 (full width, 64x80), argmax agreement 98.9% and 99.98%. Hence 0.98
// for whole-net gradients, and 98.5% argmax at width 1/4 with random weights
// (whose scores have small margins).
#include <catch2/catch.hpp>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "fcn/cpu/bf16_gemm.hpp"
#include "fcn/cpu/convolution.hpp"
#include "fcn/cpu/gemm.hpp"
#include "fcn/graph/graph.hpp"
#include "fcn/data/synthetic.hpp"
#include "fcn/model/model_zoo.hpp"

using namespace fcn;

namespace {

// Every Catch2 case runs in its own process under ctest: leaving with 77
// marks this case skipped (SKIP_RETURN_CODE) and no other.
void skip_without_bf16() {
  if (cpu::bf16_support().available) return;
  std::printf("SKIP: %s\n", cpu::bf16_support().missing.c_str());
  std::fflush(stdout);
  std::_Exit(77);
}

float from_bits(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

float rounded(float value) {
  uint16_t half;
  cpu::round_to_bf16(&value, &half, 1);
  return cpu::bf16_to_float(half);
}

std::vector<float> random_matrix(int64_t count, std::mt19937_64& rng) {
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> values(static_cast<size_t>(count));
  for (float& v : values) v = normal(rng);
  return values;
}

// C = alpha * op(A) op(B) + beta * C0 in float64 over the bf16-rounded A and B
// (round = false: over A and B as they are); also sum |op(A)| |op(B)| per element.
struct Reference {
  std::vector<double> c, magnitude;
};
// Rows 0, step, 2 step, ... and the last: the row after i (m when i is the last).
int64_t next_sampled_row(int64_t i, int64_t m, int64_t step) { return i + step < m || i == m - 1 ? i + step : m - 1; }
Reference reference_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                         const std::vector<float>& a, int64_t lda, const std::vector<float>& b, int64_t ldb,
                         float beta, const std::vector<float>& c0, int64_t ldc, bool round,
                         int64_t row_step = 1) {
  Reference out{std::vector<double>(m * n), std::vector<double>(m * n)};
  // op(A) as [m][k] and op(B) as [n][k], rounded when asked: the loop below reads rows
  std::vector<double> a_rows(m * k), b_rows(n * k);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t p = 0; p < k; ++p) {
      const float x = trans_a ? a[p * lda + i] : a[i * lda + p];
      a_rows[i * k + p] = round ? rounded(x) : x;
    }
  for (int64_t j = 0; j < n; ++j)
    for (int64_t p = 0; p < k; ++p) {
      const float y = trans_b ? b[j * ldb + p] : b[p * ldb + j];
      b_rows[j * k + p] = round ? rounded(y) : y;
    }
  for (int64_t i = 0; i < m; i = next_sampled_row(i, m, row_step))
    for (int64_t j = 0; j < n; ++j) {
      double sum = 0, magnitude = 0;
      for (int64_t p = 0; p < k; ++p) {
        const double x = a_rows[i * k + p], y = b_rows[j * k + p];
        sum += x * y;
        magnitude += std::fabs(x * y);
      }
      out.c[i * n + j] = alpha * sum + beta * static_cast<double>(c0[i * ldc + j]);
      out.magnitude[i * n + j] = std::fabs(alpha) * magnitude + std::fabs(beta * c0[i * ldc + j]);
    }
  return out;
}

}  // namespace

TEST_CASE("round_to_bf16 rounds to nearest even, keeps NaN, infinities and signed zeros") {
  // each pattern at several places of a 37-float run, so that the vector body and its tail both see it
  const std::vector<std::pair<uint32_t, uint16_t>> cases = {
      {0x3f800000u, 0x3f80},  // 1
      {0x3f808000u, 0x3f80},  // 1 + 2^-8: a tie, the even neighbour is below
      {0x3f818000u, 0x3f82},  // a tie whose even neighbour is above
      {0x3f808001u, 0x3f81},  // just above a tie: up
      {0x3f807fffu, 0x3f80},  // just below a tie: down
      {0xbf818000u, 0xbf82},  // negative ties mirror
      {0x7f7fffffu, 0x7f80},  // the largest float rounds to infinity
      {0x7f800000u, 0x7f80},  // +inf
      {0xff800000u, 0xff80},  // -inf
      {0x80000000u, 0x8000},  // -0
      {0x00000001u, 0x0000},  // the smallest subnormal rounds to zero
  };
  for (size_t place : {0u, 5u, 15u, 16u, 31u, 36u}) {
    for (const auto& [in, expected] : cases) {
      std::vector<float> run(37, 2.5f);
      run[place] = from_bits(in);
      std::vector<uint16_t> out(37);
      cpu::round_to_bf16(run.data(), out.data(), 37);
      INFO("input 0x" << std::hex << in << " at " << std::dec << place);
      CHECK(out[place] == expected);
      CHECK(out[(place + 1) % 37] == 0x4020);  // 2.5
    }
    std::vector<float> nan_run(37, 1.f);
    nan_run[place] = from_bits(0x7f800001u);  // a NaN whose payload is below bf16's mantissa
    std::vector<uint16_t> out(37);
    cpu::round_to_bf16(nan_run.data(), out.data(), 37);
    CHECK(std::isnan(cpu::bf16_to_float(out[place])));
  }
}

namespace {

// gemm(Precision::bf16) on random operands in strided blocks against
// reference_gemm: within 2e-6 of the magnitude of the rounded
// operands' product, more than `rounding_floor` away from the unrounded one
// (bf16's error, which averages down over a long k), and C's padding untouched.
// Rows 0, row_step, 2 row_step, ... and the last are compared (a deep GEMM of
// many rows takes minutes in the float64 reference).
void check_gemm_bf16(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, float beta,
                     std::mt19937_64& rng, double rounding_floor = 1e-4, int64_t row_step = 1, bool dense_c = false) {
  // leading dimensions wider than the matrices: blocks of larger ones (C's rows dense when asked)
  const int64_t lda = (trans_a ? m : k) + 3, ldb = (trans_b ? k : n) + 5, ldc = dense_c ? n : n + 2;
  const auto a = random_matrix((trans_a ? k : m) * lda, rng);
  const auto b = random_matrix((trans_b ? n : k) * ldb, rng);
  const auto c0 = random_matrix(m * ldc, rng);
  std::vector<float> c = c0;
  cpu::gemm(Precision::bf16, trans_a, trans_b, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, c.data(), ldc);
  const Reference rounded_ref =
      reference_gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c0, ldc, true, row_step);
  const Reference exact = reference_gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c0, ldc, false, row_step);
  double worst = 0, worst_unrounded = 0;
  for (int64_t i = 0; i < m; i = next_sampled_row(i, m, row_step))
    for (int64_t j = 0; j < n; ++j) {
      const double scale = rounded_ref.magnitude[i * n + j] + 1e-30;
      worst = std::max(worst, std::fabs(c[i * ldc + j] - rounded_ref.c[i * n + j]) / scale);
      worst_unrounded = std::max(worst_unrounded, std::fabs(c[i * ldc + j] - exact.c[i * n + j]) / scale);
    }
  INFO(m << "x" << n << "x" << k << " trans_a " << trans_a << " trans_b " << trans_b << " alpha " << alpha
         << " beta " << beta);
  INFO("worst " << worst << ", unrounded " << worst_unrounded);
  // float accumulation of rounded products: a few float ulps of the magnitude
  CHECK(worst < 2e-6);
  // and the operands really were rounded: the unrounded product is bf16's error away
  CHECK(worst_unrounded > rounding_floor);
  // the padding between rows of C is not written
  int64_t padding_written = 0;
  for (int64_t i = 0; !dense_c && i < m; ++i) padding_written += c[i * ldc + n] != c0[i * ldc + n];
  CHECK(padding_written == 0);
}

}  // namespace

TEST_CASE("round_to_bf16_parallel with streaming stores writes the bits of round_to_bf16 wherever out starts") {
  // three chunks of the team's split and a tail; out at every 2-byte offset of a cache line, so that the
  // streamed body (whole 64-byte lines), its unaligned head and its tail all run; NaNs and ties among the values
  std::mt19937_64 rng(3);
  const int64_t count = 3 * (int64_t{1} << 16) + 77;
  std::vector<float> in = random_matrix(count, rng);
  for (int64_t i = 0; i < count; i += 997) in[i] = from_bits(i % 2 ? 0x7fc00001u : 0x3f808000u);
  std::vector<uint16_t> expected(count);
  cpu::round_to_bf16(in.data(), expected.data(), count);
  std::vector<uint16_t> buffer(count + 64);
  for (int offset : {0, 1, 7, 31}) {
    uint16_t* out = buffer.data() + (64 - reinterpret_cast<uintptr_t>(buffer.data()) % 64) / 2 + offset;
    std::fill(buffer.begin(), buffer.end(), uint16_t{0xdead});
    cpu::round_to_bf16_parallel(in.data(), out, count, true);
    int64_t differing = 0;
    for (int64_t i = 0; i < count; ++i) differing += out[i] != expected[i];
    INFO("out " << offset << " values past a cache line's start");
    CHECK(differing == 0);
    CHECK(out[count] == 0xdead);  // nothing past the end
  }
}

TEST_CASE("gemm_bf16 equals the float64 product of the rounded operands: transposes, strides, alpha, beta") {
  skip_without_bf16();
  std::mt19937_64 rng(7);
  for (bool trans_a : {false, true})
    for (bool trans_b : {false, true})
      for (auto [alpha, beta] : {std::pair<float, float>{1.f, 0.f}, {1.f, 1.f}, {0.5f, -2.f}})
        check_gemm_bf16(trans_a, trans_b, 37, 53, 300, alpha, beta, rng);
}

TEST_CASE("gemm_bf16 run as several GEMMs (rows, depth added into C, columns of a transposed B), or deep with B blocked, gives the product") {
  // the shapes just past each split's threshold (bf16_gemm.cpp, run_in_chunks),
  // so that a part comes out shorter than the others
  skip_without_bf16();
  std::mt19937_64 rng(11);
  for (bool trans_a : {false, true}) {
    check_gemm_bf16(trans_a, false, 16384 + 100, 24, 40, 0.5f, 1.f, rng);  // rows: two parts
    for (bool trans_b : {false, true})  // depth: five parts, the later ones added into C
      check_gemm_bf16(trans_a, trans_b, 1024 + 5, 2, 16384 + 700, 0.5f, -2.f, rng, 2e-5);
    check_gemm_bf16(trans_a, true, 1024 + 3, 520, 1024, 1.f, 0.f, rng);  // columns of B^T, 256 at depth 1024: three parts
  }
  // the same depth with B of 64 columns and C's rows dense: B rounded into the pair-interleaved layout and
  // one GEMM (takes_blocked_b); with C strided, the depth parts (oneDNN would take its reference
  // implementation for the blocked B, and gemm_bf16 keeps the parts)
  for (bool dense_c : {true, false}) check_gemm_bf16(false, false, 1024 + 5, 64, 16384 + 80, 1.f, -2.f, rng, 2e-5, 31, dense_c);
}

TEST_CASE("gemm_bf16 through more shapes than a thread keeps bound, then the first ones again, on new operands") {
  // each thread keeps its 64 most recent primitives with their memory objects
  // bound (bf16_gemm.cpp, bound_matmul_for): the 80 shapes push the first ones
  // out, and their second round rebinds them; every call's operands are new
  // buffers, so a handle left from an earlier call would give a wrong product
  skip_without_bf16();
  std::mt19937_64 rng(13);
  for (int round = 0; round < 2; ++round)
    for (int64_t n = 1; n <= 80; n += round == 0 ? 1 : 9) check_gemm_bf16(false, false, 5, n, 300, 1.f, 0.f, rng);
}

TEST_CASE("gemm_bf16 gives the same bits on the team, on one thread, and from several threads at once") {
  skip_without_bf16();
  std::mt19937_64 rng(11);
  const int64_t m = 256, n = 300, k = 512;
  const auto a = random_matrix(m * k, rng);
  const auto b = random_matrix(k * n, rng);
  std::vector<float> team(m * n), single(m * n);
  cpu::gemm(Precision::bf16, false, false, m, n, k, 1.f, a.data(), b.data(), 0.f, team.data());
  const int threads = std::max(2, omp_get_max_threads());
  std::vector<std::vector<float>> each(threads, std::vector<float>(m * n));
#pragma omp parallel num_threads(threads)
  cpu::gemm_on_this_thread(Precision::bf16, false, false, m, n, k, 1.f, a.data(), b.data(), 0.f,
                           each[omp_get_thread_num()].data());
  cpu::gemm_on_this_thread(Precision::bf16, false, false, m, n, k, 1.f, a.data(), b.data(), 0.f, single.data());
  for (const auto& result : each) CHECK(result == single);
  // the team may split the sum differently than one thread: equal to float rounding
  double worst = 0;
  for (int64_t i = 0; i < m * n; ++i) worst = std::max(worst, static_cast<double>(std::fabs(team[i] - single[i])));
  CHECK(worst < 1e-3);
}

TEST_CASE("a held RoundedCopy is what the bf16 GEMMs read until it is released") {
  skip_without_bf16();
  std::mt19937_64 rng(13);
  const int64_t m = 64, n = 48, k = 96;
  auto a = random_matrix(m * k, rng);
  const auto b = random_matrix(k * n, rng);
  std::vector<float> before(m * n), held(m * n), after(m * n), fresh(m * n);
  cpu::gemm(Precision::bf16, false, false, m, n, k, 1.f, a.data(), b.data(), 0.f, before.data());
  cpu::RoundedCopy copy;
  copy.hold(Precision::bf16, a.data(), m * k);
  // the weight moves (as a solver step would) while the copy is held: the
  // GEMMs, and a RoundedOperand over it, still read the held rounding
  for (float& v : a) v *= 3.f;
  {
    const cpu::RoundedOperand operand(Precision::bf16, a.data(), m * k);
    cpu::gemm(Precision::bf16, false, false, m, n, k, 1.f, a.data(), b.data(), 0.f, held.data());
  }
  CHECK(held == before);
  copy.release();
  cpu::gemm(Precision::bf16, false, false, m, n, k, 1.f, a.data(), b.data(), 0.f, after.data());
  CHECK(after != before);
  // released: the same as rounding the new values, and a hold of them agrees
  copy.hold(Precision::bf16, a.data(), m * k);
  cpu::gemm(Precision::bf16, false, false, m, n, k, 1.f, a.data(), b.data(), 0.f, fresh.data());
  CHECK(fresh == after);
  // fp32 holds nothing
  cpu::RoundedCopy none;
  none.hold(Precision::fp32, b.data(), k * n);
}

TEST_CASE("a RoundedCopy held with interleaved rows keeps round_to_bf16's bits in both layouts") {
  skip_without_bf16();
  // a small weight (stored plainly) and one of 32 M values (streamed); NaNs and ties among the values
  for (const auto& [rows, cols] : {std::pair<int64_t, int64_t>{32, 192}, {1024, 32768}}) {
    const int64_t count = rows * cols;
    std::vector<float> weight(count);
    for (int64_t i = 0; i < count; ++i) weight[i] = static_cast<float>((i * 7919) % 2003) / 997.f - 1.f;
    for (int64_t i = 0; i < count; i += 997) weight[i] = from_bits(i % 2 ? 0x7fc00001u : 0x3f808000u);
    std::vector<uint16_t> expected(count);
    cpu::round_to_bf16(weight.data(), expected.data(), count);
    cpu::RoundedCopy copy;
    copy.hold(Precision::bf16, weight.data(), count, rows);
    const uint16_t* interleaved = cpu::interleaved_rounding(weight.data(), count);
    REQUIRE(interleaved != nullptr);
    int64_t differing = 0;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c)
        differing += interleaved[cpu::vnni_offset(r, c, rows)] != expected[r * cols + c];
    INFO(rows << " x " << cols);
    CHECK(differing == 0);
    // the plain copy, as the GEMMs read it: the held rows times an identity give its first and last 64 columns
    const int64_t n = 64;
    std::vector<float> identity(n * n, 0.f), picked(rows * n);
    for (int64_t i = 0; i < n; ++i) identity[i * n + i] = 1.f;
    for (int64_t first : {int64_t{0}, cols - n}) {
      cpu::gemm(Precision::bf16, false, false, rows, n, n, 1.f, weight.data() + first, cols, identity.data(), n, 0.f,
                picked.data(), n);
      int64_t wrong = 0, checked = 0;
      for (int64_t r = 0; r < rows; ++r) {
        const uint16_t* row = expected.data() + r * cols + first;
        if (std::any_of(row, row + n, [](uint16_t v) { return std::isnan(cpu::bf16_to_float(v)); }))
          continue;  // NaN times the identity's zeros spreads over the row (the interleaved check has them)
        for (int64_t c = 0; c < n; ++c) wrong += picked[r * n + c] != cpu::bf16_to_float(row[c]);
        ++checked;
      }
      CHECK(checked > rows / 2);
      CHECK(wrong == 0);
    }
    copy.release();
    CHECK(cpu::interleaved_rounding(weight.data(), count) == nullptr);
  }
  // without interleaved rows there is none
  std::vector<float> small(32 * 64, 1.f);
  cpu::RoundedCopy plain;
  plain.hold(Precision::bf16, small.data(), 32 * 64);
  CHECK(cpu::interleaved_rounding(small.data(), 32 * 64) == nullptr);
}

TEST_CASE("gemm_bf16_rounded over operands rounded by round_lanes_to_bf16 equals gemm_bf16") {
  skip_without_bf16();
  std::mt19937_64 rng(17);
  const int64_t m = 40, n = 37, k = 64;  // n not a multiple of 16: partial lane groups
  for (bool trans_b : {false, true}) {
    const auto a = random_matrix(m * k, rng);
    const auto b = random_matrix(k * n, rng);  // [k, n], or [n, k] when trans_b
    const int64_t b_rows = trans_b ? n : k, b_cols = trans_b ? k : n, ldb = b_cols + 32;  // strided rows
    std::vector<uint16_t> a16(m * k), b16(b_rows * ldb, 0xffff);
    cpu::round_to_bf16(a.data(), a16.data(), m * k);
    // B as a transform writes it: 16 lanes at a time, one lane vector per row
    for (int64_t col = 0; col < b_cols; col += 16) {
      const int lanes = static_cast<int>(std::min<int64_t>(16, b_cols - col));
      std::vector<float> lane_rows(b_rows * 16, 0.f);
      for (int64_t r = 0; r < b_rows; ++r)
        for (int l = 0; l < lanes; ++l) lane_rows[r * 16 + l] = b[r * b_cols + col + l];
      cpu::round_lanes_to_bf16(lane_rows.data(), lanes, static_cast<int>(b_rows), b16.data() + col, ldb);
    }
    for (int64_t r = 0; r < b_rows; ++r) CHECK(b16[r * ldb + b_cols] == 0xffff);  // past the lanes: untouched
    std::vector<float> expected(m * n), got(m * n, 7.f);
    cpu::gemm(Precision::bf16, false, trans_b, m, n, k, 1.f, a.data(), b.data(), 0.f, expected.data());
    cpu::gemm_bf16_rounded(false, trans_b, m, n, k, a16.data(), k, b16.data(), ldb, 0.f, got.data(), n);
    INFO("trans_b " << trans_b);
    double worst = 0;
    for (int64_t i = 0; i < m * n; ++i) worst = std::max(worst, static_cast<double>(std::fabs(got[i] - expected[i])));
    CHECK(worst < 1e-4);  // same rounded operands; the kernels may sum in another order
    // beta 1 adds to C
    std::vector<float> twice = got;
    cpu::gemm_bf16_rounded(false, trans_b, m, n, k, a16.data(), k, b16.data(), ldb, 1.f, twice.data(), n);
    for (int64_t i = 0; i < m * n; ++i) CHECK(twice[i] == Approx(2.f * got[i]).margin(1e-4));
  }
}

TEST_CASE("a B written lane group by lane group in the pair-interleaved layout feeds the blocked-B GEMM") {
  skip_without_bf16();
  std::mt19937_64 rng(19);
  // k a multiple of 16, n of 64; groups start anywhere, cross 64-column blocks and end short, as Winograd's
  // tile groups do (they never straddle a run of tiles)
  const int64_t m = 48, n = 192, k = 32;
  const auto a = random_matrix(m * k, rng);
  const auto b = random_matrix(k * n, rng);  // row-major [k, n]
  std::vector<uint16_t> a16(m * k), blocked(k * n, 0xffff);
  cpu::round_to_bf16(a.data(), a16.data(), m * k);
  const std::vector<int> group_lengths = {16, 5, 16, 16, 13, 16, 1, 16, 9};
  for (int64_t row = 0; row < k; ++row) {
    for (int64_t col = 0, g = row % 3; col < n; ++g) {
      const int lanes = static_cast<int>(std::min<int64_t>(group_lengths[g % group_lengths.size()], n - col));
      float lane_row[16] = {};
      for (int l = 0; l < lanes; ++l) lane_row[l] = b[row * n + col + l];
      for (int l = lanes; l < 16; ++l) lane_row[l] = 1e30f;  // past the group: must not be stored
      cpu::round_lanes_to_bf16_interleaved(lane_row, 1, cpu::interleaved_lanes(blocked.data(), k, row, col, lanes), 0);
      col += lanes;
    }
  }
  // every element where vnni_offset puts it, and nothing else written
  for (int64_t row = 0; row < k; ++row)
    for (int64_t col = 0; col < n; ++col)
      REQUIRE(cpu::bf16_to_float(blocked[cpu::vnni_offset(row, col, k)]) == rounded(b[row * n + col]));
  std::vector<float> expected(m * n), got(m * n, 7.f);
  cpu::gemm(Precision::bf16, false, false, m, n, k, 1.f, a.data(), b.data(), 0.f, expected.data());
  cpu::gemm_bf16_rounded_blocked_b(false, m, n, k, a16.data(), k, blocked.data(), 0.f, got.data(), n);
  for (int64_t i = 0; i < m * n; ++i) REQUIRE(got[i] == Approx(expected[i]).margin(1e-4));
  // A read transposed (stored [k, m]) and beta 1
  std::vector<uint16_t> a16_t(k * m);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t p = 0; p < k; ++p) a16_t[p * m + i] = a16[i * k + p];
  std::vector<float> twice = got;
  cpu::gemm_bf16_rounded_blocked_b(true, m, n, k, a16_t.data(), m, blocked.data(), 1.f, twice.data(), n);
  for (int64_t i = 0; i < m * n; ++i) REQUIRE(twice[i] == Approx(2.f * expected[i]).margin(2e-4));
  CHECK_THROWS(cpu::gemm_bf16_rounded_blocked_b(false, m, 100, k, a16.data(), k, blocked.data(), 0.f, got.data(), n));
}

TEST_CASE("rows written two at a time in the pair-interleaved layout equal rows written one at a time") {
  skip_without_bf16();
  std::mt19937_64 rng(23);
  // two B matrices (count 2, `stride` apart), 32 rows, 192 columns; groups as in the test above
  const int64_t k = 32, n = 192, stride = k * n + 32;
  const auto b = random_matrix(2 * k * n, rng);  // [2][k][n]
  std::vector<uint16_t> singles(2 * stride, 0xffff), pairs(2 * stride, 0xffff);
  const std::vector<int> group_lengths = {16, 5, 16, 16, 13, 16, 1, 16, 9};
  for (int64_t row = 0; row < k; row += 2) {
    for (int64_t col = 0, g = row % 3; col < n; ++g) {
      const int lanes = static_cast<int>(std::min<int64_t>(group_lengths[g % group_lengths.size()], n - col));
      float even[2][16], odd[2][16];  // [matrix][lane]
      for (int mat = 0; mat < 2; ++mat)
        for (int l = 0; l < 16; ++l) {  // past the group: must not be stored
          even[mat][l] = l < lanes ? b[(mat * k + row) * n + col + l] : 1e30f;
          odd[mat][l] = l < lanes ? b[(mat * k + row + 1) * n + col + l] : 1e30f;
        }
      cpu::round_lanes_to_bf16_interleaved(even[0], 2, cpu::interleaved_lanes(singles.data(), k, row, col, lanes), stride);
      cpu::round_lanes_to_bf16_interleaved(odd[0], 2, cpu::interleaved_lanes(singles.data(), k, row + 1, col, lanes),
                                           stride);
      cpu::round_lane_pairs_to_bf16_interleaved(even[0], odd[0], 2,
                                                cpu::interleaved_lanes(pairs.data(), k, row, col, lanes), stride);
      col += lanes;
    }
  }
  CHECK(pairs == singles);
  for (int mat = 0; mat < 2; ++mat)
    for (int64_t row = 0; row < k; ++row)
      for (int64_t col = 0; col < n; ++col)
        REQUIRE(cpu::bf16_to_float(pairs[mat * stride + cpu::vnni_offset(row, col, k)]) ==
                rounded(b[(mat * k + row) * n + col]));
  CHECK_THROWS(cpu::round_lane_pairs_to_bf16_interleaved(b.data(), b.data(), 1,
                                                         cpu::interleaved_lanes(pairs.data(), k, 1, 0, 16), 0));
}

namespace {

// One train-mode forward and backward of the zoo's FCN-8s in a precision,
// with the same weights and input in both (init seed, data seed).
struct NetRun {
  std::vector<float> scores;  // [C, H, W]
  int64_t classes = 0, pixels = 0;
  std::vector<std::pair<std::string, std::vector<float>>> grads;  // trainable params in order
};

NetRun run_fcn8s(Precision precision, double width, int64_t h, int64_t w) {
  ModelSpec spec;
  spec.arch = "fcn8s";
  spec.width = width;
  spec.num_classes = 21;
  spec.dropout = 0.0;                       // no random masks to tell the two runs apart
  spec.score_init = {{"type", "msra"}};     // zero score layers would leave the trunk's gradients 0
  GraphOptions options;
  options.precision = precision;
  Graph graph(build_fcn_graph(spec), "model", options);
  graph.reshape({{"data", {1, 3, h, w}}, {"label", {1, 1, h, w}}});
  graph.init_params(1234);
  // a scene as users feed: the synthetic set's shapes and textures, mean-subtracted BGR, its labels
  SyntheticSpec scene;
  scene.height = static_cast<int>(h);
  scene.width = static_cast<int>(w);
  const SyntheticSample sample = render_synthetic_sample(scene, 3);
  Tensor& data = graph.blob("data");
  Tensor& labels = graph.blob("label");
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      for (int c = 0; c < 3; ++c)
        data.data()[(c * h + y) * w + x] = static_cast<float>(sample.image.at(y, x, c)) - 110.f;
      labels.data()[y * w + x] = static_cast<float>(sample.label.at(y, x));
    }
  graph.zero_param_grads();
  graph.forward(Mode::train);
  graph.backward();
  NetRun run;
  const Tensor& score = graph.blob("score");
  run.classes = score.shape()[1];
  run.pixels = score.shape()[2] * score.shape()[3];
  run.scores.assign(score.data(), score.data() + score.numel());
  for (Param* p : graph.params())
    if (p->grad.numel() > 0) run.grads.push_back({p->name, std::vector<float>(p->grad.data(), p->grad.data() + p->grad.numel())});
  return run;
}

double cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double dot = 0, norm_a = 0, norm_b = 0;
  for (size_t j = 0; j < a.size(); ++j) {
    dot += static_cast<double>(a[j]) * b[j];
    norm_a += static_cast<double>(a[j]) * a[j];
    norm_b += static_cast<double>(b[j]) * b[j];
  }
  return dot / std::sqrt(norm_a * norm_b);
}

// max |b - a| / max |a|
double max_relative(const std::vector<float>& a, const std::vector<float>& b) {
  double max_abs = 0, max_diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    max_abs = std::max(max_abs, static_cast<double>(std::fabs(a[i])));
    max_diff = std::max(max_diff, static_cast<double>(std::fabs(a[i] - b[i])));
  }
  return max_diff / max_abs;
}

void require_bf16_close(const NetRun& fp32, const NetRun& bf16, double min_agreement) {
  REQUIRE(fp32.scores.size() == bf16.scores.size());
  const double relative = max_relative(fp32.scores, bf16.scores);
  INFO("scores: max |bf16 - fp32| / max |fp32| = " << relative);
  CHECK(relative <= 3e-2);
  CHECK(relative > 0);  // bf16 really ran
  int64_t agree = 0;
  for (int64_t p = 0; p < fp32.pixels; ++p) {
    int best32 = 0, best16 = 0;
    for (int c = 1; c < fp32.classes; ++c) {
      if (fp32.scores[c * fp32.pixels + p] > fp32.scores[best32 * fp32.pixels + p]) best32 = c;
      if (bf16.scores[c * bf16.pixels + p] > bf16.scores[best16 * bf16.pixels + p]) best16 = c;
    }
    agree += best32 == best16;
  }
  const double agreement = static_cast<double>(agree) / static_cast<double>(fp32.pixels);
  INFO("argmax agreement " << agreement);
  CHECK(agreement >= min_agreement);
  REQUIRE(fp32.grads.size() == bf16.grads.size());
  for (size_t i = 0; i < fp32.grads.size(); ++i) {
    const double c = cosine(fp32.grads[i].second, bf16.grads[i].second);
    INFO(fp32.grads[i].first << ": cosine " << c);
    CHECK(c >= 0.98);  // see the top of the file
  }
}

}  // namespace

TEST_CASE("FCN-8s at width 1/4, 101x93: bf16 scores, argmax and every gradient against fp32") {
  skip_without_bf16();
  require_bf16_close(run_fcn8s(Precision::fp32, 0.25, 101, 93), run_fcn8s(Precision::bf16, 0.25, 101, 93), 0.985);
}

TEST_CASE("FCN-8s at full width, 64x80: bf16 scores, argmax and every gradient against fp32") {
  skip_without_bf16();
  require_bf16_close(run_fcn8s(Precision::fp32, 1.0, 64, 80), run_fcn8s(Precision::bf16, 1.0, 64, 80), 0.99);
}

namespace {

struct ConvCase {
  const char* what;
  int64_t channels, out_channels, height, width, kernel, pad;
};

// conv_forward, conv_backward_data and conv_backward_weight of one geometry
// in a precision, on the same random inputs.
struct ConvRun {
  std::vector<float> output, input_grad, weight_grad;
};
// interleaved: backward-data reads the weight's pair-interleaved copy, held
// as a training step's forward holds it (conv_backward_data's other product
// where backward_data_interleaved_rows gives 0).
ConvRun run_conv(const ConvCase& c, Precision precision, bool interleaved = false) {
  cpu::ConvGeometry g;
  g.channels = c.channels;
  g.height = c.height;
  g.width = c.width;
  g.out_channels = c.out_channels;
  g.kernel_h = g.kernel_w = c.kernel;
  g.pad_h = g.pad_w = c.pad;
  g.out_h = c.height + 2 * c.pad - c.kernel + 1;
  g.out_w = c.width + 2 * c.pad - c.kernel + 1;
  g.precision = precision;
  std::mt19937_64 rng(5);
  std::vector<float> image = random_matrix(g.image_numel(), rng);
  for (float& v : image) v = std::max(v, 0.f);  // a ReLU's output, as every conv after the first reads
  const std::vector<float> weight =
      random_matrix(g.out_channels * g.channels * c.kernel * c.kernel, rng);
  const std::vector<float> output_grad = random_matrix(g.output_numel(), rng);
  ConvRun run{std::vector<float>(g.output_numel()), std::vector<float>(g.image_numel()),
              std::vector<float>(weight.size())};
  cpu::RoundedCopy held;
  if (interleaved) held.hold(precision, weight.data(), g.weight_numel(), cpu::backward_data_interleaved_rows(g, 1));
  cpu::conv_forward(g, weight.data(), image.data(), 0.f, run.output.data(), nullptr, false);
  cpu::conv_backward_data(g, weight.data(), output_grad.data(), run.input_grad.data());
  cpu::conv_backward_weight(g, image.data(), output_grad.data(), run.weight_grad.data());
  return run;
}

}  // namespace

TEST_CASE("each kind of FCN conv in bf16 against fp32 at photo-sized shapes: output, input and weight gradients") {
  skip_without_bf16();
  // VGG16 FCN-8s at a 500x375 photo (pad 100): conv1_2 is 64 -> 64 at 673x573 (here a band of it), conv3_3
  // 256 -> 256 at 169x144, conv4_3 512 -> 512 at 72x88, conv5_3 at 36x44, fc6 7x7 512 -> 4096 at 22x18 (here
  // 512 -> 1024), fc7 1x1 4096 -> 4096 (here 1024 -> 1024)
  const std::vector<ConvCase> cases = {{"conv1_2 (Winograd)", 64, 64, 120, 573, 3, 1},
                                       {"conv3_3 (Winograd)", 256, 256, 169, 144, 3, 1},
                                       {"conv4_3 (Winograd)", 512, 512, 72, 88, 3, 1},
                                       {"conv5_3 (Winograd)", 512, 512, 36, 44, 3, 1},
                                       {"fc6 (7x7, im2col)", 512, 1024, 22, 18, 7, 0},
                                       {"fc7 (1x1)", 1024, 1024, 16, 12, 1, 0}};
  for (const ConvCase& c : cases) {
    const ConvRun fp32 = run_conv(c, Precision::fp32);
    const ConvRun bf16 = run_conv(c, Precision::bf16);
    INFO(c.what);
    const double output = max_relative(fp32.output, bf16.output);
    CHECK(output <= 1e-2);
    CHECK(output > 0);  // bf16 really ran
    CHECK(cosine(fp32.input_grad, bf16.input_grad) >= 0.999);
    CHECK(cosine(fp32.weight_grad, bf16.weight_grad) >= 0.999);
  }
}

TEST_CASE("bf16 backward-data of fc6 and fc7 through the weight's interleaved copy equals the other product's") {
  skip_without_bf16();
  // as in training at a 500x375 photo, with fewer output channels (4096 -> 1024); both products sum the same
  // bf16 terms in float, in different orders
  const std::vector<ConvCase> cases = {{"fc6 (7x7)", 512, 1024, 22, 18, 7, 0}, {"fc7 (1x1)", 1024, 1024, 16, 12, 1, 0}};
  for (const ConvCase& c : cases) {
    INFO(c.what);
    cpu::ConvGeometry g;
    g.channels = c.channels;
    g.out_channels = c.out_channels;
    g.kernel_h = g.kernel_w = c.kernel;
    g.height = g.out_h = c.height;
    g.width = g.out_w = c.width;
    g.out_h -= c.kernel - 1;
    g.out_w -= c.kernel - 1;
    g.precision = Precision::bf16;
    REQUIRE(cpu::backward_data_interleaved_rows(g, 1) == c.out_channels);
    const ConvRun plain = run_conv(c, Precision::bf16);
    const ConvRun interleaved = run_conv(c, Precision::bf16, true);
    CHECK(interleaved.output == plain.output);
    CHECK(max_relative(plain.input_grad, interleaved.input_grad) <= 1e-5);
    CHECK(cosine(run_conv(c, Precision::fp32).input_grad, interleaved.input_grad) >= 0.999);
    // the interleaved copy is what backward-data read: zeroed, it gives a zero gradient
    std::vector<float> weight(g.weight_numel(), 0.5f), output_grad(g.output_numel(), 1.f), input_grad(g.image_numel());
    cpu::RoundedCopy held;
    held.hold(Precision::bf16, weight.data(), g.weight_numel(), c.out_channels);
    uint16_t* copy = const_cast<uint16_t*>(cpu::interleaved_rounding(weight.data(), g.weight_numel()));
    REQUIRE(copy != nullptr);
    cpu::conv_backward_data(g, weight.data(), output_grad.data(), input_grad.data(), false);
    CHECK(*std::max_element(input_grad.begin(), input_grad.end()) > 0.f);
    std::fill_n(copy, g.weight_numel(), uint16_t{0});
    cpu::conv_backward_data(g, weight.data(), output_grad.data(), input_grad.data(), false);
    CHECK(*std::max_element(input_grad.begin(), input_grad.end()) == 0.f);
  }
}

TEST_CASE("the bf16 Winograd weight gradient counts every tile once wherever its blocks are cut") {
  skip_without_bf16();
  // 3x3 convs on two threads: 64 -> 64 channels at 200x120, F(4x4) tiles 50 x 30 (1500) in six blocks of
  // 240-256 tiles and two partials; 256 -> 256 channels at 88x88 and 90x70, 22 x 22 (484) and 23 x 18 (414)
  // tiles in one chunk of the team's (weight_grad_chunks), and at 32x1024, 8 x 256 (2048) in two. The output
  // gradient is non-zero in one band of four output rows (one tile row) at a time, so a tile row that no
  // block or chunk takes, or that two take, shows as a gradient off fp32's in direction or length, wherever
  // the cuts fall.
  const int saved_threads = omp_get_max_threads();
  omp_set_num_threads(2);
  struct Case {
    int64_t channels, height, width;
  };
  for (const auto& [channels, height, width] : {Case{64, 200, 120}, {256, 88, 88}, {256, 90, 70}, {256, 32, 1024}}) {
    cpu::ConvGeometry g;
    g.channels = g.out_channels = channels;
    g.height = g.out_h = height;
    g.width = g.out_w = width;
    g.kernel_h = g.kernel_w = 3;
    g.pad_h = g.pad_w = 1;
    std::mt19937_64 rng(9);
    std::vector<float> image = random_matrix(g.image_numel(), rng);
    for (float& v : image) v = std::max(v, 0.f);
    const std::vector<float> full_grad = random_matrix(g.output_numel(), rng);
    for (int64_t band = 0; band * 4 < g.out_h; ++band) {
      std::vector<float> output_grad(full_grad.size(), 0.f);
      for (int64_t k = 0; k < g.out_channels; ++k)
        for (int64_t y = band * 4; y < std::min(g.out_h, band * 4 + 4); ++y)
          std::copy_n(full_grad.begin() + (k * g.out_h + y) * g.out_w, g.out_w,
                      output_grad.begin() + (k * g.out_h + y) * g.out_w);
      std::vector<float> fp32(g.out_channels * g.channels * 9, 0.f), bf16(fp32.size(), 0.f);
      g.precision = Precision::fp32;
      cpu::conv_backward_weight(g, image.data(), output_grad.data(), fp32.data());
      g.precision = Precision::bf16;
      cpu::conv_backward_weight(g, image.data(), output_grad.data(), bf16.data());
      double norm32 = 0, norm16 = 0;
      for (size_t i = 0; i < fp32.size(); ++i) {
        norm32 += static_cast<double>(fp32[i]) * fp32[i];
        norm16 += static_cast<double>(bf16[i]) * bf16[i];
      }
      INFO(channels << " channels at " << height << "x" << width << ", output rows from " << band * 4);
      CHECK(cosine(fp32, bf16) >= 0.999);
      CHECK(std::sqrt(norm16 / norm32) == Approx(1.0).epsilon(0.01));
    }
  }
  omp_set_num_threads(saved_threads);
}
