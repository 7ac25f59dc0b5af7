// sgemm_peak: fp32 GEMM GFLOP/s through fcn's one GEMM door (cpu::gemm: the
// library and kernel fcn's convolutions use, OpenBLAS's or oneDNN's sgemm:
// fp32_gemm.hpp), on a large square GEMM and the GEMM shapes of FCN-VGG16
// im2col convolution (500x500 input, conv1_1 pad 100), at the thread count
// fcn runs with (--threads, else every core). Each shape: median of --reps
// timed runs after one warm-up.
// Each line also gives the rate from the process's CPU time (GFLOP per
// CPU-second times the threads): on a busy machine the wall-clock rate sinks,
// that one mostly does not.
// The last stdout line is one JSON object:
//   {"sgemm_peak_gflops": X, "kernel": "...", "kernel_report": "...", "threads": T, "shapes": {...}}
// Usage: sgemm_peak [--threads T] [--reps R]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fcn/core/error.hpp"
#include "fcn/cpu/fp32_gemm.hpp"
#include "fcn/cpu/gemm.hpp"
#include "fcn/cpu/threads.hpp"

#include "tool_main.hpp"

namespace {

struct Shape {
  const char* name;
  bool trans_a, trans_b;
  int m, n, k;
};

// M = out channels, N = out pixels, K = in_ch*k*k; wgrad is C = A B^T,
// dgrad C = A^T B, as in a conv layer's backward.
const Shape kShapes[] = {
    {"square2048", false, false, 2048, 2048, 2048},      {"conv3_2 fwd", false, false, 256, 175 * 175, 256 * 9},
    {"conv4_2 fwd", false, false, 512, 88 * 88, 512 * 9}, {"conv4_2 wgrad", false, true, 512, 512 * 9, 88 * 88},
    {"conv4_2 dgrad", true, false, 512 * 9, 88 * 88, 512}, {"fc6 fwd", false, false, 4096, 16 * 16, 512 * 49}};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec * 1e-9;
}

struct Rate {
  double wall_gflops;  // median over the runs
  double cpu_gflops;   // GFLOP per process CPU-second times the threads
};

// GFLOP/s of `reps` runs of C[m,n] = op(A) op(B), after one warm-up.
Rate measure(const Shape& s, int reps, int threads, std::mt19937& rng) {
  std::uniform_real_distribution<float> uniform(-1.f, 1.f);
  std::vector<float> a(static_cast<size_t>(s.m) * s.k), b(static_cast<size_t>(s.k) * s.n), c(static_cast<size_t>(s.m) * s.n);
  for (float& v : a) v = uniform(rng);
  for (float& v : b) v = uniform(rng);
  auto run = [&] { fcn::cpu::gemm(s.trans_a, s.trans_b, s.m, s.n, s.k, 1.f, a.data(), b.data(), 0.f, c.data()); };
  run();
  std::vector<double> times;
  double cpu0 = process_cpu_seconds();
  for (int r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    run();
    times.push_back(seconds_since(t0));
  }
  double cpu = process_cpu_seconds() - cpu0;
  std::sort(times.begin(), times.end());
  double gflop = 2.0 * s.m * s.n * s.k / 1e9;
  return {gflop / times[times.size() / 2], gflop * reps * threads / cpu};
}

int run(int argc, char** argv) {
  const TimingArgs args = parse_timing_args(argc, argv, 3, "sgemm_peak [--threads T] [--reps R]");
  const int threads = fcn::set_threads(args.threads);
  const int reps = args.reps;
  std::printf("kernel: %s, %d threads\n", fcn::cpu::fp32_gemm_report().c_str(), threads);
  std::mt19937 rng(1);
  nlohmann::json shapes = nlohmann::json::object();
  double peak = 0;
  for (const Shape& s : kShapes) {
    Rate rate = measure(s, reps, threads, rng);
    double gflops = rate.wall_gflops;
    std::printf("%-14s M=%5d N=%6d K=%5d  %7.1f GFLOP/s  (%.1f from CPU time)\n", s.name, s.m, s.n,
                s.k, gflops, rate.cpu_gflops);
    std::fflush(stdout);
    shapes[s.name] = std::round(gflops * 10) / 10;
    peak = std::max(peak, gflops);
  }
  nlohmann::json out = {{"sgemm_peak_gflops", std::round(peak * 10) / 10},
                        {"kernel", fcn::cpu::fp32_gemm_kernel()},
                        {"kernel_report", fcn::cpu::fp32_gemm_report()},
                        {"threads", threads},
                        {"shapes", shapes}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return tool_main(argc, argv, run); }
