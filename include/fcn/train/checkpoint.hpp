#pragma once
// Training checkpoints: safetensors files holding every param by name, the
// solver's momentum as "<param>.momentum", and in __metadata__:
//   format "fcn-checkpoint", format_version, iter (steps completed), lr (of
//   the last step), config_hash, seed.
// Written atomically (write_safetensors: NAME.tmp, fsync, rename), so a crash
// or a full disk leaves the previous checkpoint intact. The data order and
// every random draw are functions of (seed, sample index), so the iteration
// is all the state resume needs beyond params and momentum.
#include <cstdint>
#include <string>
#include <vector>

#include "fcn/graph/graph.hpp"
#include "fcn/train/solver.hpp"
#include "fcn/model/weights.hpp"

namespace fcn {

constexpr int kCheckpointFormatVersion = 1;

struct CheckpointInfo {
  int64_t iter = 0;         // steps completed; training resumes at this step
  double lr = 0.0;          // learning rate of the last step
  std::string config_hash;  // config_hash() of the run's config
  uint64_t seed = 0;        // solver.seed
};

// A hash of the parts of a config (Config::to_json()) that decide the
// trajectory: everything but solver.max_iter, the logging/snapshot cadence,
// threads and init (a resumed run may run longer or log differently).
std::string config_hash(const json& config);
// The keys in which two configs differ where config_hash looks, dotted
// ("model.precision"); empty when their hashes agree.
std::vector<std::string> config_hash_differences(const json& a, const json& b);

// Params, momentum buffers (when `solver` is given) and metadata. Throws an
// Error naming the file when the write fails; the previous file is kept.
void save_checkpoint(const std::string& path, Graph& graph, const Solver* solver, const CheckpointInfo& info);

// Resume: every param of the graph must be in the file with its shape
// (after the graph's first reshape); momentum buffers are restored when
// present (a weights-only file restarts momentum from zero, with a warning).
CheckpointInfo load_checkpoint(const std::string& path, Graph& graph, Solver& solver);

// --init / init.weights: copies params whose name and shape match
// (LoadMode::lenient) and logs a summary by layer group: how many params it
// filled, which start fresh from their weight_init, which tensors it skipped
// (shape mismatch, each with its reason) and which of the file's matched no
// param (the names, one a line, at debug level).
LoadReport load_init_weights(const std::string& path, Graph& graph);

// Param or tensor names grouped for a one-line report: the layers
// ("conv1.weight", "conv1.bias" -> "conv1"), and layers under a module path
// by their first component ("backbone.layer1.0.conv1.weight" ->
// "backbone.*"), in order of first appearance; "" when empty. At most
// `limit` groups, then "... (N more)".
std::string param_groups(const std::vector<std::string>& names, size_t limit = 12);

// "iter_00000012.safetensors"
std::string checkpoint_filename(int64_t iter);
// The checkpoint with the highest iteration in `dir`, or "" when none.
std::string latest_checkpoint(const std::string& dir);

}  // namespace fcn
