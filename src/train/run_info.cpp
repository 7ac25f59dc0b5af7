#include "fcn/train/run_info.hpp"

#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <fstream>
#include <iomanip>
#include <sstream>
#include <thread>

#include "fcn/cpu/blas_kernel.hpp"
#include "fcn/io/safetensors.hpp"

namespace fcn {

namespace {

std::string cpu_model_name() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) != 0) continue;
    const size_t colon = line.find(':');
    if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
  }
  return "unknown";
}

}  // namespace

nlohmann::json RunInfo::to_json() const {
  return {{"command", command},
          {"started", started},
          {"updated", utc_timestamp()},
          {"finished", finished.empty() ? nlohmann::json() : nlohmann::json(finished)},
          {"state", state},
          {"start_iter", start_iter},
          {"iter", iter},
          {"max_iter", max_iter},
          {"images_per_s", images_per_s},
          {"eta_s", eta_s},
          {"machine", machine},
          {"model", model},
          {"data", data},
          {"class_weights", class_weights}};
}

std::string utc_timestamp() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

double parse_utc_timestamp(const std::string& text) {
  std::tm utc{};
  std::istringstream in(text);
  in >> std::get_time(&utc, "%Y-%m-%dT%H:%M:%S");
  return in.fail() ? std::nan("") : static_cast<double>(timegm(&utc));
}

std::string format_duration(double seconds) {
  const long long s = std::llround(std::max(0.0, seconds));
  if (s >= 86400) return fmt::format("{}d {}h{:02}m", s / 86400, s / 3600 % 24, s / 60 % 60);
  if (s >= 3600) return fmt::format("{}h{:02}m", s / 3600, s / 60 % 60);
  return fmt::format("{}m{:02}s", s / 60, s % 60);
}

nlohmann::json describe_machine(int threads) {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  return {{"host", host},
          {"cpu", cpu_model_name()},
          {"cores", std::thread::hardware_concurrency()},
          {"threads", threads},
          {"blas", "OpenBLAS " + blas_kernel_report()}};
}

void write_run_info(const std::string& dir, const RunInfo& info) {
  write_file_atomic(dir + "/run.json", info.to_json().dump(2) + "\n");
}

}  // namespace fcn
