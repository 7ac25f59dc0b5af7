// OpenBLAS kernel selection: the pure decision over a table of CPUs and
// kernels, the cpuid reading against /proc/cpuinfo, and the report's wording.
// Nothing here re-executes the test binary; tests/cli/blas_kernel.sh drives
// the real re-exec through `fcn --version`.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "fcn/cpu/blas_kernel.hpp"

namespace {

fcn::CpuFeatures x86(bool avx, bool avx2, bool avx512, bool bf16, const char* vendor = "GenuineIntel",
                     int family = 6, int model = 207) {
  fcn::CpuFeatures cpu;
  cpu.x86 = true;
  cpu.vendor = vendor;
  cpu.family = family;
  cpu.model = model;
  cpu.avx = avx;
  cpu.avx2 = cpu.fma = avx2;
  cpu.avx512f = cpu.avx512bw = cpu.avx512dq = cpu.avx512vl = avx512;
  cpu.avx512_bf16 = bf16;
  return cpu;
}

const fcn::CpuFeatures kXeon207 = x86(true, true, true, true);  // the Xeon of the design's measurement
const fcn::CpuFeatures kZen4 = x86(true, true, true, true, "AuthenticAMD", 25, 17);
const fcn::CpuFeatures kZen5 = x86(true, true, true, true, "AuthenticAMD", 26, 2);
const fcn::CpuFeatures kSkylakeServer = x86(true, true, true, false, "GenuineIntel", 6, 85);
const fcn::CpuFeatures kHaswellCpu = x86(true, true, false, false, "GenuineIntel", 6, 63);
const fcn::CpuFeatures kZen3 = x86(true, true, false, false, "AuthenticAMD", 25, 1);
const fcn::CpuFeatures kSandyCpu = x86(true, false, false, false, "GenuineIntel", 6, 45);
const fcn::CpuFeatures kOldCpu = x86(false, false, false, false, "GenuineIntel", 6, 26);

// Restores one environment variable when the test ends, pass or fail.
struct ScopedEnv {
  std::string name;
  bool had;
  std::string old;
  ScopedEnv(const char* n, const char* value) : name(n) {
    const char* prev = std::getenv(n);
    had = prev != nullptr;
    if (had) old = prev;
    if (value)
      setenv(n, value, 1);
    else
      unsetenv(n);
  }
  ~ScopedEnv() {
    if (had)
      setenv(name.c_str(), old.c_str(), 1);
    else
      unsetenv(name.c_str());
  }
};

std::set<std::string> proc_cpuinfo_flags() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  std::set<std::string> flags;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line.substr(line.find(':') + 1));
    for (std::string w; words >> w;) flags.insert(w);
    break;
  }
  return flags;
}

}  // namespace

