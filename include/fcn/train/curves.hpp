#pragma once
// curves.png: the training loss and the validation mean IoU against the
// iteration, in one chart (loss on the left axis, mIoU 0..1 on the right).
#include <cstdint>
#include <string>
#include <vector>

namespace fcn {

struct CurvePoint {
  int64_t iter = 0;
  double value = 0.0;
};

// Draws the chart with OpenCV and writes it atomically as a PNG. Either
// series may be empty; non-finite values are left out.
void write_curves_png(const std::string& path, const std::vector<CurvePoint>& loss,
                      const std::vector<CurvePoint>& val_mean_iou);

}  // namespace fcn
