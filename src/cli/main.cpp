// fcn: train, evaluate and run Fully Convolutional Networks for semantic segmentation.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <exception>
#include <string>

#include "cli/commands.hpp"
#include "fcn/cpu/bf16_gemm.hpp"
#include "fcn/cpu/blas_kernel.hpp"
#include "fcn/cpu/gemm.hpp"
#include "fcn/cpu/runtime_environment.hpp"
#include "fcn/core/environment.hpp"
#include "fcn/core/error.hpp"
#include "fcn/core/version.hpp"
#include "fcn/cpu/fp32_gemm.hpp"

namespace {

// Build and runtime facts for --version: compiler, BLAS kernel, the fp32 GEMM's library, bf16 support
// (tests of model.precision "bf16" skip without it), MPI, sanitizers (tests
// that measure memory or time skip on an instrumented build).
std::string build_info() {
  std::string info = "compiler: " + std::string(__VERSION__) + "\n";
  info += "BLAS: OpenBLAS, kernel " + fcn::blas_kernel_report() + "\n";
  info += "fp32 GEMM: " + fcn::cpu::fp32_gemm_report() + "\n";
  const fcn::cpu::Bf16Support& bf16 = fcn::cpu::bf16_support();
  info += "bf16: " + (bf16.available ? fcn::cpu::precision_kernel(fcn::Precision::bf16) : "none, " + bf16.missing) + "\n";
#ifdef FCN_HAVE_MPI
  info += "MPI: enabled\n";
#else
  info += "MPI: not built\n";
#endif
#ifdef FCN_SANITIZE_BUILD
  info += "sanitizers: address, undefined (FCN_SANITIZE)\n";
#else
  info += "sanitizers: none\n";
#endif
  return info;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    fcn::check_environment();  // a mistyped FCN_* value stops here, before any work
  } catch (const fcn::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  fcn::tune_runtime_environment(argc, argv);  // may re-exec once with the libraries' settings
  auto logger = spdlog::stderr_color_mt("fcn");
  logger->set_pattern("%^%l%$: %v");
  spdlog::set_default_logger(logger);

  CLI::App app{"fcn " + fcn::version_string() +
               " - Fully Convolutional Networks for semantic segmentation.\n"
               "Train FCN-32s/16s/8s from a JSON config, score mean IoU, predict masks.\n"
               "Start with tools/demo.sh; every command has --help."};
  app.set_version_flag("--version", [] { return "fcn " + fcn::version_string() + "\n" + build_info(); });
  app.footer(fcn::environment_help());
  app.require_subcommand(1);
  fcn::cli::add_train_command(app);
  fcn::cli::add_eval_command(app);
  fcn::cli::add_predict_command(app);
  fcn::cli::add_describe_command(app);
  fcn::cli::add_forward_command(app);
  fcn::cli::add_make_synthetic_command(app);
  fcn::cli::add_bench_command(app);
  fcn::cli::add_explain_command(app);
  fcn::cli::add_import_caffe_command(app);
  fcn::cli::add_export_onnx_command(app);
  fcn::cli::add_inspect_data_command(app);
  fcn::cli::add_report_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const fcn::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
