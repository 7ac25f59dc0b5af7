#pragma once
// The one exception type of fcn. Its message is a single line that names the
// thing at fault (file, JSON path, layer, parameter) and the problem; the CLI
// prints it as "error: <message>" and exits 1.
#include <stdexcept>
#include <string>

namespace fcn {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace fcn
