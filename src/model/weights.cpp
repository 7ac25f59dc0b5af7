#include "fcn/model/weights.hpp"

#include <algorithm>
#include <cstring>
#include <set>

#include "fcn/core/error.hpp"

namespace fcn {

namespace {

bool is_state_tensor(const std::string& name) {
  const std::string suffix = ".momentum";
  return name.rfind("grad/", 0) == 0 ||
         (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0);
}

}  // namespace

LoadReport load_params(Graph& graph, const SafetensorsFile& file, const std::string& source, LoadMode mode) {
  LoadReport report;
  std::set<std::string> param_names;
  for (Param* p : graph.params()) {
    param_names.insert(p->name);
    auto it = file.tensors.find(p->name);
    if (it == file.tensors.end()) {
      report.missing.push_back(p->name);
      continue;
    }
    const Tensor& stored = it->second;
    if (stored.shape() != p->data.shape()) {
      const std::string problem = "param " + p->name + " has shape " + shape_str(stored.shape()) + " in " + source +
                                  " but the model expects " + shape_str(p->data.shape());
      if (mode == LoadMode::strict) throw Error(source + ": " + problem);
      report.skipped.push_back(p->name + ": shape " + shape_str(stored.shape()) + " vs model " +
                               shape_str(p->data.shape()));
      continue;
    }
    if (stored.numel()) std::memcpy(p->data.data(), stored.data(), sizeof(float) * stored.numel());
    report.loaded.push_back(p->name);
  }
  for (const auto& item : file.tensors)
    if (!param_names.count(item.first) && !is_state_tensor(item.first)) report.unused.push_back(item.first);
  return report;
}

std::map<std::string, const Tensor*> param_tensors(Graph& graph) {
  std::map<std::string, const Tensor*> out;
  for (Param* p : graph.params()) out[p->name] = &p->data;
  return out;
}

}  // namespace fcn
