#pragma once
// OpenBLAS kernel selection: Debian's OpenBLAS 0.3.21 falls back to its
// generic Prescott kernel on CPUs it does not know. These functions detect
// that and pick the best kernel the CPU supports before OpenBLAS initialises.
#include <string>

namespace fcn {

// "Cooperlake (selected by fcn; OpenBLAS chose Prescott)" etc.
std::string blas_kernel_report();

}  // namespace fcn
