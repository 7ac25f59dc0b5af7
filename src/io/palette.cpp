#include "fcn/io/palette.hpp"

namespace fcn {

namespace {

std::array<Rgb, 256> make_voc_palette() {
  std::array<Rgb, 256> palette{};
  for (int id = 0; id < 256; ++id) {
    int r = 0, g = 0, b = 0, c = id;
    // the id's 3-bit group j gives bit 7-j of R (its bit 0), G (bit 1), B (bit 2)
    for (int j = 0; j < 8; ++j) {
      r |= ((c >> 0) & 1) << (7 - j);
      g |= ((c >> 1) & 1) << (7 - j);
      b |= ((c >> 2) & 1) << (7 - j);
      c >>= 3;
    }
    palette[id] = {static_cast<uint8_t>(r), static_cast<uint8_t>(g), static_cast<uint8_t>(b)};
  }
  return palette;
}

}  // namespace

const std::array<Rgb, 256>& voc_palette() {
  static const std::array<Rgb, 256> palette = make_voc_palette();
  return palette;
}

}  // namespace fcn
