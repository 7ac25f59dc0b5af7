#include "fcn/cpu/runtime_environment.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "fcn/core/environment.hpp"
#include "fcn/cpu/blas_kernel.hpp"

extern char** environ;

namespace fcn {

void tune_runtime_environment(int argc, char** argv) {
  if (argc < 1) return;
  std::vector<std::pair<std::string, std::string>> missing;
  if (!env_value("OMP_WAIT_POLICY")) missing.emplace_back("OMP_WAIT_POLICY", "passive");
  for (auto& setting : blas_kernel_environment()) missing.push_back(std::move(setting));
  if (missing.empty()) return;
  for (const auto& [name, value] : missing) setenv(name.c_str(), value.c_str(), 1);
  execve("/proc/self/exe", argv, environ);
  const int err = errno;
  std::string names;
  for (const auto& [name, value] : missing) {
    names += (names.empty() ? "" : ", ") + name + "=" + value;
    unsetenv(name.c_str());
  }
  std::fprintf(stderr, "warning: could not re-execute with %s (%s); running with the libraries' defaults\n",
               names.c_str(), std::strerror(err));
}

}  // namespace fcn
