// gemm_floor: the GEMM-only lower bound of one im2col FCN-8s (VGG16) train
// step, batch 1: times every GEMM the step needs (forward, weight-grad,
// data-grad) through fcn's GEMM door (cpu::gemm: OpenBLAS's or oneDNN's sgemm,
// whichever fcn runs: fp32_gemm.hpp); no im2col, pooling or
// elementwise cost. A train step of fcn cannot beat this figure. On a busy
// machine the wall-clock figure sinks; "gflops_from_cpu_time" (GFLOP per
// process CPU-second times the threads) mostly does not.
// Usage: gemm_floor [--size S (500)] [--width-div D (1)] [--threads T] [--reps R (1)]
// The last stdout line is one JSON object:
//   {"gemm_floor_s", "fwd_s", "bwd_s", "gflop", "gflops", "size", "width_div", "threads", "kernel", ...}
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fcn/cpu/fp32_gemm.hpp"
#include "fcn/cpu/gemm.hpp"
#include "fcn/cpu/threads.hpp"
#include "fcn/core/error.hpp"

#include "tool_main.hpp"

namespace {

constexpr int kClasses = 21;

struct Layer {
  std::string name;
  int cin, cout, k;
  long hw;             // output pixels of a conv; *input* pixels of a deconv
  bool need_dgrad;     // conv1_1's input is the image: no data gradient
  bool frozen_deconv;  // bilinear upsampling: no weight gradient
};

struct Gemm {
  bool trans_a, trans_b;
  long m, n, k;
};

// 2x2 stride-2 ceil-mode max pool (Caffe), no padding.
int pool_out(int h) { return (h - 1) / 2 + 1; }

// FCN-8s at a square input of `size` with every channel count divided by
// `div` (as torch_fcn.py); conv1_1 pads 100, fc6 is a 7x7 valid conv.
std::vector<Layer> fcn8s_layers(int size, int div) {
  int c1 = 64 / div, c2 = 128 / div, c3 = 256 / div, c4 = 512 / div, f = 4096 / div;
  long s1 = size + 198, s2 = pool_out(s1), s3 = pool_out(s2), s4 = pool_out(s3), s5 = pool_out(s4);
  long fc = pool_out(s5) - 6;                       // fc6 output side
  long up2 = (fc - 1) * 2 + 4, up4 = (up2 - 1) * 2 + 4;  // upscore2, upscore_pool4 output sides
  return {{"conv1_1", 3, c1, 3, s1 * s1, false, false},   {"conv1_2", c1, c1, 3, s1 * s1, true, false},
          {"conv2_1", c1, c2, 3, s2 * s2, true, false},   {"conv2_2", c2, c2, 3, s2 * s2, true, false},
          {"conv3_1", c2, c3, 3, s3 * s3, true, false},   {"conv3_2", c3, c3, 3, s3 * s3, true, false},
          {"conv3_3", c3, c3, 3, s3 * s3, true, false},   {"conv4_1", c3, c4, 3, s4 * s4, true, false},
          {"conv4_2", c4, c4, 3, s4 * s4, true, false},   {"conv4_3", c4, c4, 3, s4 * s4, true, false},
          {"conv5_1", c4, c4, 3, s5 * s5, true, false},   {"conv5_2", c4, c4, 3, s5 * s5, true, false},
          {"conv5_3", c4, c4, 3, s5 * s5, true, false},   {"fc6", c4, f, 7, fc * fc, true, false},
          {"fc7", f, f, 1, fc * fc, true, false},         {"score_fr", f, kClasses, 1, fc * fc, true, false},
          {"score_pool4", c4, kClasses, 1, s5 * s5, true, false},
          {"score_pool3", c3, kClasses, 1, s4 * s4, true, false},
          {"upscore2", kClasses, kClasses, 4, fc * fc, true, true},
          {"upscore_pool4", kClasses, kClasses, 4, up2 * up2, true, true},
          {"upscore8", kClasses, kClasses, 16, up4 * up4, true, true}};
}

// The step's GEMMs for one layer: forward, then backward (weight, data).
std::vector<Gemm> layer_gemms(const Layer& l) {
  long kk = static_cast<long>(l.k) * l.k;
  if (l.frozen_deconv) {
    // forward: col[cout*k*k, HWin] = W^T[cout*k*k, cin] x[cin, HWin]
    // data grad (a conv forward): dx[cin, HWin] = W[cin, cout*k*k] dcol
    return {{true, false, l.cout * kk, l.hw, l.cin}, {false, false, l.cin, l.hw, l.cout * kk}};
  }
  long k = l.cin * kk;
  std::vector<Gemm> gemms = {{false, false, l.cout, l.hw, k},   // y[cout,N] = W[cout,K] col[K,N]
                             {false, true, l.cout, k, l.hw}};   // dW[cout,K] = dy[cout,N] col^T
  if (l.need_dgrad) gemms.push_back({true, false, k, l.hw, l.cout});  // dcol[K,N] = W^T dy
  return gemms;
}

// One set of operand buffers, large enough for every GEMM, filled once so
// that no page fault lands inside a timed call.
struct Buffers {
  std::vector<float> a, b, c;
  explicit Buffers(const std::vector<Layer>& layers) {
    size_t na = 0, nb = 0, nc = 0;
    for (const Layer& l : layers)
      for (const Gemm& g : layer_gemms(l)) {
        na = std::max(na, static_cast<size_t>(g.m * g.k));
        nb = std::max(nb, static_cast<size_t>(g.k * g.n));
        nc = std::max(nc, static_cast<size_t>(g.m * g.n));
      }
    a.assign(na, 0.01f);
    b.assign(nb, 0.01f);
    c.assign(nc, 0.f);
  }
};

// Fastest of `reps` runs of C = op(A) op(B), in seconds.
double time_gemm(const Gemm& g, Buffers& buf, int reps) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    fcn::cpu::gemm(g.trans_a, g.trans_b, g.m, g.n, g.k, 1.f, buf.a.data(), buf.b.data(), 0.f, buf.c.data());
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec * 1e-9;
}

