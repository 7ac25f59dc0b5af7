// The public API (include/fcn/fcn.hpp) against the command it is meant to
// equal: masks byte for byte with `fcn predict`, scores with
// `fcn eval --json`, error lines with the command's; training progress and
// the stop request; one Model used from several threads.
#include <catch2/catch.hpp>
#include <opencv2/imgcodecs.hpp>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "data_fixtures.hpp"
#include "fcn/data/synthetic.hpp"
#include "fcn/fcn.hpp"

namespace {

namespace fs = std::filesystem;
using fcn::testing::ScratchDir;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Runs the fcn binary; returns its exit status, stdout+stderr in `log`.
int run_fcn(const std::string& args, const std::string& log) {
  const int status = std::system((std::string(FCN_BINARY) + " " + args + " >" + log + " 2>&1").c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A synthetic dataset, a tiny FCN-32s config on it and a 2-iteration run,
// made once per process.
struct Fixture {
  ScratchDir dir{"api"};
  std::string config = dir.file("tiny.json");
  std::string run = dir.file("run");
  std::string weights = run + "/final.safetensors";

  Fixture() {
    fcn::SyntheticSpec spec;
    spec.out = dir.file("data");
    spec.train = 4;
    spec.val = 3;
    spec.height = 40;
    spec.width = 52;
    spec.classes = 3;
    spec.seed = 3;
    fcn::write_synthetic_dataset(spec);
    std::ofstream(config) << R"({"model": {"arch": "fcn32s", "num_classes": 3, "width": 0.03125, "normalize": "valid"},
      "data": {"format": "voc", "root": ")" << spec.out << R"(", "seed": 5},
      "solver": {"base_lr": 0.001, "momentum": 0.9, "max_iter": 4, "snapshot_every": 0, "test_every": 0,
                 "display_every": 1, "threads": 1, "seed": 7}})";
    fcn::TrainSettings settings;
    settings.handle_signals = false;
    settings.overrides = {"solver.max_iter=2"};
    fcn::train(config, run, settings);
  }
  std::string image(int i) const { return dir.file("data/JPEGImages/val_0000" + std::to_string(i) + ".jpg"); }
};

const Fixture& fixture() {
  static const Fixture f;
  return f;
}

}  // namespace

TEST_CASE("Model::predict writes fcn predict's mask byte for byte, and is the argmax of probabilities") {
  const Fixture& f = fixture();
  const fcn::Model model(f.config, f.weights);
  const cv::Mat image = cv::imread(f.image(0), cv::IMREAD_COLOR);
  const cv::Mat mask = model.predict(image);
  REQUIRE(mask.type() == CV_8UC1);
  REQUIRE(mask.size() == image.size());
  const std::string api_png = f.dir.file("api.png"), cli_png = f.dir.file("cli.png");
  fcn::write_mask_png(api_png, mask);
  REQUIRE(run_fcn("predict --config " + f.config + " --weights " + f.weights + " --image " + f.image(0) +
                      " --out " + cli_png,
                  f.dir.file("predict.log")) == 0);
  CHECK(read_file(api_png) == read_file(cli_png));

  const std::vector<cv::Mat> probabilities = model.probabilities(image);
  REQUIRE(probabilities.size() == 3);
  REQUIRE(model.num_classes() == 3);
  REQUIRE(model.class_names().size() == 3);
  for (int y = 0; y < image.rows; ++y)
    for (int x = 0; x < image.cols; ++x) {
      float sum = 0, best = -1;
      int argmax = 0;
      for (int k = 0; k < 3; ++k) {
        const float p = probabilities[k].at<float>(y, x);
        sum += p;
        if (p > best) best = p, argmax = k;
      }
      REQUIRE(sum == Approx(1.0f).margin(1e-5));
      REQUIRE(argmax == mask.at<uint8_t>(y, x));
    }
  CHECK(fcn::palette().size() == 256);
  CHECK(fcn::palette()[1] == cv::Vec3b(0, 0, 128));  // aeroplane: RGB (128, 0, 0)
  const cv::Mat overlay = model.overlay(image, mask);
  CHECK(overlay.type() == CV_8UC3);
  CHECK(overlay.rows == image.rows);
}

TEST_CASE("one Model used from four threads at once gives the serial masks") {
  const Fixture& f = fixture();
  const fcn::Model model(f.config, f.weights);
  std::vector<cv::Mat> images, serial;
  for (int i = 0; i < 3; ++i) {
    cv::Mat image = cv::imread(f.image(i), cv::IMREAD_COLOR);
    if (i == 1) image = image(cv::Rect(3, 2, 37, 29)).clone();  // another size: the graph reshapes between calls
    images.push_back(image);
    serial.push_back(model.predict(image));
  }
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int round = 0; round < 6; ++round) {
        const size_t i = static_cast<size_t>(t + round) % images.size();
        const cv::Mat mask = model.predict(images[i]);
        if (mask.size() != serial[i].size() || cv::countNonZero(mask != serial[i]) != 0) ++mismatches;
      }
    });
  for (auto& thread : threads) thread.join();
  CHECK(mismatches == 0);
}

