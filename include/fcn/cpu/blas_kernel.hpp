#pragma once
// OpenBLAS kernel selection: Debian's OpenBLAS 0.3.21 picks its kernel from
// the CPU model at load time and falls back to its generic Prescott kernel on
// CPUs it does not know (7x slower sgemm on a new Xeon). fcn compares the
// kernel OpenBLAS chose with what the CPU supports and, unless the user set
// OPENBLAS_CORETYPE, re-executes itself in place with a better one
// (runtime_environment.hpp).
//
// Environment:
//   OPENBLAS_CORETYPE          set by the user: always kept, never overridden.
//   FCN_BLAS_REEXEC            set by fcn before its re-exec (value: the kernel
//                              OpenBLAS had chosen); guards against a loop.
//   FCN_BLAS_PRETEND_CORENAME  testing only: pretend OpenBLAS chose this kernel,
//                              so tests/cli/blas_kernel.sh can drive the re-exec
//                              on any machine.
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace fcn {

// What the decision needs from cpuid. AVX/AVX-512 flags are only true when
// the OS also saves the register state (XGETBV), i.e. when they are usable.
struct CpuFeatures {
  bool x86 = false;
  std::string vendor;  // "GenuineIntel", "AuthenticAMD", ...
  int family = 0;      // with the extended family folded in
  int model = 0;       // with the extended model folded in
  bool avx = false;
  bool avx2 = false;
  bool fma = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512dq = false;
  bool avx512vl = false;
  bool avx512_bf16 = false;
};

// Reads the features of the CPU this process runs on (cpuid + xgetbv).
CpuFeatures detect_cpu_features();

// Speed rank of an OpenBLAS core name for sgemm: 0 pre-AVX (Prescott, Core2,
// Nehalem, ...), 1 AVX (Sandybridge, Bulldozer family), 2 AVX2 (Haswell, Zen),
// 3 SkylakeX, 4 Cooperlake, 5 SapphireRapids. Unknown names rank -1.
int blas_kernel_rank(const std::string& corename);

// The best OpenBLAS kernel the CPU can run: Cooperlake, SkylakeX, Haswell,
// Sandybridge or Prescott; "" when the CPU is not x86.
std::string best_blas_kernel(const CpuFeatures& cpu);

// The decision, pure so that it can be tested with a table.
struct BlasKernelDecision {
  std::string force;   // kernel to set in OPENBLAS_CORETYPE; "" = keep OpenBLAS's choice
  std::string reason;  // one line, for logs and tests
};

// Forces best_blas_kernel(cpu) when OpenBLAS's kernel is "far below" it for
// sgemm: SkylakeX counts as good as Cooperlake (same sgemm code), and on
// Zen 4, whose AVX-512 runs on 256-bit units, Haswell/Zen count as good as
// both (measured). openblas_core: what openblas_get_corename() returned.
// user_coretype: the user's OPENBLAS_CORETYPE, if set (always kept).
BlasKernelDecision decide_blas_kernel(const CpuFeatures& cpu, const std::string& openblas_core,
                                      const std::optional<std::string>& user_coretype);

// The variables to set before OpenBLAS loads (tune_runtime_environment in
// runtime_environment.hpp re-executes with them): OPENBLAS_CORETYPE and the
// guard FCN_BLAS_REEXEC when OpenBLAS chose a kernel far below what the CPU
// supports; empty when nothing needs doing or the guard is already set.
std::vector<std::pair<std::string, std::string>> blas_kernel_environment();

// The kernel in use and how it came about, plus the OpenBLAS thread count:
// "Cooperlake (chosen by OpenBLAS), 2 threads",
// "Cooperlake (selected by fcn; OpenBLAS chose Prescott), 2 threads",
// "SkylakeX (OPENBLAS_CORETYPE set by user), 2 threads",
// "Haswell (OPENBLAS_CORETYPE set by user; this CPU supports Cooperlake,
// a faster kernel: unset OPENBLAS_CORETYPE), 2 threads" when the user's
// kernel is far below the CPU's (decide_blas_kernel's rule).
std::string blas_kernel_report();

// Just the kernel name OpenBLAS runs with, e.g. "Cooperlake".
std::string blas_kernel_name();

}  // namespace fcn
