#include "fcn/cpu/fp32_gemm.hpp"

#include <atomic>
#include <oneapi/dnnl/dnnl.hpp>

#include "fcn/core/environment.hpp"
#include "fcn/cpu/blas_kernel.hpp"

namespace fcn::cpu {

namespace {

// -1 until decided, else a Fp32Gemm
std::atomic<int> chosen{-1};

Fp32GemmDecision decide_here() {
  const std::string kernel = blas_kernel_name();
  const std::string better = decide_blas_kernel(detect_cpu_features(), kernel, std::nullopt).force;
  return decide_fp32_gemm(env_value("FCN_GEMM"), kernel, better, onednn_isa_name());
}

}  // namespace

std::string onednn_isa_name() {
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::sse41: return "sse41";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx2_vnni: return "avx2_vnni";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
    default: return "unknown";
  }
}

Fp32GemmDecision decide_fp32_gemm(const std::optional<std::string>& setting, const std::string& openblas_kernel,
                                  const std::string& better_kernel, const std::string& onednn_isa) {
  if (setting == "openblas") return {Fp32Gemm::openblas, "FCN_GEMM=openblas"};
  if (setting == "onednn") return {Fp32Gemm::onednn, "FCN_GEMM=onednn"};
  if (better_kernel.empty())
    return {Fp32Gemm::openblas, "OpenBLAS's " + openblas_kernel + " kernel is as good as this CPU allows"};
  if (onednn_isa.rfind("avx512", 0) != 0)
    return {Fp32Gemm::openblas, "this CPU supports OpenBLAS's " + better_kernel + " kernel, but oneDNN runs " +
                                    onednn_isa + " here"};
  return {Fp32Gemm::onednn, "OpenBLAS's " + openblas_kernel + " kernel is far below this CPU's " + better_kernel};
}

Fp32Gemm fp32_gemm() {
  int backend = chosen.load(std::memory_order_relaxed);
  if (backend < 0) {
    backend = static_cast<int>(decide_here().backend);
    chosen.store(backend, std::memory_order_relaxed);
  }
  return static_cast<Fp32Gemm>(backend);
}

void set_fp32_gemm(Fp32Gemm backend) { chosen.store(static_cast<int>(backend), std::memory_order_relaxed); }

std::string fp32_gemm_kernel() {
  return fp32_gemm() == Fp32Gemm::onednn ? "oneDNN sgemm " + onednn_isa_name() : "OpenBLAS " + blas_kernel_name();
}

std::string fp32_gemm_report() {
  const Fp32GemmDecision decision = decide_here();
  // a test's set_fp32_gemm, when it differs from the environment's decision
  const std::string reason = decision.backend == fp32_gemm() ? decision.reason : "set by the program";
  return fp32_gemm_kernel() + " (" + reason + ")";
}

}  // namespace fcn::cpu