TEST_CASE("errors are fcn::Error with the line the command prints") {
  const Fixture& f = fixture();
  fcn::ModelOptions options;
  options.overrides = {"model.no_such_key=1"};
  std::string api_message;
  try {
    fcn::Model model(f.config, f.weights, options);
  } catch (const fcn::Error& e) {
    api_message = e.what();
  }
  REQUIRE_FALSE(api_message.empty());
  const std::string log = f.dir.file("bad.log");
  CHECK(run_fcn("predict --config " + f.config + " --weights " + f.weights + " --image " + f.image(0) +
                    " --out " + f.dir.file("bad.png") + " --set model.no_such_key=1",
                log) == 1);
  CHECK(read_file(log) == "error: " + api_message + "\n");

  const fcn::Model model(f.config, f.weights);
  CHECK_THROWS_AS(model.predict(cv::Mat(8, 8, CV_32FC3)), fcn::Error);
  CHECK_THROWS_AS(model.predict(cv::Mat()), fcn::Error);
  CHECK_THROWS_AS(fcn::Model(f.config, f.dir.file("missing.safetensors")).predict(cv::Mat(8, 8, CV_8UC3)),
                  fcn::Error);
}

TEST_CASE("train reports every iteration and stops as Ctrl-C does, from the callback or a StopToken") {
  const Fixture& f = fixture();
  std::vector<fcn::TrainProgress> seen;
  fcn::TrainSettings settings;
  settings.handle_signals = false;
  settings.on_progress = [&](const fcn::TrainProgress& p) {
    seen.push_back(p);
    return p.iteration < 2;  // stop after iteration 2 of 4
  };
  const fcn::TrainSummary stopped = fcn::train(f.config, f.dir.file("stopped"), settings);
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].iteration == 1);
  CHECK(seen[1].iteration == 2);
  CHECK(seen[1].max_iter == 4);
  CHECK(std::isfinite(seen[1].loss));
  CHECK(seen[1].eta_seconds >= 0);
  CHECK(stopped.stopped);
  CHECK(stopped.iterations == 2);
  CHECK(stopped.final_weights.empty());
  CHECK(fs::exists(f.dir.file("stopped/checkpoints/iter_00000002.safetensors")));
  CHECK(read_file(f.dir.file("stopped/run.json")).find("\"stopped\"") != std::string::npos);

  // the run resumes from that checkpoint to the end
  fcn::TrainSettings resume;
  resume.handle_signals = false;
  resume.resume = stopped.checkpoint;
  const fcn::TrainSummary finished = fcn::train(f.config, f.dir.file("stopped"), resume);
  CHECK_FALSE(finished.stopped);
  CHECK(finished.iterations == 4);
  CHECK(fs::exists(finished.final_weights));

  fcn::TrainSettings token;
  token.handle_signals = false;
  token.stop.request_stop();  // before the first iteration ends: one iteration runs
  const fcn::TrainSummary early = fcn::train(f.config, f.dir.file("token"), token);
  CHECK(early.stopped);
  CHECK(early.iterations == 1);
}

TEST_CASE("evaluate gives the JSON of fcn eval --json and its numbers") {
  const Fixture& f = fixture();
  int64_t last_done = 0, total = 0;
  fcn::EvalSettings settings;
  settings.on_progress = [&](int64_t done, int64_t of) { last_done = done, total = of; };
  const fcn::Evaluation evaluation = fcn::evaluate(f.config, f.weights, settings);
  const std::string json_file = f.dir.file("eval.json");
  REQUIRE(run_fcn("eval --config " + f.config + " --weights " + f.weights + " --json " + json_file,
                  f.dir.file("eval.log")) == 0);
  CHECK(evaluation.json + "\n" == read_file(json_file));
  CHECK(evaluation.num_images == 3);
  CHECK(last_done == 3);
  CHECK(total == 3);
  REQUIRE(evaluation.per_class.size() == 3);
  CHECK(evaluation.json.find("\"mean_iou\":") != std::string::npos);
  CHECK(evaluation.mean_iou >= 0);
  CHECK(evaluation.mean_iou <= 1);
}

TEST_CASE("version is the one fcn --version prints") {
  const Fixture& f = fixture();
  const std::string log = f.dir.file("version.log");
  REQUIRE(run_fcn("--version", log) == 0);
  CHECK(read_file(log).rfind("fcn " + fcn::version() + "\n", 0) == 0);
}
