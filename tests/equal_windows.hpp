#pragma once
// The property max-pooling ties rely on, checked by brute force: a conv
// output whose window (its im2col column, padding zeros included) equals its
// left or upper neighbour's is the same number as that neighbour, bit for
// bit, in every output channel.
#include <cstdint>
#include <string>
#include <vector>

#include "fcn/cpu/convolution.hpp"

namespace fcn::testing {

struct EqualWindows {
  int64_t shared = 0;   // outputs whose window equals their left or upper neighbour's
  int64_t unequal = 0;  // (output, channel) pairs of those that differ from that neighbour
  std::string first;    // the first of those
};

// image: [channels, height, width] as conv_forward read it; output: what it wrote.
inline EqualWindows equal_window_outputs(const cpu::ConvGeometry& g, const std::vector<float>& image,
                                         const std::vector<float>& output) {
  std::vector<float> col(g.column_rows() * g.out_area());
  cpu::im2col(g, image.data(), col.data());
  const auto same_window = [&](int64_t p, int64_t q) {
    for (int64_t r = 0; r < g.column_rows(); ++r)
      if (col[r * g.out_area() + p] != col[r * g.out_area() + q]) return false;
    return true;
  };
  EqualWindows result;
  for (int64_t p = 0; p < g.out_area(); ++p) {
    const int64_t oh = p / g.out_w, ow = p % g.out_w;
    for (const int64_t q : {ow > 0 ? p - 1 : int64_t{-1}, oh > 0 ? p - g.out_w : int64_t{-1}}) {
      if (q < 0 || !same_window(p, q)) continue;
      ++result.shared;
      for (int64_t o = 0; o < g.out_channels; ++o) {
        const float* plane = output.data() + o * g.out_area();
        if (plane[p] == plane[q]) continue;
        if (result.unequal++ == 0)
          result.first = "channel " + std::to_string(o) + ": output " + std::to_string(oh) + ", " +
                         std::to_string(ow) + " vs " + std::to_string(q / g.out_w) + ", " +
                         std::to_string(q % g.out_w);
      }
    }
  }
  return result;
}

}  // namespace fcn::testing
