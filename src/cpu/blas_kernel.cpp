#include "fcn/blas_kernel.hpp"

#include <cblas.h>

namespace fcn {

std::string blas_kernel_report() { return openblas_get_corename(); }

}  // namespace fcn
