#pragma once
// The entry point of the small C++ tools (sgemm_peak, gemm_floor): the BLAS
// kernel and OpenMP wait policy are set first (which may re-execute the tool
// in place), and an exception becomes one line on stderr and exit 1.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "fcn/core/environment.hpp"
#include "fcn/core/error.hpp"
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

// The timing tools' arguments: --threads T (0: leave the thread count as it
// is) and --reps R. Throws fcn::Error naming a bad one; `usage` ends that line.
struct TimingArgs {
  int threads = 0;
  int reps = 3;
};
inline TimingArgs parse_timing_args(int argc, char** argv, int default_reps, const char* usage) {
  TimingArgs args;
  args.reps = default_reps;
  for (int i = 1; i < argc; i += 2) {
    const std::string name = argv[i];
    if (name != "--threads" && name != "--reps") throw fcn::Error("unknown argument " + name + " (usage: " + usage + ")");
    if (i + 1 >= argc) throw fcn::Error(name + ": missing value");
    const int value = std::atoi(argv[i + 1]);
    if (value < 1) throw fcn::Error(name + ": expected a positive integer, got " + argv[i + 1]);
    (name == "--threads" ? args.threads : args.reps) = value;
  }
  return args;
}
