// fcn make-synthetic: writes the deterministic synthetic VOC-layout dataset.
#include <chrono>
#include <cstdio>
#include <memory>

#include "cli/commands.hpp"
#include "fcn/data/synthetic.hpp"
#include "fcn/core/error.hpp"

namespace fcn::cli {

namespace {

struct MakeSyntheticArgs {
  SyntheticSpec spec;
  std::vector<int> size = {96, 96};
};

void run_make_synthetic(MakeSyntheticArgs& args) {
  args.spec.height = args.size.at(0);
  args.spec.width = args.size.at(1);
  const auto start = std::chrono::steady_clock::now();
  write_synthetic_dataset(args.spec);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::string names;
  for (const auto& name : synthetic_class_names(args.spec.classes)) names += (names.empty() ? "" : ", ") + name;
  const std::string rare = args.spec.rare_class ? "; class " + std::to_string(args.spec.rare_class) + " rare" : "";
  std::printf("wrote %lld train + %lld val images (%dx%d, %d classes: %s; seed %llu%s) to %s in %.1f s\n",
              static_cast<long long>(args.spec.train), static_cast<long long>(args.spec.val), args.spec.height,
              args.spec.width, args.spec.classes, names.c_str(), static_cast<unsigned long long>(args.spec.seed),
              rare.c_str(), args.spec.out.c_str(), seconds);
}

}  // namespace

void add_make_synthetic_command(CLI::App& app) {
  auto args = std::make_shared<MakeSyntheticArgs>();
  auto* cmd = app.add_subcommand(
      "make-synthetic",
      "Write a deterministic synthetic dataset in VOC layout (JPEGImages/*.jpg, SegmentationClass/*.png\n"
      "palette labels with 255 void borders, ImageSets/Segmentation/{train,val,trainval}.txt).\n"
      "Objects of K-1 classes differ in shape and texture, never in colour, on cluttered backgrounds.\n"
      "The same options give byte-identical files.");
  cmd->add_option("--out", args->spec.out, "output directory (e.g. data/synthetic)")->required();
  cmd->add_option("--train", args->spec.train, "number of training images")->capture_default_str();
  cmd->add_option("--val", args->spec.val, "number of validation images")->capture_default_str();
  cmd->add_option("--size", args->size, "image height and width")->expected(2)->capture_default_str();
  cmd->add_option("--classes", args->spec.classes, "classes including background (2..41)")->capture_default_str();
  cmd->add_option("--seed", args->spec.seed, "random seed")->capture_default_str();
  cmd->add_option("--rare-class", args->spec.rare_class,
                  "make this class rare: a small object in about 1 image in 10, well under 1% of the pixels\n"
                  "(for class-imbalance experiments; 0 = off)")
      ->capture_default_str();
  cmd->callback([args] { run_make_synthetic(*args); });
}

}  // namespace fcn::cli