TEST_CASE("decide_blas_kernel over a table of CPUs and OpenBLAS choices") {
  struct Row {
    const char* what;
    fcn::CpuFeatures cpu;
    const char* openblas;
    const char* user;    // OPENBLAS_CORETYPE, nullptr = unset
    const char* force;   // "" = keep
  };
  const Row rows[] = {
      {"Prescott on Xeon AVX-512+bf16 -> Cooperlake", kXeon207, "Prescott", nullptr, "Cooperlake"},
      {"Nehalem on Xeon AVX-512+bf16 -> Cooperlake", kXeon207, "Nehalem", nullptr, "Cooperlake"},
      {"Core2 on Xeon AVX-512+bf16 -> Cooperlake", kXeon207, "Core2", nullptr, "Cooperlake"},
      {"Sandybridge on Xeon AVX-512+bf16 -> Cooperlake", kXeon207, "Sandybridge", nullptr, "Cooperlake"},
      {"Haswell on Xeon AVX-512+bf16 -> Cooperlake", kXeon207, "Haswell", nullptr, "Cooperlake"},
      {"Prescott on Zen 4 -> Cooperlake", kZen4, "Prescott", nullptr, "Cooperlake"},
      {"Sandybridge on Zen 4 -> Cooperlake", kZen4, "Sandybridge", nullptr, "Cooperlake"},
      {"Zen kept on Zen 4 (AVX-512 on 256-bit units)", kZen4, "Zen", nullptr, ""},
      {"Haswell kept on Zen 4", kZen4, "Haswell", nullptr, ""},
      {"Zen on Zen 5 (full-width AVX-512) -> Cooperlake", kZen5, "Zen", nullptr, "Cooperlake"},
      {"Prescott on Zen 3 -> Haswell", kZen3, "Prescott", nullptr, "Haswell"},
      {"Prescott on AVX-512 without bf16 -> SkylakeX", kSkylakeServer, "Prescott", nullptr, "SkylakeX"},
      {"Haswell on AVX-512 without bf16 -> SkylakeX", kSkylakeServer, "Haswell", nullptr, "SkylakeX"},
      {"Prescott on AVX2 -> Haswell", kHaswellCpu, "Prescott", nullptr, "Haswell"},
      {"Sandybridge on AVX2 -> Haswell", kHaswellCpu, "Sandybridge", nullptr, "Haswell"},
      {"Prescott on AVX -> Sandybridge", kSandyCpu, "Prescott", nullptr, "Sandybridge"},
      {"user's Prescott kept on AVX-512", kXeon207, "Prescott", "Prescott", ""},
      {"user's SkylakeX kept on AVX-512+bf16", kZen4, "SkylakeX", "SkylakeX", ""},
      {"user's unknown name kept", kZen4, "Prescott", "NoSuchCore", ""},
      {"Cooperlake kept on AVX-512+bf16", kXeon207, "Cooperlake", nullptr, ""},
      {"SkylakeX kept on AVX-512+bf16 (same sgemm kernel)", kXeon207, "SkylakeX", nullptr, ""},
      {"SapphireRapids kept", kXeon207, "SapphireRapids", nullptr, ""},
      {"SkylakeX kept without bf16", kSkylakeServer, "SkylakeX", nullptr, ""},
      {"Zen kept on AVX2", kHaswellCpu, "Zen", nullptr, ""},
      {"Haswell kept on AVX2", kHaswellCpu, "Haswell", nullptr, ""},
      {"Prescott kept on a CPU without AVX", kOldCpu, "Prescott", nullptr, ""},
      {"Core2 kept on a CPU without AVX", kOldCpu, "Core2", nullptr, ""},
      {"non-x86 CPU: none", fcn::CpuFeatures{}, "ARMV8", nullptr, ""},
      {"unknown kernel name kept", kZen4, "Martian", nullptr, ""},
  };
  for (const Row& row : rows) {
    INFO(row.what);
    std::optional<std::string> user;
    if (row.user) user = row.user;
    fcn::BlasKernelDecision d = fcn::decide_blas_kernel(row.cpu, row.openblas, user);
    CHECK(d.force == row.force);
    CHECK_FALSE(d.reason.empty());
  }
}

TEST_CASE("best_blas_kernel follows the CPU's features") {
  CHECK(fcn::best_blas_kernel(kZen4) == "Cooperlake");
  CHECK(fcn::best_blas_kernel(kSkylakeServer) == "SkylakeX");
  CHECK(fcn::best_blas_kernel(kHaswellCpu) == "Haswell");
  CHECK(fcn::best_blas_kernel(kSandyCpu) == "Sandybridge");
  CHECK(fcn::best_blas_kernel(kOldCpu) == "Prescott");
  CHECK(fcn::best_blas_kernel(fcn::CpuFeatures{}).empty());
  fcn::CpuFeatures partial = kSkylakeServer;  // AVX-512F without VL is not SkylakeX's set
  partial.avx512vl = false;
  CHECK(fcn::best_blas_kernel(partial) == "Haswell");
}

