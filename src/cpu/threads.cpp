#include "fcn/cpu/threads.hpp"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <thread>

namespace fcn {

int set_threads(int threads) {
  const int count = threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  openblas_set_num_threads(count);
  omp_set_num_threads(count);
  return count;
}

}  // namespace fcn
