#include "fcn/core/environment.hpp"

#include <cstdlib>

#include "fcn/core/error.hpp"

namespace fcn {

const std::vector<EnvVariable>& environment_variables() {
  static const std::vector<EnvVariable> table = {
      {"FCN_WINOGRAD",
       {"0", "2", "4"},
       "3x3 convolutions: 0 im2col+GEMM only, 2 Winograd F(2x2,3x3), 4 F(4x4,3x3); unset: forward 2 (4 where "
       "no backward follows: predict, eval, validation in training, bench's inference), backward 4"},
      {"FCN_GEMM",
       {"openblas", "onednn"},
       "fp32 GEMMs in OpenBLAS or oneDNN; unset: OpenBLAS, unless its kernel is far below the CPU's (an "
       "OPENBLAS_CORETYPE pin) and oneDNN has AVX-512 there"},
      {"FCN_PROFILE", {"0", "1"}, "1: fcn bench also prints a per-layer table of forward and backward times and busy threads (CPU / wall)"},
      {"FCN_HUGE_PAGES",
       {"0", "1"},
       "1 (default): buffers of 4 MiB and more ask for transparent huge pages (fewer TLB misses), 0: plain pages"},
      {"FCN_ALLREDUCE_OVERLAP",
       {"0", "1"},
       "MPI training: 1 (default) all-reduces gradient buckets during backward, 0 after it"},
      {"OMP_WAIT_POLICY", {}, "OpenMP's; fcn sets passive (idle threads sleep) unless you set it"},
      {"OPENBLAS_CORETYPE", {}, "OpenBLAS's kernel; when set, fcn never replaces it (fcn --version shows the kernel)"},
      {"ONEDNN_MAX_CPU_ISA", {},
       "oneDNN's instruction-set cap; below AVX512_CORE_BF16 it hides bf16 (model.precision \"bf16\" is refused)"},
      {"FCN_BLAS_REEXEC", {}, "set by fcn itself when it re-executes with a better OpenBLAS kernel"},
      {"FCN_BLAS_PRETEND_CORENAME", {}, "tests only: act as if OpenBLAS had chosen this kernel"},
      {"OMPI_COMM_WORLD_SIZE", {}, "set by MPI launchers (with PMI_SIZE, PMIX_RANK): fcn trains data-parallel"},
      {"PMI_SIZE", {}, "set by MPI launchers"},
      {"PMIX_RANK", {}, "set by MPI launchers"},
  };
  return table;
}

namespace {

const EnvVariable& find_variable(const std::string& name) {
  for (const EnvVariable& variable : environment_variables())
    if (variable.name == name) return variable;
  throw Error("internal: environment variable " + name + " is not in fcn's table (src/core/environment.cpp)");
}

std::string joined(const std::vector<std::string>& items, const char* separator) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : separator) + item;
  return out;
}

}  // namespace

std::optional<std::string> env_value(const std::string& name) {
  const EnvVariable& variable = find_variable(name);
  const char* value = std::getenv(name.c_str());
  if (value == nullptr || *value == '\0') return std::nullopt;
  if (variable.choices.empty()) return std::string(value);
  for (const auto& choice : variable.choices)
    if (choice == value) return std::string(value);
  throw Error(name + "=" + value + ": expected one of " + joined(variable.choices, ", ") + " (" + variable.help + ")");
}

bool env_flag(const std::string& name, bool fallback) {
  const std::optional<std::string> value = env_value(name);
  return value ? *value == "1" : fallback;
}

void check_environment() {
  for (const EnvVariable& variable : environment_variables()) env_value(variable.name);
}

std::string environment_help() {
  std::string out = "Environment:\n";
  for (const EnvVariable& variable : environment_variables()) {
    std::string usage = variable.name + (variable.choices.empty() ? "" : "=" + joined(variable.choices, "|"));
    usage.resize(std::max<size_t>(usage.size() + 2, 30), ' ');
    out += "  " + usage + variable.help + "\n";
  }
  return out;
}

}  // namespace fcn
