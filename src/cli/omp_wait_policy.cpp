// fcn's idle OpenMP threads sleep instead of spinning (OMP_WAIT_POLICY=
// passive) unless the user chose a policy.
//
// fcn runs all its parallel work, the GEMMs included, on one OpenMP team
// (src/cpu/gemm.hpp). libgomp's default keeps idle team threads spinning for
// a while after every parallel region; wherever the machine has more
// runnable threads than cores (a shared machine, the data prefetch thread,
// several MPI ranks) the spinning threads take CPU time from the working
// ones. Measured on a busy 2-core machine, FCN-8s at 500x500, 2 threads: a
// train step took 10.4 s with libgomp's default and 9.0 s passive (wall and
// CPU time alike).
//
// libgomp reads OMP_WAIT_POLICY once, while it initialises, before main()
// and before any constructor of the program: setting the variable in the
// process is too late (and glibc resets the environment after the
// .preinit_array functions run). So the earliest hook there is, the
// executable's .preinit_array, sets it and re-executes the program in place
// (execve: same pid, as the OpenBLAS kernel selection does). With the
// variable set, by the user or by that first run, nothing happens. If the
// re-exec fails, fcn carries on with libgomp's default.
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace {

void prefer_passive_openmp_wait(int argc, char** argv, char** envp) {
  if (argc < 1 || !envp) return;
  size_t count = 0;
  for (char** e = envp; *e; ++e, ++count)
    if (std::strncmp(*e, "OMP_WAIT_POLICY=", 16) == 0) return;  // the user's choice, or already re-executed
  // the environment as the program received it plus the variable (glibc's
  // environ is not set up yet this early: build the array by hand)
  char** env = static_cast<char**>(std::malloc((count + 2) * sizeof(char*)));
  if (!env) return;
  std::memcpy(env, envp, count * sizeof(char*));
  static char passive[] = "OMP_WAIT_POLICY=passive";
  env[count] = passive;
  env[count + 1] = nullptr;
  execve("/proc/self/exe", argv, env);
  std::free(env);  // the exec failed: carry on as we are
}

__attribute__((section(".preinit_array"), used)) void (*const kPreferPassiveOpenmpWait)(int, char**, char**) =
    prefer_passive_openmp_wait;

}  // namespace
