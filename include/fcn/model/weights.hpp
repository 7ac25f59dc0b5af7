#pragma once
// Copying parameters between a Graph and a safetensors file.
#include <string>
#include <vector>

#include "fcn/graph/graph.hpp"
#include "fcn/io/safetensors.hpp"

namespace fcn {

struct LoadReport {
  std::vector<std::string> loaded;
  std::vector<std::string> missing;  // params of the graph absent from the file
  std::vector<std::string> skipped;  // "name: reason" (shape mismatch in lenient mode)
  std::vector<std::string> unused;   // tensors of the file the graph has no param for
};

enum class LoadMode {
  strict,   // a present tensor with the wrong shape is an error naming both shapes
  lenient,  // such tensors are skipped and reported (--init for staged training)
};

// Copies every tensor whose name is a param of the graph (after reshape).
// `source` names the file in errors. Tensors named "<param>.momentum" and
// "grad/..." are solver/debug state and never count as unused.
LoadReport load_params(Graph& graph, const SafetensorsFile& file, const std::string& source, LoadMode mode);

// Params by name (all of them, frozen included), for writing.
std::map<std::string, const Tensor*> param_tensors(Graph& graph);

}  // namespace fcn
