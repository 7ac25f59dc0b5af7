#pragma once
// Rounding lane vectors to bfloat16 with AVX512-BF16 (vcvtneps2bf16, round
// to nearest even): shared by round_lanes_to_bf16 (bf16_gemm.cpp) and the
// Winograd transforms, which inline it where the build targets such a CPU.
// Callers must know the CPU has avx512_bf16 (bf16_support()).
#include <immintrin.h>

#include <cstdint>

#include "fcn/cpu/bf16_gemm.hpp"

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

// round_lanes_to_bf16_interleaved (bf16_gemm.hpp): lane l of vector r to
// word 2l + parity of place.out + r * stride (words in place.mask), and of
// place.out2 likewise.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) inline void round_lanes_interleaved_avx512(
    const float* lanes_in, int count, const InterleavedLanes& place, int64_t stride) {
  for (int r = 0; r < count; ++r) {
    const __m256bh packed = _mm512_cvtneps_pbh(_mm512_loadu_ps(lanes_in + r * 16));
    // lane l into word 2l (the maskz forms: GCC 12 reports the plain ones' undefined start as uninitialised)
    __m512i words = _mm512_maskz_cvtepu16_epi32(0xffff, reinterpret_cast<const __m256i&>(packed));
    if (place.parity) words = _mm512_maskz_slli_epi32(0xffff, words, 16);  // lane l into word 2l + 1
    _mm512_mask_storeu_epi16(place.out + r * stride, place.mask, words);
    if (place.mask2) _mm512_mask_storeu_epi16(place.out2 + r * stride, place.mask2, words);
  }
}

// Two rows' 16 lanes rounded into the 32 words of a row pair of the
// pair-interleaved layout: word 2l from the even row's lane l, 2l + 1 from
// the odd row's.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) inline __m512i pair_words(__m512 even, __m512 odd) {
  // the conversion holds even's lanes in words 0-15, odd's in 16-31
  const __m512i order = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6,
                                         21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const __m512bh packed = _mm512_cvtne2ps_pbh(odd, even);
  return _mm512_permutexvar_epi16(order, reinterpret_cast<const __m512i&>(packed));
}

// round_lane_pairs_to_bf16_interleaved (bf16_gemm.hpp): both rows of a pair
// in one conversion and full-width stores.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) inline void round_lane_pairs_interleaved_avx512(
    const float* even_in, const float* odd_in, int count, const InterleavedLanes& place, int64_t stride) {
  const __mmask32 mask = place.mask | place.mask << 1, mask2 = place.mask2 | place.mask2 << 1;
  for (int r = 0; r < count; ++r) {
    const __m512i words = pair_words(_mm512_loadu_ps(even_in + r * 16), _mm512_loadu_ps(odd_in + r * 16));
    _mm512_mask_storeu_epi16(place.out + r * stride, mask, words);
    if (mask2) _mm512_mask_storeu_epi16(place.out2 + r * stride, mask2, words);
  }
}

}  // namespace fcn::cpu
