// fcn predict: the mask of one image, or of every image in a directory, as
// palette PNGs of the same size, optionally with an overlay and legend.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>

#include "cli/commands.hpp"
#include "cli/inference_args.hpp"
#include "cli/output_files.hpp"
#include "fcn/core/error.hpp"
#include "fcn/core/progress.hpp"
#include "fcn/fcn.hpp"
#include "fcn/io/image_io.hpp"

namespace fcn::cli {

namespace {

namespace fs = std::filesystem;

struct PredictArgs {
  std::string config_file;
  std::string weights;
  std::string image;    // a file or a directory
  std::string out;      // MASK.png, or a directory when --image is one
  std::string overlay;  // OUT.png, or a directory when --image is one
  bool overwrite = false;
  InferenceArgs inference;
  std::vector<std::string> overrides;
};

bool is_image_file(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  static const std::vector<std::string> known = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm",
                                                 ".tif", ".tiff", ".webp", ".jp2", ".pnm"};
  return std::find(known.begin(), known.end(), ext) != known.end();
}

struct Job {
  std::string image, mask, overlay;
};

std::vector<Job> plan_jobs(const PredictArgs& args) {
  if (!fs::exists(args.image)) throw Error(args.image + ": no such file or directory");
  if (!fs::is_directory(args.image)) {
    if (fs::is_directory(args.out))
      throw Error("--out " + args.out + ": is a directory; give the mask file name (MASK.png) for one image");
    return {{args.image, args.out, args.overlay}};
  }
  std::vector<std::string> images;
  for (const auto& entry : fs::directory_iterator(args.image))
    if (entry.is_regular_file() && is_image_file(entry.path())) images.push_back(entry.path().string());
  std::sort(images.begin(), images.end());
  if (images.empty()) throw Error(args.image + ": no image files in this directory");
  std::vector<Job> jobs;
  std::vector<std::string> masks, overlays;
  for (const auto& image : images) {
    const std::string stem = fs::path(image).stem().string();
    jobs.push_back({image, (fs::path(args.out) / (stem + ".png")).string(),
                    args.overlay.empty() ? "" : (fs::path(args.overlay) / (stem + ".png")).string()});
    masks.push_back(jobs.back().mask);
    if (!args.overlay.empty()) overlays.push_back(jobs.back().overlay);
  }
  refuse_overwrites(args.out, masks, args.overwrite, "--out");
  refuse_overwrites(args.overlay, overlays, args.overwrite, "--overlay");
  return jobs;
}

// Once the model is built: a model that cannot run here leaves no empty directories behind.
void create_output_directories(const PredictArgs& args) {
  if (!fs::is_directory(args.image)) return;
  fs::create_directories(args.out);
  if (!args.overlay.empty()) fs::create_directories(args.overlay);
}

// A view of the decoded image for the API (read_image's checks stay: a
// truncated JPEG is an error, not a grey half).
cv::Mat mat_view(Image& image) { return cv::Mat(image.height, image.width, CV_8UC3, image.pixels.data()); }

Image image_of(const cv::Mat& mat) {
  Image image(mat.rows, mat.cols, mat.channels());
  for (int y = 0; y < mat.rows; ++y) std::copy_n(mat.ptr(y), image.width * image.channels, image.row(y));
  return image;
}

void run_predict(const PredictArgs& args) {
  const std::vector<Job> jobs = plan_jobs(args);
  const Model model(args.config_file, args.weights, model_options(args.inference, args.overrides));
  create_output_directories(args);
  Progress progress("predict", jobs.size());
  for (size_t i = 0; i < jobs.size(); ++i) {
    const Job& job = jobs[i];
    Image image = read_image(job.image);
    if (jobs.size() == 1) spdlog::info("{}: {}x{}, {}", job.image, image.width, image.height,
                                       model.plan_description(image.height, image.width));
    const cv::Mat mask = model.predict(mat_view(image));
    write_mask_png(job.mask, mask);
    if (!job.overlay.empty()) write_image(job.overlay, image_of(model.overlay(mat_view(image), mask)));
    if (jobs.size() > 1) progress.update(i + 1);
  }
  if (jobs.size() == 1) {
    spdlog::info("wrote {}{}", jobs[0].mask, jobs[0].overlay.empty() ? "" : " and " + jobs[0].overlay);
  } else {
    spdlog::info("wrote {} masks to {}{}", jobs.size(), args.out,
                 args.overlay.empty() ? "" : " and overlays to " + args.overlay);
  }
}

}  // namespace

void add_predict_command(CLI::App& app) {
  auto args = std::make_shared<PredictArgs>();
  auto* cmd = app.add_subcommand(
      "predict",
      "Predict the segmentation mask of an image (any format OpenCV reads) or of every image in a\n"
      "directory. Masks are palette PNGs of the input's size with VOC's colours (pixel value = class\n"
      "id); --overlay also writes the image blended with the mask and a legend of the classes present.");
  cmd->add_option("--config", args->config_file, "the run's config (e.g. runs/NAME/config.json)")->required();
  cmd->add_option("--weights", args->weights, "trained weights (e.g. runs/NAME/final.safetensors)")->required();
  cmd->add_option("--image", args->image, "an image file or a directory of images")->required();
  cmd->add_option("--out", args->out, "mask PNG to write (a directory when --image is one)")->required();
  cmd->add_option("--overlay", args->overlay, "overlay PNG to write (a directory when --image is one)");
  add_inference_options(cmd, args->inference);
  cmd->add_flag("--overwrite", args->overwrite,
                "with a directory of images: replace masks (and overlays) already in --out (--overlay);\n"
                "without it such files stop the command before anything is written. A file named by --out is\n"
                "always written");
  cmd->add_option("--set", args->overrides, "override a config key: a.b=VALUE (repeatable)");
  cmd->callback([args] { run_predict(*args); });
}

}  // namespace fcn::cli
