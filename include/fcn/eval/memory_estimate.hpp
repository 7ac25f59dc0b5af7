#pragma once
// The peak memory of running a graph at an input size, from its memory plan
// (Graph's plan_only reshape: nothing is allocated, so sizes beyond this
// machine's memory can be estimated too). Inference and predict use it to
// decide whether an image runs whole or in tiles; `fcn describe --size`
// prints it.
#include <cstdint>
#include <string>

#include "fcn/core/precision.hpp"
#include "fcn/core/spec_reader.hpp"

namespace fcn {

struct MemoryEstimate {
  int64_t params = 0;   // weights; in training also their gradients and momentum
  int64_t blobs = 0;    // the memory plan's arena and the input blobs
  int64_t scratch = 0;  // the largest kernel scratch (im2col columns, Winograd tiles)
  int64_t image = 0;    // inference: the decoded image, its tensor and the mask, outside the graph
  int64_t runtime = 0;  // the process itself: libraries, thread stacks, BLAS buffers (measured)
  int64_t total() const { return params + blobs + scratch + image + runtime; }
};

// Test-mode forward of `spec` on one height x width image, the loss skipped
// (what eval and predict run), the convolutions in `precision` (the model's:
// a layer's scratch may depend on it).
MemoryEstimate estimate_inference_memory(const json& spec, int64_t height, int64_t width,
                                         Precision precision = Precision::fp32);
// One training step (forward and backward, SGD with momentum) at that size.
MemoryEstimate estimate_training_memory(const json& spec, int64_t height, int64_t width,
                                        Precision precision = Precision::fp32);
// The bytes outside the graph that inference on a height x width image keeps:
// the decoded 8-bit image, its float tensor and the 8-bit mask.
int64_t inference_image_bytes(int64_t height, int64_t width);

// "6G", "512M", "1.5g", "800K", "1048576" (bytes); an Error names `what`.
int64_t parse_memory_size(const std::string& text, const std::string& what);
// 1536 MiB -> "1.5 GiB"
std::string format_bytes(int64_t bytes);
// MemAvailable of /proc/meminfo (0 when unknown).
int64_t available_memory_bytes();
// The default inference budget for one image (fcn predict/eval --max-memory,
// fcn::ModelOptions::max_memory -1): 80% of the memory available now.
int64_t default_max_memory();
// This process's resident memory now (/proc/self/statm; 0 when unknown).
int64_t resident_memory_bytes();

}  // namespace fcn
