#pragma once
// Lane-vector helpers the AVX-512 passes share (Winograd's gathers and
// scatter, the ReLU backward, the max-pool backward): loads and stores of
// 16 lanes, kept_gradient on them, and pairs of vectors (de)interleaved.
#include <immintrin.h>

#include <cstdint>

namespace fcn::cpu {

#if defined(__AVX512F__)
// 16 floats at p, the lanes outside `mask` 0 (neither read nor faulted on).
// A mask of every lane, what most vectors of a row or array have, loads
// plain: on a Zen 5 a masked load costs more even then. 3x3 bf16 Winograd
// passes, 64 channels at 698x698, 2 threads, three alternated rounds, every
// row load masked -> whole vectors plain: forward 70-73 -> 62-63 ms,
// backward-data 48-50 -> 41-44, weight gradient 56-57 -> 42-44.
inline __m512 load_lanes(const float* p, __mmask16 mask) {
  return mask == 0xFFFF ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(mask, p);
}

// The lanes of `mask` of v stored to p, plain when that is every lane. In
// the ReLU backward (64 x 698 x 698 floats, 2 threads) both its loads and
// its store plain took 7.3-7.7 -> 3.7-3.9 ms; the loads alone ~5, the store
// alone nothing. In Winograd's output scatter they gained nothing while the
// passes went channel by channel over a block's groups; group by group
// (for_each_group_channel) they do: bf16, 64 channels at 698x698, three
// alternated rounds, forward 53-56 -> 49-51 ms, backward-data 43.6-44.1 ->
// 40.5-41.2 (fp32's 64-tile blocks unchanged).
inline void store_lanes(float* p, __mmask16 mask, __m512 v) {
  if (mask == 0xFFFF)
    _mm512_storeu_ps(p, v);
  else
    _mm512_mask_storeu_ps(p, mask, v);
}

// kept_gradient (elementwise.hpp) on 16 lanes: 0 + (bit l of keep ? g : 0 * g).
inline __m512 kept_gradient_lanes(__mmask16 keep, __m512 g) {
  const __m512 zero = _mm512_setzero_ps();
  return _mm512_add_ps(zero, _mm512_mask_blend_ps(keep, _mm512_mul_ps(zero, g), g));
}

// v[0..1] become their two permutex2var over (v[0], v[1]) by `first` and `second`.
inline void permute_pair(__m512 v[2], __m512i first, __m512i second) {
  const __m512 a = _mm512_permutex2var_ps(v[0], first, v[1]), b = _mm512_permutex2var_ps(v[0], second, v[1]);
  v[0] = a;
  v[1] = b;
}

// v[0..1] hold 32 consecutive floats; afterwards v[j][l] holds element 2l + j.
inline void deinterleave2(__m512 v[2]) {
  permute_pair(v, _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30),
               _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31));
}

// The inverse of deinterleave2: v[0..1] become 32 consecutive floats, element
// 2l + j taken from v[j][l].
inline void interleave2(__m512 v[2]) {
  permute_pair(v, _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23),
               _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31));
}
#endif

}  // namespace fcn::cpu