struct Options {
  int size = 500, width_div = 1, reps = 1, threads = 0;  // threads 0: every core
};

int int_arg(int argc, char** argv, int i, int lo, int hi) {
  if (i + 1 >= argc) throw fcn::Error(std::string(argv[i]) + ": missing value");
  char* end = nullptr;
  long value = std::strtol(argv[i + 1], &end, 10);
  if (*end != '\0' || value < lo || value > hi)
    throw fcn::Error(std::string(argv[i]) + ": expected an integer in [" + std::to_string(lo) + ", " +
                     std::to_string(hi) + "], got " + argv[i + 1]);
  return static_cast<int>(value);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--size")
      o.size = int_arg(argc, argv, i, 1, 4096);
    else if (flag == "--width-div")
      o.width_div = int_arg(argc, argv, i, 1, 64);
    else if (flag == "--reps")
      o.reps = int_arg(argc, argv, i, 1, 100);
    else if (flag == "--threads")
      o.threads = int_arg(argc, argv, i, 1, 1024);
    else
      throw fcn::Error("unknown argument " + flag +
                       " (usage: gemm_floor [--size S] [--width-div D] [--threads T] [--reps R])");
  }
  return o;
}

int run(int argc, char** argv) {
  Options o = parse(argc, argv);
  const int threads = fcn::set_threads(o.threads);
  std::vector<Layer> layers = fcn8s_layers(o.size, o.width_div);
  std::printf("FCN-8s %dx%d, width 1/%d, kernel %s\n", o.size, o.size, o.width_div,
              fcn::cpu::fp32_gemm_report().c_str());
  Buffers buf(layers);
  time_gemm({false, false, 256, 256, 256}, buf, 1);  // wake the thread pool
  double fwd = 0, bwd = 0, flop = 0, cpu0 = process_cpu_seconds();
  for (const Layer& l : layers) {
    std::vector<Gemm> gemms = layer_gemms(l);
    std::vector<double> t;
    for (const Gemm& g : gemms) {
      t.push_back(time_gemm(g, buf, o.reps));
      flop += 2.0 * g.m * g.n * g.k;
    }
    fwd += t[0];
    for (size_t i = 1; i < t.size(); ++i) bwd += t[i];
    std::printf("%-14s fwd %.3f  bwd %.3f s\n", l.name.c_str(), t[0], t.size() > 1 ? t[1] + (t.size() > 2 ? t[2] : 0) : 0);
    std::fflush(stdout);
  }
  double total = fwd + bwd, gflops = flop / 1e9 / total;
  double cpu_gflops = flop * o.reps / 1e9 / (process_cpu_seconds() - cpu0) * threads;
  std::printf("GEMM-only train step: fwd %.2f s + bwd %.2f s = %.2f s for %.1f GFLOP (%.1f GFLOP/s; %.1f from CPU time)\n",
              fwd, bwd, total, flop / 1e9, gflops, cpu_gflops);
  auto round3 = [](double x) { return std::round(x * 1000) / 1000; };
  nlohmann::json out = {{"gemm_floor_s", round3(total)}, {"fwd_s", round3(fwd)},
                        {"bwd_s", round3(bwd)},          {"gflop", std::round(flop / 1e8) / 10},
                        {"gflops", std::round(gflops * 10) / 10},
                        {"gflops_from_cpu_time", std::round(cpu_gflops * 10) / 10},
                        {"arch", "fcn8s"},               {"size", o.size},
                        {"width_div", o.width_div},      {"threads", threads},
                        {"kernel", fcn::cpu::fp32_gemm_kernel()}, {"kernel_report", fcn::cpu::fp32_gemm_report()}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return tool_main(argc, argv, run); }
