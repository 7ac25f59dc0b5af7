#pragma once
// bf16 GEMMs (model.precision "bf16"): C = alpha * op(A) op(B) + beta * C
// with A and B rounded to bfloat16 (round to nearest even) and float
// accumulation and C, through oneDNN's matmul primitive (Debian libdnnl,
// AVX512-BF16 or AMX kernels). Same operands as fcn::cpu::gemm (gemm.hpp),
// which calls these when asked for Precision::bf16.
//
// Primitives are built once per shape (m, n, k, transposes, C's leading
// dimension, alpha, beta) and kept (the 1024 most recently used): a conv
// layer meets the same few shapes every step, and a new input size builds
// its own once (~2 ms each).
// Operands are converted into per-thread buffers; oneDNN's scratchpad is the
// caller's thread's, so concurrent calls from several threads are safe.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>

#include "fcn/core/precision.hpp"

namespace fcn::cpu {

// Whether this CPU computes bf16 natively, and with what.
struct Bf16Support {
  bool available = false;
  std::string kernel;   // oneDNN's ISA, e.g. "avx512_core_bf16" or "avx512_core_amx"
  std::string missing;  // when not available: what the CPU lacks, one phrase
};
const Bf16Support& bf16_support();
// Throws fcn::Error (one line naming `field` and the missing CPU feature)
// unless bf16_support().available.
void require_bf16(const std::string& field);

// Runs the GEMM on the OpenMP team (oneDNN's threads are fcn's), or on the
// calling thread inside a parallel region.
void gemm_bf16(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
               int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// The same with both operands already bfloat16 (alpha 1): A stored [m, k]
// (or [k, m] when trans_a) with row stride lda, B [k, n] (or [n, k]) with
// row stride ldb. For callers that round while they write an operand (the
// Winograd transforms), which saves the pass that would round it here.
void gemm_bf16_rounded(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const uint16_t* a, int64_t lda,
                       const uint16_t* b, int64_t ldb, float beta, float* c, int64_t ldc);

// B [k, n] stored pair-interleaved, as oneDNN's bf16 kernels read it
// (its BA16a64b2a): 64-column blocks, in each 16-row blocks, in each the
// rows two by two with their pairs side by side (vnni_offset). A B stored
// so is read as it is; a row-major one is repacked into it on every call,
// which cost Winograd's bf16 forward GEMMs ~4% of a VGG16 step. k must be a
// multiple of kVnniRows and n of kVnniCols (no padding).
constexpr int64_t kVnniRows = 16, kVnniCols = 64;
// Where element (row, col) of such a B with `rows` rows lies.
inline int64_t vnni_offset(int64_t row, int64_t col, int64_t rows) {
  return (col / kVnniCols) * (rows * kVnniCols) + (row / kVnniRows) * (kVnniRows * kVnniCols) +
         (row % kVnniRows / 2) * (2 * kVnniCols) + (col % kVnniCols) * 2 + row % 2;
}
// gemm_bf16_rounded (alpha 1) with B so stored.
void gemm_bf16_rounded_blocked_b(bool trans_a, int64_t m, int64_t n, int64_t k, const uint16_t* a, int64_t lda,
                                 const uint16_t* b, float beta, float* c, int64_t ldc);

// While one lives (bf16 only; nothing in fp32), the bf16 GEMMs whose A lies
// in [data, data + count) read a copy rounded here once instead of rounding
// their A on every call: a conv weight read by one GEMM per row band, or
// Winograd's transformed weights read by one GEMM per block of tiles. The
// floats must not change while it lives. The copies live in per-thread
// buffers kept for the next call (a fresh 200 MB allocation for fc6's
// weight costs more in page faults than its GEMM); RoundedOperands on one
// thread must end in the reverse order of their start (scopes do). The
// lookup is by address, so GEMMs on other threads (a Winograd block loop's
// team) find their caller's copy, and two graphs running at once never
// meet each other's: their weights and scratch are different memory.
class RoundedOperand {
 public:
  RoundedOperand(Precision precision, const float* data, int64_t count);
  ~RoundedOperand();
  RoundedOperand(const RoundedOperand&) = delete;
  RoundedOperand& operator=(const RoundedOperand&) = delete;

 private:
  const float* data_ = nullptr;
  const uint16_t* rounded_ = nullptr;
};

// A float array's bf16 copy that outlives a scope: rounded by hold() and
// registered as a RoundedOperand's is (so the bf16 GEMMs reading the array,
// and RoundedOperands over it, use it instead of rounding again), until
// release() or destruction. A conv layer holds its weight's copy from its
// forward to its backward: fc6's weight is 102 M floats, and rounding it
// once a step instead of twice saves ~20 ms of a VGG16 step. The floats
// must not change while it is held (a forward's weights do not change
// before its backward). Owns its buffer, which stays allocated for the next
// hold. Nothing happens in fp32.
//
// With interleaved_rows > 0 (data viewed as [interleaved_rows, count /
// interleaved_rows], rows a multiple of kVnniRows, columns of kVnniCols) the
// same pass also writes the copy pair-interleaved, as a GEMM's B (vnni_offset),
// which interleaved_rounding finds: backward-data's product of a large weight
// then runs as dY^T W with W as B, where oneDNN would copy W^T on every call
// (a CPU without AVX512-BF16 gets no such copy).
class RoundedCopy {
 public:
  RoundedCopy();
  ~RoundedCopy();
  RoundedCopy(const RoundedCopy&) = delete;
  RoundedCopy& operator=(const RoundedCopy&) = delete;
  void hold(Precision precision, const float* data, int64_t count, int64_t interleaved_rows = 0);
  void release();

 private:
  struct Storage;
  std::unique_ptr<Storage> storage_;
  const float* data_ = nullptr;
};

// The pair-interleaved copy a held RoundedCopy keeps of exactly [data, data + count), or null.
const uint16_t* interleaved_rounding(const float* data, int64_t count);

// f32 -> bf16, round to nearest even (NaN stays NaN): the rounding the GEMMs apply.
void round_to_bf16(const float* in, uint16_t* out, int64_t count);
// The same on the OpenMP team, for large arrays. `streaming`: with
// non-temporal stores where the CPU has AVX512-BF16 (the same bits), for a
// copy far larger than the caches, whose lines would only come back from
// memory: a store then skips reading its line first.
void round_to_bf16_parallel(const float* in, uint16_t* out, int64_t count, bool streaming = false);
float bf16_to_float(uint16_t value);
// out[r * stride + l] = bf16(lanes_in[r * 16 + l]) for r < rows, l < lanes:
// rows of 16-float vectors (one AVX-512 register each) into strided rows.
void round_lanes_to_bf16(const float* lanes_in, int lanes, int rows, uint16_t* out, int64_t stride);

// Where `lanes` (<= 16) consecutive elements (row, col + l) of a
// pair-interleaved B with `rows` rows lie: element l is word 2l + parity of
// `out` for the l whose word is set in `mask`, and of out2 for those in
// mask2 (the lanes past the end of col's 64-column block).
struct InterleavedLanes {
  uint16_t *out = nullptr, *out2 = nullptr;
  uint32_t mask = 0, mask2 = 0;
  int parity = 0;
};
// Inline: the forward's input transform asks it for every group and channel pair.
inline InterleavedLanes interleaved_lanes(uint16_t* b, int64_t rows, int64_t row, int64_t col, int lanes) {
  InterleavedLanes place;
  place.parity = static_cast<int>(row % 2);
  const int in_block = static_cast<int>(std::min<int64_t>(lanes, kVnniCols - col % kVnniCols));
  const auto words = [&](int first, int last) {  // bits 2l + parity for lanes first..last-1
    const uint64_t below_last = (uint64_t{1} << (2 * last)) - 1, below_first = (uint64_t{1} << (2 * first)) - 1;
    return static_cast<uint32_t>((0x55555555u & below_last & ~below_first) << place.parity);
  };
  // lane l at vnni_offset(row, col + l) = vnni_offset(row, col) + 2l within the block
  place.out = b + vnni_offset(row, col, rows) - place.parity;
  place.mask = words(0, in_block);
  if (in_block < lanes) {  // and past it, from the next block's first column on
    place.out2 = b + vnni_offset(row, col + in_block, rows) - place.parity - 2 * in_block;
    place.mask2 = words(in_block, lanes);
  }
  return place;
}
// `count` lane vectors of 16 floats (lanes_in[r * 16 + l]) rounded to bf16
// into such places, `stride` elements apart (one B matrix after another).
void round_lanes_to_bf16_interleaved(const float* lanes_in, int count, const InterleavedLanes& place,
                                     int64_t stride);
// The same for rows `row` and `row + 1` of a pair at once (row even; place
// from interleaved_lanes for `row`): even_in's vectors into the even row,
// odd_in's into the odd one. Each stored word pair is then whole.
void round_lane_pairs_to_bf16_interleaved(const float* even_in, const float* odd_in, int count,
                                          const InterleavedLanes& place, int64_t stride);

}  // namespace fcn::cpu
