#pragma once
#include <string>

namespace fcn {

std::string version_string();
// Build and runtime facts for --version: compiler, BLAS kernel, threads.
std::string build_info();

}  // namespace fcn
