// fcn describe: what a model is, layer by layer, at a given input size.
#include <cstdio>

#include "cli/commands.hpp"
#include "cli/model_args.hpp"
#include "fcn/eval/memory_estimate.hpp"
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
  const ModelSource model = load_model_source(args.model);
  GraphOptions options;
  options.plan_only = true;  // shapes only: any size can be described (and bf16 on any CPU)
  options.precision = model.precision;
  Graph graph(model.spec, "graph", options);
  graph.reshape(graph.input_shapes(args.size[0], args.size[1]));
  const GraphSummary summary = describe_graph(graph);
  const MemoryEstimate inference = estimate_inference_memory(model.spec, args.size[0], args.size[1], model.precision);
  const MemoryEstimate training = estimate_training_memory(model.spec, args.size[0], args.size[1], model.precision);
  if (args.json_output) {
    json out = summary.to_json();
    out["memory"] = {{"inference_bytes", inference.total()}, {"training_bytes", training.total()}};
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("input %lldx%lld\n%s", static_cast<long long>(args.size[0]), static_cast<long long>(args.size[1]),
                summary.table().c_str());
    const auto line = [](const char* what, const MemoryEstimate& m) {
      std::printf("%s memory: %s (params %s, blobs %s, scratch %s, image %s, runtime %s)\n", what,
                  format_bytes(m.total()).c_str(), format_bytes(m.params).c_str(), format_bytes(m.blobs).c_str(),
                  format_bytes(m.scratch).c_str(), format_bytes(m.image).c_str(), format_bytes(m.runtime).c_str());
    };
    line("inference", inference);
    line("training step", training);
  }
}

}  // namespace

void add_describe_command(CLI::App& app) {
  auto args = std::make_shared<DescribeArgs>();
  auto* cmd = app.add_subcommand("describe",
                                 "Print a model layer by layer: inputs, output shape at --size, parameters, FLOPs,\n"
                                 "cumulative stride, receptive field and crop offsets, with totals, and the predicted peak\n"
                                 "memory of inference (eval, predict) and of a training step at that size.");
  add_model_options(cmd, args->model);
  cmd->add_option("--size", args->size, "input height and width")->expected(2)->capture_default_str();
  cmd->add_flag("--json", args->json_output, "print one JSON object instead of the table");
  cmd->callback([args] { run_describe(*args); });
}

}  // namespace fcn::cli
