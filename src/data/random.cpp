#include "fcn/data/random.hpp"

#include <cmath>
#include <numeric>
#include <utility>

namespace fcn {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t derive_seed(uint64_t seed, uint64_t stream) { return splitmix64(splitmix64(seed) ^ stream); }

double Random::uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }

double Random::uniform(double low, double high) { return low + (high - low) * uniform(); }

// Modulo bias is below n / 2^64: irrelevant at dataset sizes.
int64_t Random::below(int64_t n) { return static_cast<int64_t>(engine_() % static_cast<uint64_t>(n)); }

int64_t Random::between(int64_t low, int64_t high) { return low + below(high - low + 1); }

double Random::normal() {
  const double u = 1.0 - uniform();  // (0, 1]: log stays finite
  const double v = uniform();
  return std::sqrt(-2.0 * std::log(u)) * std::cos(2.0 * M_PI * v);
}

std::vector<size_t> permutation(size_t n, uint64_t seed) {
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  Random rng(seed);
  for (size_t i = n; i > 1; --i) std::swap(order[i - 1], order[static_cast<size_t>(rng.below(static_cast<int64_t>(i)))]);
  return order;
}

}  // namespace fcn
