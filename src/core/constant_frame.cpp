#include "fcn/core/constant_frame.hpp"

namespace fcn {

namespace {

int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }
int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }

struct Range {
  int64_t lo, hi;  // [lo, hi)
};

Range clamp_range(int64_t lo, int64_t hi, int64_t out) {
  lo = std::clamp<int64_t>(lo, 0, out);
  return {lo, std::clamp<int64_t>(hi, lo, out)};
}

// Outputs whose window [o*s - p, o*s - p + span) lies in [lo, hi).
Range windows_within(int64_t lo, int64_t hi, const WindowAxis& a) {
  return clamp_range(ceil_div(lo + a.pad, a.stride), floor_div(hi - a.span + a.pad, a.stride) + 1, a.out);
}

// Outputs whose window meets [lo, hi) (lo < hi).
Range windows_meeting(int64_t lo, int64_t hi, const WindowAxis& a) {
  return clamp_range(floor_div(lo - a.span + a.pad, a.stride) + 1, ceil_div(hi + a.pad, a.stride), a.out);
}

}  // namespace

bool ConstantFrame::empty() const {
  if (outer.empty()) return true;
  return !inner.empty() && inner.top <= outer.top && inner.left <= outer.left && inner.bottom >= outer.bottom &&
         inner.right >= outer.right;
}

int64_t ConstantFrame::count() const {
  if (empty()) return 0;
  const int64_t rows = std::max<int64_t>(0, std::min(outer.bottom, inner.bottom) - std::max(outer.top, inner.top));
  const int64_t cols = std::max<int64_t>(0, std::min(outer.right, inner.right) - std::max(outer.left, inner.left));
  const int64_t overlap = inner.empty() ? 0 : rows * cols;
  return (outer.bottom - outer.top) * (outer.right - outer.left) - overlap;
}

std::pair<int64_t, int64_t> ConstantFrame::first_pixel() const {
  if (empty()) return {-1, -1};
  for (int64_t y = outer.top; y < outer.bottom; ++y) {
    if (!inner.contains(y, outer.left)) return {y, outer.left};
    if (inner.right < outer.right) return {y, inner.right};
  }
  return {-1, -1};
}

ConstantFrame windows_inside(const ConstantFrame& frame, const WindowAxis& h, const WindowAxis& w) {
  if (frame.empty()) return {};
  const Range rows = windows_within(frame.outer.top, frame.outer.bottom, h);
  const Range cols = windows_within(frame.outer.left, frame.outer.right, w);
  ConstantFrame out;
  out.outer = {rows.lo, cols.lo, rows.hi, cols.hi};
  if (!frame.inner.empty()) {
    const Range inner_rows = windows_meeting(frame.inner.top, frame.inner.bottom, h);
    const Range inner_cols = windows_meeting(frame.inner.left, frame.inner.right, w);
    out.inner = {inner_rows.lo, inner_cols.lo, inner_rows.hi, inner_cols.hi};
  }
  if (out.empty()) return {};
  return out;
}

}  // namespace fcn
