#pragma once
// Element-wise kernels over contiguous float arrays of n elements, and the
// strided window copies behind crop and concat. Every *_accumulate kernel adds into its
// output (the layer gradient rule); the others overwrite it.
#include <array>
#include <cstdint>

namespace fcn::cpu {

// How far ahead a plain streaming pass prefetches its arrays: 4 KB (64
// cache lines). On a Zen 5 the hardware prefetchers alone left
// positive_bits and the SGD update waiting on their loads.
constexpr int64_t kStreamPrefetchFloats = 1024;

// y = max(x, 0) + slope * min(x, 0); y may alias x. Also records which
// outputs are positive, one bit each: bit j of positive[i] is y[16i + j] > 0
// (relu_mask_words(n) words), so that backward needs neither x nor y.
void relu_forward(const float* x, float* y, uint16_t* positive, int64_t n, float slope);
// dx += dy * (y > 0 ? 1 : slope), y > 0 read from relu_forward's bits; or,
// without `accumulate`, dx = that (dx's old values are not read).
void relu_backward(const uint16_t* positive, const float* dy, float* dx, int64_t n, float slope, bool accumulate);
// The words that hold n bits, and the words to allocate for them: one more,
// as kept_lanes reads 16 bits from any bit on, which may reach into the word
// after the last.
inline int64_t relu_bit_words(int64_t n) { return (n + 15) / 16; }
inline int64_t relu_mask_words(int64_t n) { return relu_bit_words(n) + 1; }
// Only the bits of relu_forward, for a y that is already max(x, 0).
void positive_bits(const float* y, uint16_t* positive, int64_t n);

// A rectifier's bits (relu_forward's `positive`) laid over the gradient
// array they gate: element p of that array is kept when bit (p - origin) is
// set. A layer whose backward writes that gradient can apply them as it
// writes (Layer::masks_input_grad), which saves the ReLU's own pass.
struct KeptBits {
  const uint16_t* bits = nullptr;
  const float* origin = nullptr;
};
// Bits first .. first + 15 of `bits`, as the low 16 bits.
inline uint32_t kept_lanes(const uint16_t* bits, int64_t first) {
  const int64_t word = first >> 4;
  const uint32_t pair = bits[word] | static_cast<uint32_t>(bits[word + 1]) << 16;
  return (pair >> (first & 15)) & 0xffffu;
}
// Bit `index` of `bits`.
inline bool kept_bit(const uint16_t* bits, int64_t index) { return bits[index >> 4] >> (index & 15) & 1u; }
// What relu_backward of slope 0 makes of a gradient g: 0 + (kept ? g : 0 * g)
// (a NaN passes either way, -0 becomes +0), so that a layer applying the
// bits computes the same numbers as the ReLU would.
inline float kept_gradient(bool kept, float g) { return 0.f + (kept ? g : 0.f * g); }

// y = a * x; y may alias x.
void scale(const float* x, float a, float* y, int64_t n);
// y += a * x
void axpy(const float* x, float a, float* y, int64_t n);
// y = a * x + b * z, then (x < 0 ? 0 : x) of that when rectify (NaN kept, as
// in the ReLU layer); y may alias x or z. a * x + b * z rounds as scale then
// axpy would (b * z fused into the add).
void scaled_sum(const float* x, float a, const float* z, float b, float* y, int64_t n, bool rectify);
// y = (y < 0 ? 0 : y): max(y, 0) with NaN kept.
void rectify(float* y, int64_t n);
// y = a * b (element-wise); y may alias a or b.
void multiply(const float* a, const float* b, float* y, int64_t n);
// y += a * b (element-wise)
void multiply_accumulate(const float* a, const float* b, float* y, int64_t n);
// y[c * rows + r] = x[r * cols + c]: the transpose of a rows x cols matrix.
void transpose(const float* x, float* y, int64_t rows, int64_t cols);
// sum_i a[i] * b[i], accumulated in double in a fixed order (reproducible).
double dot(const float* a, const float* b, int64_t n);

// A 4-d window of a larger 4-d array: window[i] = big[i + offset] per axis.
struct Window4d {
  std::array<int64_t, 4> big{};     // shape of the large array
  std::array<int64_t, 4> window{};  // shape of the window
  std::array<int64_t, 4> offset{};  // where the window starts in the large array
};

// window = big[offset : offset + window.shape]
void copy_window(const Window4d& w, const float* big, float* window);
// big[offset : offset + window.shape] += window
void add_window_accumulate(const Window4d& w, const float* window, float* big);
// big[offset : offset + window.shape] = window
void paste_window(const Window4d& w, const float* window, float* big);
// window += big[offset : offset + window.shape]
void window_accumulate(const Window4d& w, const float* big, float* window);

}  // namespace fcn::cpu
