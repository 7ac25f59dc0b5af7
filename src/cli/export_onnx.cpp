// fcn export-onnx: a model and its weights as an ONNX file.
#include <spdlog/spdlog.h>

#include <cstdio>

#include "cli/commands.hpp"
#include "cli/model_args.hpp"
#include "fcn/core/error.hpp"
#include "fcn/io/safetensors.hpp"
#include "fcn/model/onnx_export.hpp"
#include "fcn/model/weights.hpp"

namespace fcn::cli {

namespace {

struct ExportOnnxArgs {
  ModelArgs model;
  std::string weights;
  std::string out;
  std::vector<int64_t> size;
};

void run_export_onnx(const ExportOnnxArgs& args) {
  if (!args.size.empty() && (args.size.size() != 2 || args.size[0] < 1 || args.size[1] < 1))
    throw Error("--size: expected two positive integers H W");
  // model.precision is left out: the export holds float weights and ops
  // whatever the model trains in, and building it computes nothing
  Graph graph(load_model_source(args.model).spec, "graph");
  OnnxExportOptions options;
  if (!args.size.empty()) {
    options.height = args.size[0];
    options.width = args.size[1];
  }
  // params are sized at reshape; a dynamic export takes its shapes symbolic
  graph.reshape(graph.input_shapes(args.size.empty() ? 224 : args.size[0], args.size.empty() ? 224 : args.size[1]));
  graph.init_params(0);  // frozen upsampling filters absent from the file keep their (bilinear) init
  const LoadReport report = load_params(graph, read_safetensors(args.weights), args.weights, LoadMode::strict);
  for (const auto& name : report.missing) {
    Param* p = graph.find_param(name);
    if (p && p->must_be_loaded()) throw Error(args.weights + ": has no tensor for param " + name);
  }
  export_onnx(graph, args.out, options);
  spdlog::info("wrote {} ({} input \"image\", output \"score\")", args.out,
               args.size.empty() ? "dynamic N x 3 x H x W" : "fixed 1 x 3 x " + std::to_string(args.size[0]) + " x " +
                                                                  std::to_string(args.size[1]));
}

}  // namespace

void add_export_onnx_command(CLI::App& app) {
  auto args = std::make_shared<ExportOnnxArgs>();
  auto* cmd = app.add_subcommand("export-onnx",
                                 "Write a model with its weights as ONNX (opset 13): input \"image\" (float32 Nx3xHxW,\n"
                                 "BGR minus the mean, as fcn's data blob), output \"score\" (NxCxHxW). H and W are\n"
                                 "dynamic unless --size fixes them.");
  add_model_options(cmd, args->model, false);
  cmd->add_option("--weights", args->weights, "safetensors weights (a checkpoint or an import)")->required();
  cmd->add_option("--out", args->out, "the .onnx file to write (refused if it exists)")->required();
  cmd->add_option("--size", args->size, "fixed input height and width (default: dynamic)")->expected(2);
  cmd->callback([args] { run_export_onnx(*args); });
}

}  // namespace fcn::cli
