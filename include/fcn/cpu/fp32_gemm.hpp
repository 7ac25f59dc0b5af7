#pragma once
// The library behind fp32 GEMMs (cpu::gemm). OpenBLAS by default; oneDNN's
// sgemm (the library fcn links for bf16 already, and the one behind
// PyTorch's CPU convolutions) where OpenBLAS runs a kernel far below what
// the CPU supports while oneDNN has AVX-512 there. That is the case where
// OPENBLAS_CORETYPE pins an older kernel, which fcn keeps (blas_kernel.hpp):
// users and machine images set it because Debian's OpenBLAS 0.3.21 does not
// know, or misbehaves on, some newer CPUs. Measured on an AMD Zen 5 pinned
// to Haswell, 2 threads: sgemm 190-200 GFLOP/s in OpenBLAS, 350-420 in
// oneDNN (OpenBLAS's own Cooperlake kernel: 340-410).
//
// Environment: FCN_GEMM=openblas|onednn overrides the choice.
#include <optional>
#include <string>

namespace fcn::cpu {

enum class Fp32Gemm { openblas, onednn };

struct Fp32GemmDecision {
  Fp32Gemm backend = Fp32Gemm::openblas;
  std::string reason;  // one phrase, for reports and tests
};

// The decision, pure so that it can be tested with a table. setting: FCN_GEMM;
// openblas_kernel: the kernel OpenBLAS runs; better_kernel: the one the CPU
// supports when OpenBLAS's is far below it (decide_blas_kernel's rule), else
// ""; onednn_isa: oneDNN's effective instruction set ("avx512_core", "avx2", ...).
Fp32GemmDecision decide_fp32_gemm(const std::optional<std::string>& setting, const std::string& openblas_kernel,
                                  const std::string& better_kernel, const std::string& onednn_isa);

// This process's choice (decided at the first call).
Fp32Gemm fp32_gemm();
// "OpenBLAS Cooperlake" or "oneDNN sgemm avx512_core".
std::string fp32_gemm_kernel();
// The choice and why: "oneDNN sgemm avx512_core (OpenBLAS's Haswell kernel is far below this CPU's Cooperlake)".
std::string fp32_gemm_report();
// Tests: run the fp32 GEMMs in `backend` from now on.
void set_fp32_gemm(Fp32Gemm backend);

// oneDNN's effective instruction set on this CPU, e.g. "avx512_core_bf16".
std::string onednn_isa_name();

}  // namespace fcn::cpu
