#pragma once
// The environment fcn's runtime libraries read when they load: the one
// start-up re-exec that sets it.
//
// Two settings can only be made before libgomp and OpenBLAS initialise,
// which happens before main():
//  - OMP_WAIT_POLICY=passive (unless the user chose a policy): fcn runs all
//    its parallel work, the GEMMs included, on one OpenMP team, and libgomp's
//    default keeps idle team threads spinning after every parallel region.
//    Wherever the machine has more runnable threads than cores (a shared
//    machine, the prefetch thread, several MPI ranks) they take CPU time from
//    the working ones. Measured on a busy 2-core machine, FCN-8s at 500x500,
//    2 threads: a train step took 10.4 s with libgomp's default, 9.0 s passive.
//  - OPENBLAS_CORETYPE, when OpenBLAS picked a kernel far below what the CPU
//    supports (decide_blas_kernel in blas_kernel.hpp; never when the user set
//    the variable).
// So main() calls tune_runtime_environment first: it collects the settings
// that are missing and, if any, re-executes /proc/self/exe once with the same
// argv (execve: same pid, so a parent or an MPI launcher waiting on the
// process never notices). In the new image every setting is present and
// nothing happens, so it cannot loop.
namespace fcn {

// Returns normally when nothing needs doing, or when the exec fails (then
// with a one-line warning, and fcn runs with the libraries' defaults).
void tune_runtime_environment(int argc, char** argv);

}  // namespace fcn
