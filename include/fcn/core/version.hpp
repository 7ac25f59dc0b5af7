#pragma once
#include <string>

namespace fcn {

std::string version_string();

}  // namespace fcn
