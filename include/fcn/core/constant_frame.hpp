#pragma once
// A constant frame: the pixels of a blob's planes known from the geometry
// alone (never from comparing values) to hold one value per channel, bit for
// bit. FCN's 100-pixel padding makes wide ones: conv1_1's outputs whose
// window lies wholly in the padding are all relu(bias), and so on up the
// trunk while a window stays inside such a region. A convolution computes a
// frame's value once per channel instead of once per pixel.
//
// The region is the pixels inside `outer` and outside `inner` (row/column
// ranges, half-open, in the plane's coordinates; an empty outer: no frame).
// Graph::reshape passes the frames from layer to layer (Layer::output_frame).
#include <algorithm>
#include <cstdint>
#include <utility>

namespace fcn {

// [top, bottom) x [left, right)
struct FrameRect {
  int64_t top = 0, left = 0, bottom = 0, right = 0;
  bool empty() const { return top >= bottom || left >= right; }
  bool contains(int64_t y, int64_t x) const { return y >= top && y < bottom && x >= left && x < right; }
  bool operator==(const FrameRect& o) const {
    return top == o.top && left == o.left && bottom == o.bottom && right == o.right;
  }
};

struct ConstantFrame {
  FrameRect outer, inner;
  bool contains(int64_t y, int64_t x) const { return outer.contains(y, x) && !inner.contains(y, x); }
  bool empty() const;
  // Pixels in the frame.
  int64_t count() const;
  // The first frame pixel in row-major order as {y, x}; {-1, -1} when empty.
  std::pair<int64_t, int64_t> first_pixel() const;
  bool operator==(const ConstantFrame& o) const { return outer == o.outer && inner == o.inner; }
};

// One axis of a sliding window: output o reads input [o*stride - pad,
// o*stride - pad + span) (span: the dilated kernel's extent), outputs 0..out-1.
struct WindowAxis {
  int64_t span = 1, stride = 1, pad = 0, out = 0;
};

// The outputs whose whole window lies in the frame: a frame again (windows
// inside the outer rectangle, minus those touching the inner one). A
// dilated window counts by its span, which can only shrink the frame.
ConstantFrame windows_inside(const ConstantFrame& frame, const WindowAxis& h, const WindowAxis& w);

}  // namespace fcn
