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
//
// --precision fp32,bf16 builds both precisions' graphs and runs them side by
// side, a step of each per iteration (each going first in turn), and reports
// the median of the per-iteration ratios: on a shared machine, whose speed
// moves by 10-20% from minute to minute, two processes run one after the
// other gave FCN-8s ratios from 0.59 to 0.67; side by side, three runs gave
// 0.602 to 0.620. Peak RSS then counts both graphs.
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <random>

#include "cli/commands.hpp"
#include "cli/model_args.hpp"
#include "fcn/cpu/blas_kernel.hpp"
#include "fcn/cpu/gemm.hpp"
#include "fcn/cpu/threads.hpp"
#include "fcn/core/error.hpp"
#include "fcn/core/stopwatch.hpp"
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
  // --precision: none (model.precision as configured), one (a --set model.precision), or two
  // (fp32,bf16) run side by side
  std::vector<std::string> precisions;
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

// One precision's model, graph and timings in a bench run.
struct PrecisionRun {
  ModelSource model;
  std::unique_ptr<Graph> graph;
  std::unique_ptr<Solver> solver;
  std::vector<Param*> params;
  double gflop_forward = 0, gflop_train = 0, blob_buffer_mb = 0;
  double outside_graph_s = 0;  // zeroing the param grads and the SGD update
  std::vector<double> train_times, train_cpu, infer_times, infer_cpu;
};

std::string comma_joined(const std::vector<std::string>& names) {
  std::string joined;
  for (size_t i = 0; i < names.size(); ++i) joined += (i ? "," : "") + names[i];
  return joined;
}

// The runs' precisions: "" (the config's) without --precision, else its one
// or two names (CLI11 splits them at the comma and allows two), checked.
std::vector<std::string> precision_list(const std::vector<std::string>& given) {
  if (given.empty()) return {""};
  if (given.size() == 2 && given[0] == given[1])
    throw Error("--precision: expected fp32, bf16, or two different ones separated by a comma, got \"" +
                comma_joined(given) + "\"");
  for (const std::string& name : given) parse_precision(name, "--precision");
  return given;
}

// A train step as fcn train makes it (iteration `it`; 0 is the warm-up).
void train_step(PrecisionRun& run, int it, bool tagged) {
  Graph& graph = *run.graph;
  if (it == 1) graph.reset_timings();  // profile the timed steps only
  const Stopwatch watch;
  graph.zero_param_grads(true);  // as fcn train does
  const double zero_s = watch.wall_s();
  graph.forward(Mode::train);
  graph.backward();
  const double update_start = watch.wall_s();
  run.solver->step(run.params, run.solver->learning_rate(it));
  const double t = watch.wall_s(), cpu = watch.cpu_s();
  spdlog::info("{}train step {}{}: {:.3f} s ({:.3f} CPU s), loss {:.4g}",
               tagged ? precision_name(run.model.precision) + " " : "", it, it == 0 ? " (warm-up)" : "", t, cpu,
               graph.loss());
  if (it == 0) return;
  run.outside_graph_s += zero_s + (t - update_start);
  run.train_times.push_back(t);
  run.train_cpu.push_back(cpu);
}

void inference_run(PrecisionRun& run, int it, bool tagged) {
  if (it == 1) run.graph->reset_timings();
  const Stopwatch watch;
  run.graph->forward(Mode::test);
  const double t = watch.wall_s(), cpu = watch.cpu_s();
  spdlog::info("{}inference {}{}: {:.3f} s ({:.3f} CPU s)", tagged ? precision_name(run.model.precision) + " " : "",
               it, it == 0 ? " (warm-up)" : "", t, cpu);
  if (it == 0) return;
  run.infer_times.push_back(t);
  run.infer_cpu.push_back(cpu);
}

// Runs fn(run, it) for it = 0 (warm-up) .. iters on every run, the runs
// taking turns within an iteration and each going first in turn, so that
// side by side they meet the same moments of a shared machine.
template <class Fn>
void take_turns(std::vector<PrecisionRun>& runs, int iters, Fn fn) {
  const size_t n = runs.size();
  for (int it = 0; it <= iters; ++it)
    for (size_t k = 0; k < n; ++k) fn(runs[(static_cast<size_t>(it) + k) % n], it);
}

