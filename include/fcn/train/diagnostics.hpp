#pragma once
// What a training step looks like inside, recorded in metrics.jsonl at each
// display step ("diag"; report.html draws it):
//   grad_norm[param]    = || gradient the solver sees || (summed gradients / iter_size)
//   update_ratio[param] = || last update || / || weight ||, weights only (the
//                         update is the solver's velocity v: w -= v)
//   relu_zero[block]    = share of the ReLU outputs that are exactly 0 in the
//                         step's forward passes, per block ("relu1_2" is in
//                         block "relu1"; "relu6" is its own)
// A ratio far above ~1e-3 means the learning rate tears the weights apart,
// far below means they barely move; a block whose ReLUs are all zero passes
// no gradient ("dead" units).
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "fcn/graph/graph.hpp"

namespace fcn {

struct StepDiagnostics {
  std::map<std::string, double> grad_norm;
  std::map<std::string, double> update_ratio;
  std::map<std::string, double> relu_zero;
  nlohmann::json to_json() const;
};

// "relu1_2" -> "relu1", "relu6" -> "relu6": the name without a trailing
// "_<digits>".
std::string relu_block(const std::string& layer_name);

// Counts the zero outputs of the graph's ReLU layers in every forward pass
// while it exists (it holds the graph's forward hook).
class ReluZeroCounter {
 public:
  explicit ReluZeroCounter(Graph& graph);
  ~ReluZeroCounter();
  ReluZeroCounter(const ReluZeroCounter&) = delete;
  ReluZeroCounter& operator=(const ReluZeroCounter&) = delete;

  std::map<std::string, double> zero_fractions() const;

 private:
  struct Counts {
    int64_t zeros = 0, total = 0;
  };
  Graph& graph_;
  std::vector<std::string> block_of_layer_;  // "" for layers that are not ReLUs
  std::map<std::string, Counts> counts_;
};

// grad_norm of every trainable param; `gradient_scale` turns the summed
// gradients into the ones the solver applies (1 / iter_size).
std::map<std::string, double> gradient_norms(const std::vector<Param*>& params, double gradient_scale);
// update_ratio of every trainable ".weight" param with a non-zero norm, from
// the solver's last updates (Solver::momentum()).
std::map<std::string, double> update_ratios(const std::vector<Param*>& params,
                                            const std::map<std::string, Tensor>& updates);

}  // namespace fcn
