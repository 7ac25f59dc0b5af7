#pragma once
// Pascal VOC's colour map: 256 RGB entries, class id = palette index
// (0 background black, 1 aeroplane dark red, ..., 255 void cream).
#include <array>
#include <cstdint>

namespace fcn {

using Rgb = std::array<uint8_t, 3>;

// VOC's bitget algorithm (VOCdevkit labelcolormap.m): the bits of the class
// id are spread over the high bits of R, G and B, three at a time.
const std::array<Rgb, 256>& voc_palette();

}  // namespace fcn
