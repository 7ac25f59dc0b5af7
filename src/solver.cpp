#include "fcn/solver.hpp"

#include <algorithm>
#include <cmath>

#include "cpu/elementwise.hpp"
#include "fcn/error.hpp"

namespace fcn {

double learning_rate(const SolverConfig& c, int64_t iter) {
  const double it = static_cast<double>(iter);
  if (c.lr_policy == "fixed") return c.base_lr;
  if (c.lr_policy == "step") return c.base_lr * std::pow(c.gamma, std::floor(it / static_cast<double>(c.stepsize)));
  if (c.lr_policy == "multistep") {
    const auto passed = std::count_if(c.stepvalues.begin(), c.stepvalues.end(), [&](int64_t s) { return iter >= s; });
    return c.base_lr * std::pow(c.gamma, static_cast<double>(passed));
  }
  if (c.lr_policy == "poly") {
    if (c.max_iter <= 0) return c.base_lr;
    return c.base_lr * std::pow(std::max(0.0, 1.0 - it / static_cast<double>(c.max_iter)), c.power);
  }
  if (c.lr_policy == "inv") return c.base_lr * std::pow(1.0 + c.gamma * it, -c.power);
  throw Error("solver.lr_policy: unknown policy \"" + c.lr_policy + "\"");
}

Solver::Solver(const SolverConfig& config) : config_(config) {
  learning_rate(0);  // rejects an unknown policy now rather than at the first step
}

void Solver::step(const std::vector<Param*>& params, double lr) {
  for (Param* p : params) {
    if (p->frozen()) continue;
    normalize(*p);
    regularize(*p);
    update_momentum(*p, lr);
    apply(*p, velocity(*p));
  }
}

// g = grad / iter_size
void Solver::normalize(Param& p) const {
  if (config_.iter_size > 1) cpu::scale(p.grad.data(), 1.f / static_cast<float>(config_.iter_size), p.grad.data(), p.grad.numel());
}

// g += weight_decay * decay_mult * w
void Solver::regularize(Param& p) const {
  const float decay = static_cast<float>(config_.weight_decay * p.decay_mult);
  if (decay != 0.f) cpu::axpy(p.data.data(), decay, p.grad.data(), p.grad.numel());
}

// v = momentum * v + lr * lr_mult * g
void Solver::update_momentum(Param& p, double lr) {
  Tensor& v = velocity(p);
  cpu::scale(v.data(), static_cast<float>(config_.momentum), v.data(), v.numel());
  cpu::axpy(p.grad.data(), static_cast<float>(lr * p.lr_mult), v.data(), v.numel());
}

// w -= v
void Solver::apply(Param& p, const Tensor& v) { cpu::axpy(v.data(), -1.f, p.data.data(), v.numel()); }

Tensor& Solver::velocity(const Param& p) {
  Tensor& v = momentum_[p.name];
  if (v.shape() != p.data.shape()) v = Tensor(p.data.shape());  // zeros
  return v;
}

void Solver::set_momentum(const std::string& param_name, const Tensor& value) { momentum_[param_name] = value; }

bool gradients_finite(const std::vector<Param*>& params) {
  for (const Param* p : params) {
    if (p->frozen()) continue;
    const float* g = p->grad.data();
    // g * 0 is 0 for a finite g and nan for inf or nan, so the sum flags both
    float sum = 0.f;
    for (int64_t i = 0; i < p->grad.numel(); ++i) sum += g[i] * 0.f;
    if (!std::isfinite(sum)) return false;
  }
  return true;
}

}  // namespace fcn
