#include "fcn/core/version.hpp"

// FCN_VERSION: CMake's project(fcn VERSION ...), also the installed package's version.
#ifndef FCN_VERSION
#error "FCN_VERSION is set by CMakeLists.txt (the project version)"
#endif

namespace fcn {

std::string version_string() { return FCN_VERSION; }

}  // namespace fcn