// ratio[i] = b[i] / a[i], i.e. of the runs made side by side in iteration i + 1
std::vector<double> pairwise_ratios(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> ratios;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) ratios.push_back(b[i] / a[i]);
  return ratios;
}

json run_json(const PrecisionRun& run, const std::string& kernel, int threads, const std::vector<int64_t>& size,
              int64_t batch) {
  const double train_s = median(run.train_times), infer_s = median(run.infer_times);
  return {{"train_step_s", train_s},
          {"infer_s", infer_s},
          {"blob_buffer_mb", run.blob_buffer_mb},
          {"gflop", run.gflop_train},
          {"gflops", run.gflop_train / train_s},
          {"infer_gflops", run.gflop_forward / infer_s},
          {"train_steps_s", run.train_times},
          {"infer_runs_s", run.infer_times},
          {"train_step_cpu_s", median(run.train_cpu)},
          {"infer_cpu_s", median(run.infer_cpu)},
          {"kernel", kernel},
          {"precision", precision_name(run.model.precision)},
          {"precision_kernel", cpu::precision_kernel(run.model.precision)},
          {"threads", threads},
          {"size", size},
          {"batch", batch},
          {"images_per_s", static_cast<double>(batch) / train_s},
          {"infer_images_per_s", static_cast<double>(batch) / infer_s}};
}

