#pragma once
// The compute thread count: OpenMP (fcn's own kernels, and oneDNN's sgemm where it runs the fp32
// GEMMs) and OpenBLAS (GEMM) always run with the same number of threads.

namespace fcn {

// Sets both pools to `threads` (<= 0: every core of the machine) and
// returns the count set.
int set_threads(int threads);

}  // namespace fcn
