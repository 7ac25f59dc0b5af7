#include "fcn/data/sbd_mat.hpp"

#include <matio.h>

#include <cmath>
#include <memory>
#include <mutex>

#include "fcn/core/error.hpp"

namespace fcn {

namespace {

// matio logs its read errors instead of returning them; keep the latest
// per thread so the Error can say what went wrong (and stderr stays clean).
thread_local std::string matio_message;

void capture_matio_log(int, char* message) { matio_message = message ? message : ""; }

void install_matio_logger() {
  static std::once_flag once;
  std::call_once(once, [] { Mat_LogInitFunc("fcn", capture_matio_log); });
}

struct MatCloser {
  void operator()(mat_t* mat) const { Mat_Close(mat); }
};
struct VarFreer {
  void operator()(matvar_t* var) const { Mat_VarFree(var); }
};

template <typename T>
bool copy_column_major(const matvar_t* var, Image& label) {
  if (var->nbytes / sizeof(T) < static_cast<size_t>(label.width) * label.height) return false;  // a corrupt file
  const T* data = static_cast<const T*>(var->data);
  for (int x = 0; x < label.width; ++x)
    for (int y = 0; y < label.height; ++y) {
      const T v = data[static_cast<size_t>(x) * label.height + y];
      if (!(v >= 0 && v <= 255) || static_cast<double>(v) != std::floor(static_cast<double>(v))) return false;
      label.at(y, x) = static_cast<uint8_t>(v);
    }
  return true;
}

bool copy_values(const matvar_t* var, Image& label) {
  switch (var->class_type) {
    case MAT_C_UINT8: return copy_column_major<uint8_t>(var, label);
    case MAT_C_UINT16: return copy_column_major<uint16_t>(var, label);
    case MAT_C_INT32: return copy_column_major<int32_t>(var, label);
    case MAT_C_DOUBLE: return copy_column_major<double>(var, label);
    case MAT_C_SINGLE: return copy_column_major<float>(var, label);
    default: return false;
  }
}

}  // namespace

Image read_sbd_label(const std::string& path) {
  install_matio_logger();
  matio_message.clear();
  std::unique_ptr<mat_t, MatCloser> mat(Mat_Open(path.c_str(), MAT_ACC_RDONLY));
  if (!mat) throw Error(path + ": cannot open as a MATLAB file" + (matio_message.empty() ? "" : " (" + matio_message + ")"));
  std::unique_ptr<matvar_t, VarFreer> gt(Mat_VarRead(mat.get(), "GTcls"));
  if (!gt) throw Error(path + ": no readable variable GTcls" + (matio_message.empty() ? "" : " (" + matio_message + ")"));
  if (gt->class_type != MAT_C_STRUCT) throw Error(path + ": GTcls is not a struct");
  // matio indexes a struct's field table as the file describes it; check that
  // table first (a corrupt file crashed Mat_VarGetStructFieldByName)
  const unsigned fields = Mat_VarGetNumberOfFields(gt.get());
  char* const* names = Mat_VarGetStructFieldnames(gt.get());
  // (element 0, which is all we read, must exist with a pointer per field)
  bool sane = gt->data && names && fields > 0 && gt->rank >= 1 && gt->dims &&
              gt->data_size == sizeof(matvar_t*) && gt->nbytes / sizeof(matvar_t*) >= fields;
  for (int d = 0; sane && d < gt->rank; ++d) sane = gt->dims[d] > 0;
  for (unsigned i = 0; sane && i < fields; ++i) sane = names[i] != nullptr;
  if (!sane) throw Error(path + ": GTcls is a corrupt struct");
  const matvar_t* seg = Mat_VarGetStructFieldByName(gt.get(), "Segmentation", 0);
  if (!seg) throw Error(path + ": GTcls has no field Segmentation");
  if (seg->rank != 2 || !seg->data || seg->isComplex) throw Error(path + ": GTcls.Segmentation is not a 2-d real array");
  if (seg->dims[0] == 0 || seg->dims[1] == 0 || seg->dims[0] > 1u << 15 || seg->dims[1] > 1u << 15)
    throw Error(path + ": GTcls.Segmentation has an unusable size");
  Image label(static_cast<int>(seg->dims[0]), static_cast<int>(seg->dims[1]), 1);
  if (!copy_values(seg, label))
    throw Error(path + ": GTcls.Segmentation must hold integers in 0..255 (uint8, uint16, int32, single or double)");
  return label;
}

}  // namespace fcn
