#pragma once
// The entry point of the small C++ tools (sgemm_peak, gemm_floor): the BLAS
// kernel and OpenMP wait policy are set first (which may re-execute the tool
// in place), and an exception becomes one line on stderr and exit 1.
#include <cstdio>
#include <exception>

#include "fcn/core/environment.hpp"
#include "fcn/cpu/runtime_environment.hpp"

inline int tool_main(int argc, char** argv, int (*run)(int, char**)) {
  try {
    fcn::check_environment();
    fcn::tune_runtime_environment(argc, argv);
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
