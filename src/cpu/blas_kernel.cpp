#include "fcn/cpu/blas_kernel.hpp"

#include <cblas.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <strings.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define FCN_X86 1
#endif

#include "fcn/core/environment.hpp"

namespace fcn {
namespace {

constexpr const char* kCoretypeVar = "OPENBLAS_CORETYPE";
constexpr const char* kGuardVar = "FCN_BLAS_REEXEC";
constexpr const char* kPretendVar = "FCN_BLAS_PRETEND_CORENAME";

std::optional<std::string> env(const char* name) { return env_value(name); }

bool same_name(const std::string& a, const std::string& b) { return strcasecmp(a.c_str(), b.c_str()) == 0; }

#ifdef FCN_X86
bool bit(unsigned reg, int n) { return (reg >> n) & 1u; }

// XCR0: which register files the OS saves on a context switch. A CPU flag
// without OS support would SIGILL (AVX) or corrupt state (AVX-512).
unsigned long long xcr0() {
  unsigned eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<unsigned long long>(edx) << 32) | eax;
}

void read_family_model(unsigned eax, CpuFeatures& cpu) {
  int base_family = (eax >> 8) & 0xf, base_model = (eax >> 4) & 0xf;
  cpu.family = base_family == 0xf ? base_family + static_cast<int>((eax >> 20) & 0xff) : base_family;
  cpu.model = (base_family == 0x6 || base_family == 0xf) ? base_model + static_cast<int>(((eax >> 16) & 0xf) << 4)
                                                          : base_model;
}
#endif

// AMD family 0x19 with AVX-512: Zen 4 (Zen 3 has no AVX-512).
bool is_zen4(const CpuFeatures& cpu) { return cpu.vendor == "AuthenticAMD" && cpu.family == 0x19 && cpu.avx512f; }

}  // namespace

CpuFeatures detect_cpu_features() {
  CpuFeatures cpu;
#ifdef FCN_X86
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return cpu;
  cpu.x86 = true;
  unsigned max_leaf = eax;
  char vendor[13] = {};
  std::memcpy(vendor, &ebx, 4);
  std::memcpy(vendor + 4, &edx, 4);
  std::memcpy(vendor + 8, &ecx, 4);
  cpu.vendor = vendor;
  if (max_leaf < 1) return cpu;
  __get_cpuid(1, &eax, &ebx, &ecx, &edx);
  read_family_model(eax, cpu);
  bool osxsave = bit(ecx, 27);
  unsigned long long xcr = osxsave ? xcr0() : 0;
  bool ymm_state = (xcr & 0x6) == 0x6;                // SSE + AVX state
  bool zmm_state = ymm_state && (xcr & 0xe0) == 0xe0;  // opmask + ZMM0-15 upper + ZMM16-31
  cpu.avx = ymm_state && bit(ecx, 28);
  cpu.fma = cpu.avx && bit(ecx, 12);
  if (max_leaf < 7) return cpu;
  __get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx);
  unsigned max_subleaf = eax;
  cpu.avx2 = cpu.avx && bit(ebx, 5);
  cpu.avx512f = zmm_state && bit(ebx, 16);
  cpu.avx512dq = cpu.avx512f && bit(ebx, 17);
  cpu.avx512bw = cpu.avx512f && bit(ebx, 30);
  cpu.avx512vl = cpu.avx512f && bit(ebx, 31);
  if (max_subleaf < 1) return cpu;
  __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx);
  cpu.avx512_bf16 = cpu.avx512f && bit(eax, 5);
#endif
  return cpu;
}

int blas_kernel_rank(const std::string& corename) {
  struct Rank {
    const char* name;
    int rank;
  };
  // OpenBLAS 0.3.21's DYNAMIC_ARCH core names (driver/others/dynamic.c), by
  // sgemm speed class: the SIMD width and FMA their kernels use.
  static const Rank ranks[] = {
      {"Katmai", 0},      {"Coppermine", 0},   {"Northwood", 0},     {"Prescott", 0},   {"Banias", 0},
      {"Atom", 0},        {"Core2", 0},        {"Penryn", 0},        {"Dunnington", 0}, {"Nehalem", 0},
      {"Athlon", 0},      {"Opteron", 0},      {"Opteron_SSE3", 0},  {"Barcelona", 0},  {"Nano", 0},
      {"Bobcat", 0},      {"Sandybridge", 1},  {"Bulldozer", 1},     {"Piledriver", 1}, {"Steamroller", 1},
      {"Excavator", 1},   {"Haswell", 2},      {"Zen", 2},           {"SkylakeX", 3},   {"Cooperlake", 4},
      {"SapphireRapids", 5}};
  for (const Rank& r : ranks)
    if (same_name(corename, r.name)) return r.rank;
  return -1;
}

