#pragma once
// Rounding lane vectors to bfloat16 with AVX512-BF16 (vcvtneps2bf16, round
// to nearest even): shared by round_lanes_to_bf16 (bf16_gemm.cpp) and the
// Winograd transforms, which inline it where the build targets such a CPU.
// Callers must know the CPU has avx512_bf16 (bf16_support()).
#include <immintrin.h>

#include <cstdint>

namespace fcn::cpu {

// out[r * stride + l] = bf16(lanes_in[r * 16 + l]) for r < rows, l < lanes
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) inline void round_lanes_avx512(
    const float* lanes_in, int lanes, int rows, uint16_t* out, int64_t stride) {
  const __mmask16 mask = static_cast<__mmask16>((1u << lanes) - 1);
  for (int r = 0; r < rows; ++r) {
    const __m256bh packed = _mm512_cvtneps_pbh(_mm512_loadu_ps(lanes_in + r * 16));
    _mm256_mask_storeu_epi16(out + r * stride, mask, reinterpret_cast<const __m256i&>(packed));
  }
}

}  // namespace fcn::cpu
