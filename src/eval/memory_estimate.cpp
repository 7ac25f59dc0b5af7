#include "fcn/eval/memory_estimate.hpp"

#include <cctype>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include <fmt/format.h>

#include "fcn/core/error.hpp"
#include "fcn/graph/graph.hpp"

namespace fcn {

namespace {

// What fcn predict holds besides the model, measured: its peak RSS on a tiny
// image with a tiny net (libraries, OpenMP and OpenBLAS threads and buffers).
constexpr int64_t kRuntimeBytes = int64_t{110} << 20;

struct Plan {
  int64_t params = 0, blobs = 0, scratch = 0;
};

Plan plan(const json& spec, int64_t height, int64_t width, bool inference, Precision precision) {
  GraphOptions options;
  options.plan_only = true;
  options.precision = precision;
  options.reuse_values = inference;
  options.skip_loss_in_test = inference;
  options.inference_only = inference;
  Graph graph(spec, "model", options);
  graph.reshape(graph.input_shapes(height, width));
  Plan out;
  for (Param* p : graph.params()) out.params += p->data.numel() * static_cast<int64_t>(sizeof(float));
  out.blobs = graph.blob_buffer_bytes();
  out.scratch = graph.scratch_bytes();
  return out;
}

}  // namespace

int64_t inference_image_bytes(int64_t height, int64_t width) {
  // BGR bytes + the float tensor [3, H, W] + the mask
  return height * width * (3 + 3 * static_cast<int64_t>(sizeof(float)) + 1);
}

MemoryEstimate estimate_inference_memory(const json& spec, int64_t height, int64_t width, Precision precision) {
  const Plan p = plan(spec, height, width, true, precision);
  MemoryEstimate estimate;
  estimate.params = p.params;
  estimate.blobs = p.blobs;
  estimate.scratch = p.scratch;
  estimate.image = inference_image_bytes(height, width);
  estimate.runtime = kRuntimeBytes;
  return estimate;
}

MemoryEstimate estimate_training_memory(const json& spec, int64_t height, int64_t width, Precision precision) {
  const Plan p = plan(spec, height, width, false, precision);
  MemoryEstimate estimate;
  estimate.params = 3 * p.params;  // values, gradients, momentum
  estimate.blobs = p.blobs;
  estimate.scratch = p.scratch;
  estimate.runtime = kRuntimeBytes;
  return estimate;
}

int64_t parse_memory_size(const std::string& text, const std::string& what) {
  std::string digits = text;
  double unit = 1;
  if (!digits.empty()) {
    const char suffix = static_cast<char>(std::toupper(static_cast<unsigned char>(digits.back())));
    const std::string units = "KMGT";
    const auto at = units.find(suffix);
    if (at != std::string::npos) {
      unit = std::pow(1024.0, static_cast<double>(at + 1));
      digits.pop_back();
    }
  }
  std::istringstream in(digits);
  double value = 0;
  in >> value;
  if (digits.empty() || !in || !in.eof() || !(value > 0))
    throw Error(what + " " + text + ": expected a size like 6G, 512M or 1.5G");
  return static_cast<int64_t>(value * unit);
}

std::string format_bytes(int64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (b >= 1024.0 * 1024 * 1024) return fmt::format("{:.1f} GiB", b / (1024.0 * 1024 * 1024));
  if (b >= 1024.0 * 1024) return fmt::format("{:.0f} MiB", b / (1024.0 * 1024));
  return fmt::format("{:.0f} KiB", b / 1024.0);
}

int64_t resident_memory_bytes() {
  std::ifstream in("/proc/self/statm");
  int64_t total_pages = 0, resident_pages = 0;
  if (!(in >> total_pages >> resident_pages)) return 0;
  return resident_pages * 4096;
}

int64_t available_memory_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  int64_t kib = 0;
  std::string unit;
  while (in >> key >> kib >> unit)
    if (key == "MemAvailable:") return kib * 1024;
  return 0;
}

int64_t default_max_memory() {
  // a share, not all of it: the estimate is not exact and other processes allocate too
  constexpr double kShare = 0.8;
  return static_cast<int64_t>(kShare * static_cast<double>(available_memory_bytes()));
}

}  // namespace fcn
