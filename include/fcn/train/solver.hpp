#pragma once
// SGD with momentum as Caffe's SGDSolver. One step, per trainable param:
//
//   normalize:   g = grad / iter_size              (gradients of iter_size images were summed)
//   regularize:  g += weight_decay * decay_mult * w
//   momentum:    v = momentum * v + lr * lr_mult * g
//   apply:       w -= v
//
// PyTorch's SGD keeps v' = momentum * v' + g and steps w -= lr * v'; with a
// fixed lr the two trajectories are identical (v = lr * v'), they differ only
// when the lr changes. Frozen params (lr_mult 0) are never touched. The
// solver sees nothing but the graph's params (Graph::params()).
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "fcn/model/config.hpp"
#include "fcn/core/layer.hpp"

namespace fcn {

// The learning rate at iteration `iter` (0-based), Caffe's formulas:
//   fixed:     base_lr
//   step:      base_lr * gamma ^ floor(iter / stepsize)
//   multistep: base_lr * gamma ^ (number of stepvalues <= iter)
//   poly:      base_lr * (1 - iter / max_iter) ^ power
//   inv:       base_lr * (1 + gamma * iter) ^ (-power)
double learning_rate(const SolverConfig& config, int64_t iter);

class Solver {
 public:
  explicit Solver(const SolverConfig& config);

  const SolverConfig& config() const { return config_; }
  double learning_rate(int64_t iter) const { return fcn::learning_rate(config_, iter); }

  // Applies one update with the gradients accumulated over iter_size passes
  // at learning rate `lr`. The caller zeroes the gradients before the next
  // step (Graph::zero_param_grads).
  void step(const std::vector<Param*>& params, double lr);

  // Momentum buffers by param name ("<param>.momentum" in checkpoints);
  // created as zeros on first use.
  const std::map<std::string, Tensor>& momentum() const { return momentum_; }
  // Restores one buffer (resume); the shape must match the param's.
  void set_momentum(const std::string& param_name, const Tensor& value);

 private:
  void update(Param& param, double lr);
  Tensor& velocity(const Param& param);

  SolverConfig config_;
  std::map<std::string, Tensor> momentum_;
};

// True when every value of every trainable param's gradient is finite.
bool gradients_finite(const std::vector<Param*>& params);

}  // namespace fcn
