// fcn describe: what a model is, layer by layer, at a given input size.
#include <cstdio>

#include "cli/commands.hpp"
#include "cli/model_args.hpp"
#include "fcn/model/describe.hpp"
#include "fcn/core/error.hpp"

namespace fcn::cli {

namespace {

struct DescribeArgs {
  ModelArgs model;
  std::vector<int64_t> size = {500, 500};
  bool json_output = false;
};

void run_describe(const DescribeArgs& args) {
  if (args.size.size() != 2 || args.size[0] < 1 || args.size[1] < 1)
    throw Error("--size: expected two positive integers H W");
  const json spec = load_graph_spec(args.model);
  Graph graph(spec, "graph");
  std::map<std::string, Shape> shapes;
  for (const auto& name : graph.input_names())
    shapes[name] = {1, graph.input_channels(name), args.size[0], args.size[1]};
  graph.reshape(shapes);
  const GraphSummary summary = describe_graph(graph, spec);
  if (args.json_output) {
    std::printf("%s\n", summary.to_json().dump().c_str());
  } else {
    std::printf("input %lldx%lld\n%s", static_cast<long long>(args.size[0]), static_cast<long long>(args.size[1]),
                summary.table().c_str());
  }
}

}  // namespace

void add_describe_command(CLI::App& app) {
  auto args = std::make_shared<DescribeArgs>();
  auto* cmd = app.add_subcommand("describe",
                                 "Print a model layer by layer: inputs, output shape at --size, parameters, FLOPs,\n"
                                 "cumulative stride, receptive field and crop offsets, with totals.");
  add_model_options(cmd, args->model);
  cmd->add_option("--size", args->size, "input height and width")->expected(2)->capture_default_str();
  cmd->add_flag("--json", args->json_output, "print one JSON object instead of the table");
  cmd->callback([args] { run_describe(*args); });
}

}  // namespace fcn::cli