void print_run(const PrecisionRun& run, int iters) {
  const double train_s = median(run.train_times), infer_s = median(run.infer_times);
  std::printf("precision   %s\n", cpu::describe_precision(run.model.precision).c_str());
  std::printf("train step  %8.3f s  %7.1f GFLOP/s  (%.1f GFLOP, median of %d)\n", train_s, run.gflop_train / train_s,
              run.gflop_train, iters);
  std::printf("inference   %8.3f s  %7.1f GFLOP/s  (%.1f GFLOP, median of %d)\n", infer_s,
              run.gflop_forward / infer_s, run.gflop_forward, iters);
  std::printf("CPU time    %8.3f s per train step, %.3f s per inference (all threads)\n", median(run.train_cpu),
              median(run.infer_cpu));
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

  std::vector<PrecisionRun> runs;
  for (const std::string& precision : precision_list(args.precisions)) {
    ModelArgs model_args = args.model;
    add_precision_override(precision, model_args.overrides);
    runs.emplace_back().model = load_model_source(model_args);
  }
  const bool side_by_side = runs.size() > 1;
  // the graph as fcn train builds it, then (after the train steps) as fcn predict and eval do
  const auto make_graph = [&](const ModelSource& model, bool inference_only) {
    GraphOptions options;
    options.reuse_values = true;       // as fcn train and fcn predict run it
    options.skip_loss_in_test = true;  // the inference runs: no loss, no auxiliary head (as fcn predict)
    options.precision = model.precision;
    options.inference_only = inference_only;
    auto made = std::make_unique<Graph>(model.spec, "graph", options);
    made->reshape(made->input_shapes(args.size[0], args.size[1], batch));
    made->init_params(args.seed);
    fill_inputs(*made, args.seed + 1);
    return made;
  };
  const std::string kernel = blas_kernel_report();
  for (PrecisionRun& run : runs) {
    run.graph = make_graph(run.model, false);
    run.solver = std::make_unique<Solver>(solver_config);
    run.params = run.graph->params();
    run.gflop_forward = run.graph->inference_flops() / 1e9;
    run.gflop_train = 3.0 * run.graph->forward_flops() / 1e9;
    run.blob_buffer_mb = static_cast<double>(run.graph->blob_buffer_bytes()) / (1 << 20);
  }
  spdlog::info("bench {} x {}x{}, {} threads, BLAS {}; {:.1f} GFLOP forward, {:.1f} GFLOP per train step", batch,
               args.size[0], args.size[1], threads, kernel, runs[0].gflop_forward, runs[0].gflop_train);
  spdlog::info("blob buffers {:.0f} MiB", runs[0].blob_buffer_mb);
  if (side_by_side)
    spdlog::info("{} and {} side by side: each iteration runs both, each going first in turn",
                 precision_name(runs[0].model.precision), precision_name(runs[1].model.precision));

  take_turns(runs, args.iters, [&](PrecisionRun& run, int it) { train_step(run, it, side_by_side); });
  const double train_rss = peak_rss_mb();
  for (PrecisionRun& run : runs) {
    if (run.graph->profiling()) {
      std::fprintf(stderr, "per-layer times, %strain steps (FCN_PROFILE):\n%s",
                   side_by_side ? (precision_name(run.model.precision) + " ").c_str() : "",
                   run.graph->timing_table().c_str());
      std::fprintf(stderr, "outside the graph: zeroing param grads + SGD update %.2f ms per step\n",
                   1e3 * run.outside_graph_s / args.iters);
    }
    run.graph.reset();
  }
  for (PrecisionRun& run : runs) run.graph = make_graph(run.model, true);
  take_turns(runs, args.iters, [&](PrecisionRun& run, int it) { inference_run(run, it, side_by_side); });
  for (const PrecisionRun& run : runs)
    if (run.graph->profiling())
      std::fprintf(stderr, "per-layer times, %sinference (FCN_PROFILE):\n%s",
                   side_by_side ? (precision_name(run.model.precision) + " ").c_str() : "",
                   run.graph->timing_table().c_str());

  const double rss = std::max(train_rss, peak_rss_mb());
  if (!side_by_side) {
    const PrecisionRun& run = runs[0];
    if (args.json_output) {
      json out = run_json(run, kernel, threads, args.size, batch);
      out["peak_rss_mb"] = rss;
      out["train_peak_rss_mb"] = train_rss;
      std::printf("%s\n", out.dump().c_str());
      return;
    }
    std::printf("input %lld x %lldx%lld, %d threads, BLAS %s\n", static_cast<long long>(batch),
                static_cast<long long>(args.size[0]), static_cast<long long>(args.size[1]), threads, kernel.c_str());
    print_run(run, args.iters);
    std::printf("peak RSS    %8.0f MiB (training)\n", train_rss);
    return;
  }
  // side by side: the ratio of each iteration's pair (both ran within seconds of each other), then their median
  const std::vector<double> train_ratios = pairwise_ratios(runs[0].train_times, runs[1].train_times);
  const std::vector<double> infer_ratios = pairwise_ratios(runs[0].infer_times, runs[1].infer_times);
  const std::string ratio_name =
      precision_name(runs[1].model.precision) + "/" + precision_name(runs[0].model.precision);
  if (args.json_output) {
    const json out = {{"runs", {run_json(runs[0], kernel, threads, args.size, batch),
                                run_json(runs[1], kernel, threads, args.size, batch)}},
                      {"ratio", ratio_name},
                      {"train_step_ratio", median(train_ratios)},
                      {"infer_ratio", median(infer_ratios)},
                      {"train_step_ratios", train_ratios},
                      {"infer_ratios", infer_ratios},
                      {"peak_rss_mb", rss}};
    std::printf("%s\n", out.dump().c_str());
    return;
  }
  std::printf("input %lld x %lldx%lld, %d threads, BLAS %s; %s side by side\n", static_cast<long long>(batch),
              static_cast<long long>(args.size[0]), static_cast<long long>(args.size[1]), threads, kernel.c_str(),
              comma_joined(args.precisions).c_str());
  for (const PrecisionRun& run : runs) print_run(run, args.iters);
  std::printf("%-11s %8.3f train step, %.3f inference (medians of the %d side-by-side pairs' ratios)\n",
              ratio_name.c_str(), median(train_ratios), median(infer_ratios), args.iters);
  std::printf("peak RSS    %8.0f MiB (both precisions' graphs)\n", rss);
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
  cmd->add_option("--precision", args->precisions,
                  "fp32 or bf16: what the convolutions compute in (--set model.precision=...); fp32,bf16\n"
                  "runs both side by side, taking turns step by step, and prints their ratio")
      ->delimiter(',')
      ->expected(1, 2);
  cmd->add_flag("--json", args->json_output, "print one JSON object (the last stdout line)");
  cmd->callback([args] { run_bench(*args); });
}

}  // namespace fcn::cli
