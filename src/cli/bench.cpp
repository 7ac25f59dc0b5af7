// fcn bench: times train steps and inference of a config's model on random
// data, with the FLOP rate, peak memory, the BLAS kernel and the precision
// the convolutions compute in (model.precision, or --precision).
//
// A train step is what `fcn train` does per step at iter_size 1: zero the
// param grads, forward in train mode of a batch of --batch images (the
// config's solver.batch_size by default), backward from the loss, one SGD
// update. Inference is one test-mode forward of the same batch on the graph
// fcn predict and eval build (inference only: no loss or auxiliary head, no
// ReLU bits for a backward), made after the train steps have released
// theirs. Each figure is the median of --iters timed runs
// after one warm-up run. GFLOP counts a train step as 3x the forward FLOPs
// (forward, weight grad, data grad), as PyTorch-side FLOP counters do.
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>
#include <random>

#include "cli/commands.hpp"
#include "cli/model_args.hpp"
#include "fcn/cpu/blas_kernel.hpp"
#include "fcn/cpu/gemm.hpp"
#include "fcn/cpu/threads.hpp"
#include "fcn/core/error.hpp"
#include "fcn/graph/graph.hpp"
#include "fcn/train/solver.hpp"

namespace fcn::cli {

namespace {

struct BenchArgs {
  ModelArgs model;
  std::vector<int64_t> size = {500, 500};
  int64_t batch = 0;  // 0: the config's solver.batch_size
  int iters = 3;
  int threads = 0;  // 0: all cores
  uint64_t seed = 1337;
  bool json_output = false;
  std::string precision;  // --precision: "" or a --set model.precision
};

// Wall-clock and process CPU time (all threads). On a machine shared with
// other work the wall time of a run stretches; its CPU time mostly does not.
struct Stopwatch {
  std::chrono::steady_clock::time_point wall = std::chrono::steady_clock::now();
  std::clock_t cpu = std::clock();
  double wall_s() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - wall).count(); }
  double cpu_s() const { return static_cast<double>(std::clock() - cpu) / CLOCKS_PER_SEC; }
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Peak resident set size of this process so far, MiB (ru_maxrss is KiB on Linux).
double peak_rss_mb() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

// The class count the loss expects: the channels of its score input.
int64_t loss_classes(Graph& graph) {
  for (const auto& layer : graph.layers())
    if (layer->is_loss() && !layer->inputs().empty()) return graph.blob_shape(layer->inputs()[0])[1];
  return 0;
}

// Random image (roughly the range of mean-subtracted pixels) and labels in
// [0, classes), or normal values for any other input.
void fill_inputs(Graph& graph, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> pixel(0.f, 50.f);
  const int64_t classes = loss_classes(graph);
  for (const auto& name : graph.input_names()) {
    Tensor& t = graph.blob(name);
    if (name == "label" && classes > 0) {
      std::uniform_int_distribution<int64_t> label(0, classes - 1);
      for (int64_t i = 0; i < t.numel(); ++i) t[i] = static_cast<float>(label(rng));
    } else {
      for (int64_t i = 0; i < t.numel(); ++i) t[i] = pixel(rng);
    }
  }
}

// The config's solver section (momentum, weight decay, lr multipliers shape
// the update's cost only by which params they touch); the reference recipe's
// values with --graph or without the section.
SolverConfig bench_solver_config(const ModelArgs& model) {
  if (model.config_file.empty()) return SolverConfig{};
  return load_config(model.config_file, model.overrides).solver;
}

// --precision P is --set model.precision=P; a --set that says otherwise is an error.
void add_precision_override(const std::string& precision, std::vector<std::string>& overrides) {
  if (precision.empty()) return;
  parse_precision(precision, "--precision");
  json given = json::object();
  apply_overrides(given, overrides);
  const json::json_pointer key("/model/precision");
  if (given.contains(key) && given[key] != precision)
    throw Error("--precision " + precision + " and --set model.precision=" +
                (given[key].is_string() ? given[key].get<std::string>() : given[key].dump()) +
                " disagree; give one of them");
  overrides.push_back("model.precision=" + precision);
}

void run_bench(const BenchArgs& args) {
  if (args.size.size() != 2 || args.size[0] < 1 || args.size[1] < 1)
    throw Error("--size: expected two positive integers H W");
  if (args.iters < 1) throw Error("--iters: expected a positive integer");
  // capped as solver.threads: libgomp puts per-thread data on the stack and overflows it near 100000
  if (args.threads < 0 || args.threads > 1024) throw Error("--threads: expected 0 (all cores) or 1..1024");
  if (args.batch < 0 || args.batch > 4096) throw Error("--batch: expected 1..4096 images (0: solver.batch_size)");
  const int threads = set_threads(args.threads);
  const SolverConfig solver_config = bench_solver_config(args.model);
  const int64_t batch = args.batch > 0 ? args.batch : solver_config.batch_size;

  const ModelSource model = load_model_source(args.model);
  GraphOptions options;
  options.reuse_values = true;  // as fcn train and fcn predict run it
  options.skip_loss_in_test = true;  // the inference runs: no loss, no auxiliary head (as fcn predict)
  options.precision = model.precision;
  // the graph as fcn train builds it, then (after the train steps) as fcn predict and eval do
  const auto make_graph = [&](bool inference_only) {
    GraphOptions graph_options = options;
    graph_options.inference_only = inference_only;
    auto made = std::make_unique<Graph>(model.spec, "graph", graph_options);
    made->reshape(made->input_shapes(args.size[0], args.size[1], batch));
    made->init_params(args.seed);
    fill_inputs(*made, args.seed + 1);
    return made;
  };
  auto training = make_graph(false);
  Graph& graph = *training;

  Solver solver(solver_config);
  const std::vector<Param*> params = graph.params();
  const double gflop_forward = graph.inference_flops() / 1e9;
  const double gflop_train = 3.0 * graph.forward_flops() / 1e9;
  const std::string kernel = blas_kernel_report();
  spdlog::info("bench {} x {}x{}, {} threads, BLAS {}; {:.1f} GFLOP forward, {:.1f} GFLOP per train step", batch,
               args.size[0], args.size[1], threads, kernel, gflop_forward, gflop_train);

  spdlog::info("blob buffers {:.0f} MiB", static_cast<double>(graph.blob_buffer_bytes()) / (1 << 20));
  std::vector<double> train_times, train_cpu;
  double outside_graph_s = 0;  // zeroing the param grads and the SGD update
  for (int it = 0; it <= args.iters; ++it) {
    if (it == 1) graph.reset_timings();  // profile the timed steps only
    const Stopwatch watch;
    graph.zero_param_grads(true);  // as fcn train does
    const double zero_s = watch.wall_s();
    graph.forward(Mode::train);
    graph.backward();
    const double update_start = watch.wall_s();
    solver.step(params, solver.learning_rate(it));
    const double t = watch.wall_s(), cpu = watch.cpu_s();
    if (it > 0) outside_graph_s += zero_s + (t - update_start);
    spdlog::info("train step {}{}: {:.3f} s ({:.3f} CPU s), loss {:.4g}", it, it == 0 ? " (warm-up)" : "", t, cpu,
                 graph.loss());
    if (it > 0) {
      train_times.push_back(t);
      train_cpu.push_back(cpu);
    }
  }
  const double train_rss = peak_rss_mb();
  if (graph.profiling()) {
    std::fprintf(stderr, "per-layer times, train steps (FCN_PROFILE):\n%s", graph.timing_table().c_str());
    std::fprintf(stderr, "outside the graph: zeroing param grads + SGD update %.2f ms per step\n",
                 1e3 * outside_graph_s / args.iters);
    graph.reset_timings();
  }

  const double blob_buffer_mb = static_cast<double>(graph.blob_buffer_bytes()) / (1 << 20);
  training.reset();
  auto inference = make_graph(true);
  std::vector<double> infer_times, infer_cpu;
  for (int it = 0; it <= args.iters; ++it) {
    if (it == 1) inference->reset_timings();
    const Stopwatch watch;
    inference->forward(Mode::test);
    const double t = watch.wall_s(), cpu = watch.cpu_s();
    spdlog::info("inference {}{}: {:.3f} s ({:.3f} CPU s)", it, it == 0 ? " (warm-up)" : "", t, cpu);
    if (it > 0) {
      infer_times.push_back(t);
      infer_cpu.push_back(cpu);
    }
  }

  if (inference->profiling())
    std::fprintf(stderr, "per-layer times, inference (FCN_PROFILE):\n%s", inference->timing_table().c_str());

  const double train_s = median(train_times), infer_s = median(infer_times);
  const double rss = std::max(train_rss, peak_rss_mb());
  if (args.json_output) {
    const json out = {{"train_step_s", train_s},
                      {"infer_s", infer_s},
                      {"peak_rss_mb", rss},
                      {"train_peak_rss_mb", train_rss},
                      {"blob_buffer_mb", blob_buffer_mb},
                      {"gflop", gflop_train},
                      {"gflops", gflop_train / train_s},
                      {"infer_gflops", gflop_forward / infer_s},
                      {"train_steps_s", train_times},
                      {"infer_runs_s", infer_times},
                      {"train_step_cpu_s", median(train_cpu)},
                      {"infer_cpu_s", median(infer_cpu)},
                      {"kernel", kernel},
                      {"precision", precision_name(model.precision)},
                      {"precision_kernel", cpu::precision_kernel(model.precision)},
                      {"threads", threads},
                      {"size", args.size},
                      {"batch", batch},
                      {"images_per_s", static_cast<double>(batch) / train_s},
                      {"infer_images_per_s", static_cast<double>(batch) / infer_s}};
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("input %lld x %lldx%lld, %d threads, BLAS %s\n", static_cast<long long>(batch),
                static_cast<long long>(args.size[0]), static_cast<long long>(args.size[1]), threads, kernel.c_str());
    std::printf("precision   %s\n", cpu::describe_precision(model.precision).c_str());
    std::printf("train step  %8.3f s  %7.1f GFLOP/s  (%.1f GFLOP, median of %d)\n", train_s, gflop_train / train_s,
                gflop_train, args.iters);
    std::printf("inference   %8.3f s  %7.1f GFLOP/s  (%.1f GFLOP, median of %d)\n", infer_s,
                gflop_forward / infer_s, gflop_forward, args.iters);
    std::printf("CPU time    %8.3f s per train step, %.3f s per inference (all threads)\n", median(train_cpu),
                median(infer_cpu));
    std::printf("peak RSS    %8.0f MiB (training)\n", train_rss);
  }
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto args = std::make_shared<BenchArgs>();
  auto* cmd = app.add_subcommand(
      "bench",
      "Time train steps (forward + backward + SGD update) and inference of a config's model\n"
      "on random data: medians after one warm-up, GFLOP/s (a train step counts 3x the forward\n"
      "FLOPs), peak RSS, the BLAS kernel and the precision (fp32 via OpenBLAS, bf16 via oneDNN).\n"
      "Uses the config's model and solver sections only (no data, no weights).");
  cmd->footer(
      "Environment: FCN_PROFILE=1 prints per-layer forward/backward times; FCN_WINOGRAD=0|2|4\n"
      "forces im2col or one Winograd tile size for every 3x3 conv (default: F(2x2,3x3) forward and\n"
      "F(4x4,3x3) backward in training, F(4x4,3x3) forward in inference). tools/bench.sh runs this\n"
      "next to PyTorch and prints a table.");
  add_model_options(cmd, args->model, false);
  cmd->add_option("--size", args->size, "input height and width")->expected(2)->capture_default_str();
  cmd->add_option("--batch", args->batch, "images per forward pass (0: the config's solver.batch_size, else 1)")
      ->capture_default_str();
  cmd->add_option("--iters", args->iters, "timed runs of each kind (after one warm-up)")->capture_default_str();
  cmd->add_option("--threads", args->threads, "threads for BLAS and OpenMP (0: all cores)")->capture_default_str();
  cmd->add_option("--seed", args->seed, "seed for params and random inputs")->capture_default_str();
  cmd->add_option("--precision", args->precision,
                  "fp32 or bf16: what the convolutions compute in (--set model.precision=...)");
  cmd->add_flag("--json", args->json_output, "print one JSON object (the last stdout line)");
  cmd->callback([args] {
    add_precision_override(args->precision, args->model.overrides);
    run_bench(*args);
  });
}

}  // namespace fcn::cli
