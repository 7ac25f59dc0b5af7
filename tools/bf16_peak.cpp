// bf16_peak: what bf16 hardware gives on this CPU, as the yardstick of
// model.precision "bf16": one large convolution in oneDNN (256 -> 256
// channels, 3x3, pad 1, 128x128, oneDNN's own blocked layouts: its best
// case) and the bf16 GEMMs fcn itself runs (fcn::cpu::gemm in bf16: operands
// rounded from float, oneDNN matmul) on a square shape and on fc6's forward
// at 500x500. Each: median of --reps timed runs after one warm-up, at the
// OpenMP thread count (OMP_NUM_THREADS or --threads).
// The last stdout line is one JSON object:
//   {"bf16_conv_gflops": X, "bf16_gemm_gflops": Y, "kernel": "...", "threads": T, "shapes": {...}}
// Usage: bf16_peak [--threads T] [--reps R]   (exit 1 on a CPU without bf16)
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <oneapi/dnnl/dnnl.hpp>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fcn/core/error.hpp"
#include "fcn/cpu/bf16_gemm.hpp"
#include "fcn/cpu/gemm.hpp"

#include "tool_main.hpp"

namespace {

// median seconds of `reps` runs after one warm-up
double median_seconds(int reps, const std::function<void()>& run) {
  run();
  std::vector<double> times;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    run();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

double conv_gflops(int reps) {
  using dnnl::memory;
  const memory::dim n = 1, c = 256, k = 256, h = 128, w = 128;
  const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  const memory::desc src({n, c, h, w}, memory::data_type::bf16, memory::format_tag::any);
  const memory::desc weights({k, c, 3, 3}, memory::data_type::bf16, memory::format_tag::any);
  const memory::desc dst({n, k, h, w}, memory::data_type::f32, memory::format_tag::any);
  const dnnl::convolution_forward::primitive_desc pd(
      dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, src,
                                      weights, dst, {1, 1}, {1, 1}, {1, 1}),
      engine);
  std::printf("conv kernel: %s\n", pd.impl_info_str());
  memory src_mem(pd.src_desc(), engine), weights_mem(pd.weights_desc(), engine), dst_mem(pd.dst_desc(), engine);
  std::memset(src_mem.get_data_handle(), 0, pd.src_desc().get_size());
  std::memset(weights_mem.get_data_handle(), 0, pd.weights_desc().get_size());
  dnnl::convolution_forward conv(pd);
  const double seconds = median_seconds(reps, [&] {
    conv.execute(stream, {{DNNL_ARG_SRC, src_mem}, {DNNL_ARG_WEIGHTS, weights_mem}, {DNNL_ARG_DST, dst_mem}});
    stream.wait();
  });
  return 2.0 * n * k * h * w * c * 9 / seconds / 1e9;
}

double gemm_gflops(int64_t m, int64_t n, int64_t k, int reps) {
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> uniform(-1.f, 1.f);
  std::vector<float> a(static_cast<size_t>(m * k)), b(static_cast<size_t>(k * n)), c(static_cast<size_t>(m * n));
  for (float& v : a) v = uniform(rng);
  for (float& v : b) v = uniform(rng);
  const double seconds = median_seconds(reps, [&] {
    fcn::cpu::gemm(fcn::Precision::bf16, false, false, m, n, k, 1.f, a.data(), b.data(), 0.f, c.data());
  });
  return 2.0 * m * n * k / seconds / 1e9;
}

int run(int argc, char** argv) {
  const TimingArgs args = parse_timing_args(argc, argv, 5, "bf16_peak [--threads T] [--reps R]");
  if (args.threads > 0) omp_set_num_threads(args.threads);
  const int reps = args.reps;
  fcn::cpu::require_bf16("bf16_peak");
  const std::string kernel = fcn::cpu::precision_kernel(fcn::Precision::bf16);
  std::printf("kernel: %s, %d threads\n", kernel.c_str(), omp_get_max_threads());
  const double conv = conv_gflops(reps);
  std::printf("conv 256->256 3x3 128x128 (oneDNN blocked)  %7.1f GFLOP/s\n", conv);
  nlohmann::json shapes = {{"conv256_3x3_128", std::round(conv * 10) / 10}};
  struct Shape {
    const char* name;
    int64_t m, n, k;
  };
  double gemm_peak = 0;
  for (const Shape& s : {Shape{"square2048", 2048, 2048, 2048}, Shape{"fc6 fwd", 4096, 256, 25088}}) {
    const double rate = gemm_gflops(s.m, s.n, s.k, reps);
    std::printf("gemm %-10s M=%5ld N=%5ld K=%5ld  %7.1f GFLOP/s\n", s.name, static_cast<long>(s.m),
                static_cast<long>(s.n), static_cast<long>(s.k), rate);
    std::fflush(stdout);
    shapes[s.name] = std::round(rate * 10) / 10;
    gemm_peak = std::max(gemm_peak, rate);
  }
  const nlohmann::json out = {{"bf16_conv_gflops", std::round(conv * 10) / 10},
                              {"bf16_gemm_gflops", std::round(gemm_peak * 10) / 10},
                              {"kernel", kernel},
                              {"threads", omp_get_max_threads()},
                              {"shapes", shapes}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return tool_main(argc, argv, run); }
