#include "fcn/core/version.hpp"

namespace fcn {

std::string version_string() { return "0.1.0"; }

}  // namespace fcn