std::string best_blas_kernel(const CpuFeatures& cpu) {
  if (!cpu.x86) return "";
  bool avx512 = cpu.avx512f && cpu.avx512bw && cpu.avx512dq && cpu.avx512vl;
  if (avx512 && cpu.avx512_bf16) return "Cooperlake";
  if (avx512) return "SkylakeX";
  if (cpu.avx2 && cpu.fma) return "Haswell";
  if (cpu.avx) return "Sandybridge";
  return "Prescott";
}

namespace {

// The lowest rank that is not "far below" `best` for sgemm on this CPU.
int good_enough_rank(const CpuFeatures& cpu, const std::string& best) {
  int rank = blas_kernel_rank(best);
  // Cooperlake's sgemm is SkylakeX's (KERNEL.COOPERLAKE includes
  // KERNEL.SKYLAKEX and only adds bf16 GEMM).
  rank = std::min(rank, blas_kernel_rank("SkylakeX"));
  // Zen 4 runs AVX-512 on 256-bit units: on an EPYC (family 25, model 17),
  // one thread measured 90-105 GFLOP/s with Zen, Haswell, SkylakeX and
  // Cooperlake alike, 85 with Sandybridge, 40 with Prescott.
  if (is_zen4(cpu)) rank = std::min(rank, blas_kernel_rank("Haswell"));
  return rank;
}

}  // namespace

BlasKernelDecision decide_blas_kernel(const CpuFeatures& cpu, const std::string& openblas_core,
                                      const std::optional<std::string>& user_coretype) {
  if (user_coretype) return {"", "OPENBLAS_CORETYPE=" + *user_coretype + " set by user: kept"};
  std::string best = best_blas_kernel(cpu);
  if (best.empty()) return {"", "not an x86 CPU: OpenBLAS's " + openblas_core + " kept"};
  int chosen = blas_kernel_rank(openblas_core);
  if (chosen < 0) return {"", "unknown OpenBLAS kernel " + openblas_core + ": kept"};
  if (chosen >= good_enough_rank(cpu, best)) return {"", openblas_core + " is as good as this CPU allows: kept"};
  return {best, openblas_core + " is far below what this CPU supports: selecting " + best};
}

std::vector<std::pair<std::string, std::string>> blas_kernel_environment() {
  if (env(kGuardVar)) return {};  // already re-executed once: never loop
  const std::string chosen = env(kPretendVar).value_or(openblas_get_corename());
  const BlasKernelDecision decision = decide_blas_kernel(detect_cpu_features(), chosen, env(kCoretypeVar));
  if (decision.force.empty()) return {};
  // the guard keeps what OpenBLAS had chosen, for blas_kernel_report
  return {{kCoretypeVar, decision.force}, {kGuardVar, chosen}};
}

std::string blas_kernel_name() { return openblas_get_corename(); }

std::string blas_kernel_report() {
  std::string name = blas_kernel_name();
  std::string threads = ", " + std::to_string(openblas_get_num_threads()) + " threads";
  std::optional<std::string> coretype = env(kCoretypeVar), guard = env(kGuardVar);
  if (coretype && guard) return name + " (selected by fcn; OpenBLAS chose " + *guard + ")" + threads;
  if (coretype && same_name(*coretype, name)) {
    // kept, but said when it leaves much of the CPU unused (an environment that pins a kernel)
    const BlasKernelDecision better = decide_blas_kernel(detect_cpu_features(), name, std::nullopt);
    const std::string hint = better.force.empty() ? ""
                                                  : "; this CPU supports " + better.force +
                                                        ", a faster kernel: unset OPENBLAS_CORETYPE";
    return name + " (OPENBLAS_CORETYPE set by user" + hint + ")" + threads;
  }
  if (coretype) return name + " (OPENBLAS_CORETYPE=" + *coretype + " set by user, not taken by OpenBLAS)" + threads;
  BlasKernelDecision decision = decide_blas_kernel(detect_cpu_features(), name, std::nullopt);
  if (!decision.force.empty()) return name + " (chosen by OpenBLAS; this CPU supports " + decision.force + ")" + threads;
  return name + " (chosen by OpenBLAS)" + threads;
}

}  // namespace fcn
