#pragma once
// Wall-clock and process CPU time (all threads) since construction: fcn
// bench's timings and the graph's per-layer profile (FCN_PROFILE). On a
// machine shared with other work the wall time stretches; the CPU time
// mostly does not, and CPU / wall is how many threads were busy.
#include <chrono>
#include <ctime>

namespace fcn {

struct Stopwatch {
  std::chrono::steady_clock::time_point wall = std::chrono::steady_clock::now();
  std::clock_t cpu = std::clock();
  double wall_s() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - wall).count(); }
  double cpu_s() const { return static_cast<double>(std::clock() - cpu) / CLOCKS_PER_SEC; }
};

}  // namespace fcn
