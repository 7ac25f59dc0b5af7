#pragma once
// model.precision: the number format the convolutions compute in.
//   fp32: float operands and accumulation (the default; the parity contract).
//   bf16: bfloat16 operands (8-bit mantissa), float accumulation, through
//         oneDNN on a CPU with native bf16 (fcn/cpu/bf16_gemm.hpp). Only
//         the layers that take it (Layer::set_precision) change; weights,
//         gradients as the solver sees them, the loss and checkpoints stay
//         float, so a checkpoint moves freely between the two.
#include <string>

namespace fcn {

enum class Precision { fp32, bf16 };

std::string precision_name(Precision precision);  // "fp32" | "bf16"
// The precision a name gives; throws fcn::Error naming `field` otherwise.
Precision parse_precision(const std::string& name, const std::string& field);

}  // namespace fcn
