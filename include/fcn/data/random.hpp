#pragma once
// Deterministic random numbers for data order, augmentation and synthetic
// data. std::mt19937_64's output is fixed by the standard, but the std
// distributions and std::shuffle are implementation-defined, so every draw
// is derived here from the raw 64-bit engine output.
#include <cstdint>
#include <random>
#include <vector>

namespace fcn {

// The splitmix64 finalizer: a bijective 64-bit mix, to derive seeds.
uint64_t splitmix64(uint64_t x);
// A seed for stream `stream` of `seed` (e.g. one per sample or per epoch).
uint64_t derive_seed(uint64_t seed, uint64_t stream);

class Random {
 public:
  explicit Random(uint64_t seed) : engine_(seed) {}
  uint64_t bits() { return engine_(); }
  double uniform();                          // [0, 1), 53 random bits
  double uniform(double low, double high);   // [low, high)
  int64_t below(int64_t n);                  // [0, n) for n > 0
  int64_t between(int64_t low, int64_t high);  // [low, high], inclusive
  bool chance(double p) { return uniform() < p; }
  double normal();                           // standard normal (Box-Muller)

 private:
  std::mt19937_64 engine_;
};

// Fisher-Yates permutation of 0..n-1 driven by `seed`.
std::vector<size_t> permutation(size_t n, uint64_t seed);

}  // namespace fcn
