#pragma once
// SBD's class labels: MATLAB v5/v7.3 files `cls/<id>.mat` holding a struct
// `GTcls` whose field `Segmentation` is the HxW class-id map (read with
// libmatio; MATLAB stores it column-major).
#include <string>

#include "fcn/io/image_io.hpp"

namespace fcn {

Image read_sbd_label(const std::string& path);

}  // namespace fcn
