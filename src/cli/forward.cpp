// fcn forward: the debugging window into the graph. Runs one forward pass
// (test mode unless --train) and optionally backward, and dumps every blob.
#include <spdlog/spdlog.h>

#include "cli/commands.hpp"
#include "cli/model_args.hpp"
#include "fcn/core/error.hpp"
#include "fcn/graph/graph.hpp"
#include "fcn/io/safetensors.hpp"
#include "fcn/model/weights.hpp"

namespace fcn::cli {

namespace {

struct ForwardArgs {
  ModelArgs model;
  std::string weights;
  uint64_t seed = 1337;
  std::vector<std::string> inputs;  // name=FILE
  std::string dump;
  bool backward = false;
  bool train = false;
};

std::map<std::string, Tensor> read_inputs(const std::vector<std::string>& specs) {
  std::map<std::string, Tensor> inputs;
  for (const auto& spec : specs) {
    const auto eq = spec.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
      throw Error("--input " + spec + ": expected name=FILE (a safetensors file holding a tensor of that name)");
    const std::string name = spec.substr(0, eq), filename = spec.substr(eq + 1);
    SafetensorsFile file = read_safetensors(filename);
    auto it = file.tensors.find(name);
    if (it == file.tensors.end()) {
      std::string names;
      for (const auto& t : file.tensors) names += (names.empty() ? "" : ", ") + t.first;
      throw Error(filename + ": holds no tensor named '" + name + "' (it has: " + names + ")");
    }
    inputs[name] = std::move(it->second);
  }
  return inputs;
}

void run_forward(const ForwardArgs& args) {
  const ModelSource model = load_model_source(args.model);
  GraphOptions options;
  options.grad_all_blobs = args.backward;
  options.reuse_memory = false;  // every blob keeps its values for the dump
  // with no backward to follow, the pass runs as fcn predict's does (its forward algorithms)
  options.inference_only = !args.backward && !args.train;
  options.precision = model.precision;
  Graph graph(model.spec, "graph", options);
  std::map<std::string, Tensor> inputs = read_inputs(args.inputs);
  std::map<std::string, Shape> shapes;
  for (const auto& name : graph.input_names()) {
    auto it = inputs.find(name);
    if (it == inputs.end()) throw Error("graph input '" + name + "' needs --input " + name + "=FILE");
    shapes[name] = it->second.shape();
  }
  for (const auto& item : inputs)
    if (!shapes.count(item.first)) throw Error("--input " + item.first + ": the graph has no input of that name");
  graph.reshape(shapes);
  graph.init_params(args.seed);
  if (!args.weights.empty()) {
    const LoadReport report = load_params(graph, read_safetensors(args.weights), args.weights, LoadMode::strict);
    if (!report.missing.empty())
      spdlog::info("{} params not in {} were initialised with --seed {}", report.missing.size(), args.weights,
                   args.seed);
    for (const auto& name : report.unused) spdlog::warn("{}: tensor '{}' matches no param", args.weights, name);
  }
  for (const auto& name : graph.input_names()) graph.blob(name) = inputs.at(name);
  graph.forward(args.train ? Mode::train : Mode::test);

  std::map<std::string, const Tensor*> dump;
  for (const auto& name : graph.blob_names()) dump[name] = &graph.blob(name);
  // the params actually used (loaded or initialised), so a reference run can
  // reuse them; after a --train forward, the running statistics it updated
  for (Param* p : graph.params())
    if (!dump.count(p->name)) dump[p->name] = &p->data;
  if (args.backward) {
    graph.zero_param_grads();
    graph.backward();
    for (const auto& name : graph.blob_names())
      if (const Tensor* grad = graph.blob_grad(name)) dump["grad/" + name] = grad;
    for (Param* p : graph.params())
      if (!p->frozen()) dump["grad/" + p->name] = &p->grad;
  }
  write_safetensors(args.dump, dump, {{"loss", std::to_string(graph.loss())}});
  spdlog::info("wrote {} tensors to {}", dump.size(), args.dump);
}

}  // namespace

void add_forward_command(CLI::App& app) {
  auto args = std::make_shared<ForwardArgs>();
  auto* cmd = app.add_subcommand(
      "forward",
      "Run one forward pass (test mode) of a graph and dump every blob (and the params used)\nto a safetensors file.\n"
      "With --backward, also backpropagate the loss (d loss = 1) and add grad/<blob> and\n"
      "grad/<param>. Params missing from --weights are initialised from their weight_init.\n"
      "With --train, the pass runs in training mode: batch_norm normalises with the batch's\n"
      "statistics and updates its running statistics (dumped as they are after the pass),\n"
      "dropout draws its masks.\n"
      "Without either, the pass computes as fcn predict and fcn eval do (F(4x4, 3x3) Winograd\n"
      "for the fp32 3x3 convolutions, where a pass that a backward follows takes F(2x2, 3x3)).");
  add_model_options(cmd, args->model);
  cmd->add_option("--weights", args->weights, "safetensors file with params by name");
  cmd->add_option("--seed", args->seed, "seed for initialising params not in --weights")->capture_default_str();
  cmd->add_option("--input", args->inputs, "name=FILE: a safetensors file holding a tensor of that name (NCHW)")
      ->required();
  cmd->add_option("--dump", args->dump, "output safetensors file")->required();
  cmd->add_flag("--backward", args->backward, "also dump gradients");
  cmd->add_flag("--train", args->train, "run the forward pass in training mode");
  cmd->callback([args] { run_forward(*args); });
}

}  // namespace fcn::cli