TEST_CASE("blas_kernel_rank orders kernels and ignores case") {
  CHECK(fcn::blas_kernel_rank("Prescott") < fcn::blas_kernel_rank("Sandybridge"));
  CHECK(fcn::blas_kernel_rank("Sandybridge") < fcn::blas_kernel_rank("Haswell"));
  CHECK(fcn::blas_kernel_rank("Haswell") == fcn::blas_kernel_rank("Zen"));
  CHECK(fcn::blas_kernel_rank("Haswell") < fcn::blas_kernel_rank("SkylakeX"));
  CHECK(fcn::blas_kernel_rank("SkylakeX") < fcn::blas_kernel_rank("Cooperlake"));
  CHECK(fcn::blas_kernel_rank("cooperlake") == fcn::blas_kernel_rank("Cooperlake"));
  CHECK(fcn::blas_kernel_rank("Martian") == -1);
}

TEST_CASE("detect_cpu_features agrees with /proc/cpuinfo") {
  fcn::CpuFeatures cpu = fcn::detect_cpu_features();
  std::set<std::string> flags = proc_cpuinfo_flags();
#if defined(__x86_64__) || defined(__i386__)
  REQUIRE(cpu.x86);
  CHECK_FALSE(cpu.vendor.empty());
  CHECK(cpu.family > 0);
#else
  CHECK_FALSE(cpu.x86);
#endif
  if (flags.empty() || !cpu.x86) return;  // no flags line to compare with (non-x86 or no /proc)
  // The kernel lists a flag only when the OS saves its state too, as we require.
  CHECK(cpu.avx == (flags.count("avx") == 1));
  CHECK(cpu.avx2 == (flags.count("avx2") == 1));
  CHECK(cpu.fma == (flags.count("fma") == 1));
  CHECK(cpu.avx512f == (flags.count("avx512f") == 1));
  CHECK(cpu.avx512bw == (flags.count("avx512bw") == 1));
  CHECK(cpu.avx512dq == (flags.count("avx512dq") == 1));
  CHECK(cpu.avx512vl == (flags.count("avx512vl") == 1));
  CHECK(cpu.avx512_bf16 == (flags.count("avx512_bf16") == 1));
}

TEST_CASE("blas_kernel_report says where the kernel came from") {
  std::string name = fcn::blas_kernel_name();
  REQUIRE_FALSE(name.empty());
  ScopedEnv no_guard("FCN_BLAS_REEXEC", nullptr);
  SECTION("chosen by OpenBLAS") {
    ScopedEnv no_user("OPENBLAS_CORETYPE", nullptr);
    std::string report = fcn::blas_kernel_report();
    CHECK(report.rfind(name + " (chosen by OpenBLAS", 0) == 0);
    CHECK(report.find(" threads") != std::string::npos);
  }
  SECTION("set by user") {
    ScopedEnv user("OPENBLAS_CORETYPE", name.c_str());
    const std::string report = fcn::blas_kernel_report();
    // kept; and when it is far below this CPU's best, the report says which kernel to get and how
    const std::string better = fcn::decide_blas_kernel(fcn::detect_cpu_features(), name, std::nullopt).force;
    if (better.empty())
      CHECK(report.rfind(name + " (OPENBLAS_CORETYPE set by user), ", 0) == 0);
    else
      CHECK(report.rfind(name + " (OPENBLAS_CORETYPE set by user; this CPU supports " + better +
                             ", a faster kernel: unset OPENBLAS_CORETYPE), ", 0) == 0);
  }
  SECTION("set by user but not taken") {
    ScopedEnv user("OPENBLAS_CORETYPE", "NoSuchCore");
    CHECK(fcn::blas_kernel_report().find("OPENBLAS_CORETYPE=NoSuchCore set by user, not taken") !=
          std::string::npos);
  }
  SECTION("selected by fcn after a re-exec") {
    ScopedEnv coretype("OPENBLAS_CORETYPE", name.c_str());
    ScopedEnv guard("FCN_BLAS_REEXEC", "Prescott");
    CHECK(fcn::blas_kernel_report().rfind(name + " (selected by fcn; OpenBLAS chose Prescott), ", 0) == 0);
  }
}
