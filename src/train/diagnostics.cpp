#include "fcn/train/diagnostics.hpp"

#include <cctype>
#include <cmath>

#include "fcn/cpu/elementwise.hpp"

namespace fcn {

namespace {

double l2_norm(const Tensor& t) { return std::sqrt(cpu::dot(t.data(), t.data(), t.numel())); }

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

nlohmann::json StepDiagnostics::to_json() const {
  return {{"grad_norm", grad_norm}, {"update_ratio", update_ratio}, {"relu_zero", relu_zero}};
}

std::string relu_block(const std::string& layer_name) {
  const size_t underscore = layer_name.rfind('_');
  if (underscore == std::string::npos || underscore + 1 == layer_name.size()) return layer_name;
  for (size_t i = underscore + 1; i < layer_name.size(); ++i)
    if (!std::isdigit(static_cast<unsigned char>(layer_name[i]))) return layer_name;
  return layer_name.substr(0, underscore);
}

ReluZeroCounter::ReluZeroCounter(Graph& graph) : graph_(graph) {
  for (const auto& layer : graph.layers())
    block_of_layer_.push_back(layer->type() == "relu" ? relu_block(layer->name()) : std::string());
  graph.set_forward_hook([this](size_t layer_index, const Tensor& output) {
    const std::string& block = block_of_layer_[layer_index];
    if (block.empty()) return;
    int64_t zeros = 0;
    const float* v = output.data();
    const int64_t n = output.numel();
#pragma omp parallel for reduction(+ : zeros) schedule(static) if (n >= (1 << 16))
    for (int64_t i = 0; i < n; ++i) zeros += v[i] == 0.f ? 1 : 0;
    Counts& counts = counts_[block];
    counts.zeros += zeros;
    counts.total += n;
  });
}

ReluZeroCounter::~ReluZeroCounter() { graph_.set_forward_hook({}); }

std::map<std::string, double> ReluZeroCounter::zero_fractions() const {
  std::map<std::string, double> fractions;
  for (const auto& [block, counts] : counts_)
    if (counts.total > 0) fractions[block] = static_cast<double>(counts.zeros) / static_cast<double>(counts.total);
  return fractions;
}

std::map<std::string, double> gradient_norms(const std::vector<Param*>& params, double gradient_scale) {
  std::map<std::string, double> norms;
  for (const Param* p : params)
    if (!p->frozen()) norms[p->name] = gradient_scale * l2_norm(p->grad);
  return norms;
}

std::map<std::string, double> update_ratios(const std::vector<Param*>& params,
                                            const std::map<std::string, Tensor>& updates) {
  std::map<std::string, double> ratios;
  for (const Param* p : params) {
    if (p->frozen() || !ends_with(p->name, ".weight")) continue;
    const auto update = updates.find(p->name);
    const double weight_norm = l2_norm(p->data);
    if (update == updates.end() || weight_norm == 0) continue;
    ratios[p->name] = l2_norm(update->second) / weight_norm;
  }
  return ratios;
}

}  // namespace fcn
