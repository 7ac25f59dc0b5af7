// fcn import-caffe: a Caffe .caffemodel as an fcn config and weights.
#include <spdlog/spdlog.h>

#include <cstdio>

#include "cli/commands.hpp"
#include "fcn/core/error.hpp"
#include "fcn/model/caffe_import.hpp"

namespace fcn::cli {

namespace {

struct ImportCaffeArgs {
  std::string caffemodel;
  std::string out;
  std::string deploy;
  bool json_output = false;
};

void run_import_caffe(const ImportCaffeArgs& args) {
  if (args.out.empty()) throw Error("--out: give the directory to write config.json and weights.safetensors to");
  const CaffeImport imported = import_caffe(args.caffemodel, args.deploy);
  write_caffe_import(imported, args.out);
  int64_t values = 0;
  for (const auto& item : imported.weights) values += item.second.numel();
  for (const auto& name : imported.dropped) spdlog::info("dropped {}", name);
  spdlog::info("{} layers, {} tensors ({:.1f} MiB) -> {}/config.json, {}/weights.safetensors",
               imported.graph["layers"].size(), imported.weights.size(), values * 4.0 / (1 << 20), args.out, args.out);
  if (args.json_output) {
    const json summary = {{"layers", imported.graph["layers"].size()},
                          {"tensors", imported.weights.size()},
                          {"num_classes", imported.num_classes},
                          {"dropped", imported.dropped},
                          {"config", args.out + "/config.json"},
                          {"weights", args.out + "/weights.safetensors"}};
    std::printf("%s\n", summary.dump().c_str());
  }
}

}  // namespace

void add_import_caffe_command(CLI::App& app) {
  auto args = std::make_shared<ImportCaffeArgs>();
  auto* cmd = app.add_subcommand("import-caffe",
                                 "Convert a Caffe .caffemodel (current or V1 layout) into DIR/config.json (an explicit\n"
                                 "graph) and DIR/weights.safetensors with fcn's param names. InnerProduct layers become\n"
                                 "convolutions (VGG16's fc6 -> 4096x512x7x7); data, loss and softmax layers become\n"
                                 "fcn's data/label inputs and softmax_loss.");
  cmd->add_option("caffemodel", args->caffemodel, "the .caffemodel file")->required();
  cmd->add_option("--out", args->out, "output directory")->required();
  cmd->add_option("--deploy", args->deploy, "a NET.prototxt giving the structure, when the caffemodel lacks it");
  cmd->add_flag("--json", args->json_output, "print a one-line JSON summary");
  cmd->callback([args] { run_import_caffe(*args); });
}

}  // namespace fcn::cli
