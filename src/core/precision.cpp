#include "fcn/core/precision.hpp"

#include "fcn/core/error.hpp"

namespace fcn {

std::string precision_name(Precision precision) { return precision == Precision::bf16 ? "bf16" : "fp32"; }

Precision parse_precision(const std::string& name, const std::string& field) {
  if (name == "fp32") return Precision::fp32;
  if (name == "bf16") return Precision::bf16;
  throw Error(field + ": expected \"fp32\" or \"bf16\", got \"" + name + "\"");
}

}  // namespace fcn
