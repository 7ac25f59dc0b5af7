#include "fcn/version.hpp"

#include "fcn/blas_kernel.hpp"

namespace fcn {

std::string version_string() { return "0.1.0"; }

std::string build_info() {
  std::string info = "compiler: " + std::string(__VERSION__) + "\n";
  info += "BLAS: OpenBLAS, kernel " + blas_kernel_report() + "\n";
#ifdef FCN_HAVE_MPI
  info += "MPI: enabled\n";
#else
  info += "MPI: not built\n";
#endif
  return info;
}

}  // namespace fcn
