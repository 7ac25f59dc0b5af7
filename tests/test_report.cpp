// The run report (src/train/report.cpp): one self-contained page built from
// a run directory's files, for new runs (diagnostics, per-class scores,
// confusion, warnings) and for older ones (loss, lr and four val figures).
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <regex>
#include <sstream>

#include "data_fixtures.hpp"
#include "fcn/core/error.hpp"
#include "fcn/train/html.hpp"
#include "fcn/train/report.hpp"

using fcn::testing::ScratchDir;
namespace fs = std::filesystem;

namespace {

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

// The part of `page` from `open` to the next `close`.
std::string between(const std::string& page, const std::string& open, const std::string& close) {
  const size_t start = page.find(open);
  REQUIRE(start != std::string::npos);
  return page.substr(start, page.find(close, start) - start);
}

const char* const kClassNames[] = {"background", "disk", "square", "triangle", "<b>&\"x"};

std::string validation_line(int iter, double miou) {
  nlohmann::json per_class = nlohmann::json::array(), confusion = nlohmann::json::array();
  for (int c = 0; c < 5; ++c) {
    per_class.push_back({{"id", c},
                         {"name", kClassNames[c]},
                         {"iou", c == 3 ? nlohmann::json() : nlohmann::json(miou + 0.01 * c)},
                         {"acc", 0.5},
                         {"gt_pixels", 1000 * (c + 1)},
                         {"pred_pixels", 900 * (c + 1)}});
    nlohmann::json row = nlohmann::json::array();
    for (int p = 0; p < 5; ++p) row.push_back(p == c ? 800 : 50 * p);
    confusion.push_back(row);
  }
  return nlohmann::json{{"iter", iter},
                        {"val",
                         {{"pixel_acc", 0.8},
                          {"mean_acc", 0.6},
                          {"mean_iou", miou},
                          {"fwavacc", 0.7},
                          {"num_images", 4},
                          {"ignored_pixels", 12},
                          {"per_class", per_class},
                          {"confusion", confusion}}}}
      .dump();
}

std::string step_line(int iter) {
  nlohmann::json diag = {
      {"grad_norm", {{"conv1_1.weight", 0.12}, {"conv1_1.bias", 0.01}, {"score_fr.weight", 3.5}}},
      {"update_ratio", {{"conv1_1.weight", 1.1e-3}, {"conv1_1.bias", 2e-5}, {"score_fr.weight", 0.05}}},
      {"relu_zero", {{"conv1", 0.41}, {"conv2", 0.5}, {"fc6", 0.7}, {"fc7", 0.97}}}};
  return nlohmann::json{{"iter", iter}, {"loss", 3.0 / iter}, {"lr", 1e-3}, {"images_per_s", 4.2}, {"diag", diag}}
      .dump();
}

// A run directory with everything a current run writes.
void write_full_run(const ScratchDir& dir) {
  std::string metrics;
  for (int iter = 10; iter <= 30; iter += 10)
    metrics += step_line(iter) + "\n" + validation_line(iter, 0.1 * iter / 10) + "\n";
  metrics +=
      R"({"iter": 30, "warning": {"kind": "single_class", "message": "predicts only <background>; try class_weights"}})"
      "\n";
  metrics += "{\"iter\": 31, \"loss\": 0.5, \"l\n";  // cut short by a crash
  write_text(dir.file("metrics.jsonl"), metrics);
  write_text(dir.file("config.json"), R"({"model": {"arch": "fcn8s", "num_classes": 5}, "solver": {"max_iter": 40}})");
  write_text(dir.file("run.json"), R"({"command": "fcn train --config c.json", "started": "2026-12-03T03:00:00Z",
    "updated": "2026-12-03T04:05:00Z", "finished": null, "state": "running", "start_iter": 0, "iter": 30, "max_iter": 40,
    "machine": {"host": "box", "cpu": "x86", "cores": 2, "threads": 2, "blas": "openblas"},
    "model": {"name": "fcn8s", "num_classes": 5, "params": 1234567, "trainable": 1234000, "precision": "fp32"},
    "data": {"train": "data/train", "val": "data/val", "train_images": 12, "val_images": 4},
    "class_weights": null, "images_per_s": 4.2, "eta_s": 600})");
  cv::Mat samples(24, 72, CV_8UC3, cv::Scalar(10, 200, 30));
  REQUIRE(cv::imwrite(dir.file("val_samples.png"), samples));
}

}  // namespace

TEST_CASE("the report of a full run shows every section from the files", "[report]") {
  ScratchDir dir("report_full");
  write_full_run(dir);
  fcn::write_run_report(dir.path());
  const std::string page = read_text(dir.file("report.html"));

  CHECK(count(page, "class=\"val-point\"") == 3);
  const std::string table = between(page, "<table id=\"per-class\"", "</table>");
  CHECK(count(table, "<tr>") == 1 + 5);  // header + one row per class
  CHECK(page.find("&lt;b&gt;&amp;&quot;x") != std::string::npos);
  CHECK(page.find("<b>&\"x") == std::string::npos);
  CHECK(page.find("predicts only &lt;background&gt;") != std::string::npos);
  CHECK(page.find("id=\"confusion\"") != std::string::npos);
  CHECK(page.find("Content-Security-Policy") != std::string::npos);
  CHECK(page.find("name=\"viewport\"") != std::string::npos);
  CHECK(page.find("data:image/png;base64,iVBORw0KGgo") != std::string::npos);
  CHECK(page.find("1h05m") != std::string::npos);  // the duration from started to updated
  CHECK(page.find("score_fr.weight") != std::string::npos);
  CHECK(page.find("class=\"band\"") != std::string::npos);  // the sane update-ratio band
  CHECK(page.find("fc7") != std::string::npos);
  // nothing fetched from anywhere: no URLs, every src a data: URI
  CHECK(page.find("http://") == std::string::npos);
  CHECK(page.find("https://") == std::string::npos);
  const std::regex src("src=\"([^\"]*)\"");
  for (auto it = std::sregex_iterator(page.begin(), page.end(), src); it != std::sregex_iterator(); ++it)
    CHECK((*it)[1].str().rfind("data:", 0) == 0);
  // written atomically: only the page is new, no temp file left
  for (const auto& entry : fs::directory_iterator(dir.path()))
    CHECK(entry.path().filename().string().find("tmp") == std::string::npos);
}

TEST_CASE("the report of an old run (loss, lr and four val figures) is still a page", "[report]") {
  ScratchDir dir("report_old");
  write_text(dir.file("metrics.jsonl"),
             R"({"iter": 50, "loss": 2.5, "lr": 0.01, "images_per_s": 3.0})"
             "\n"
             R"({"iter": 100, "loss": 2.0, "lr": 0.01, "images_per_s": 3.1})"
             "\n"
             R"({"iter": 100, "val": {"pixel_acc": 0.7, "mean_acc": 0.4, "mean_iou": 0.3, "fwavacc": 0.6}})"
             "\n");
  const std::string out = dir.file("elsewhere.html");
  fcn::write_run_report(dir.path(), out);
  const std::string page = read_text(out);
  CHECK(page.rfind("<!DOCTYPE html>", 0) == 0);
  CHECK(page.find("</html>") != std::string::npos);
  CHECK(count(page, "class=\"val-point\"") == 1);
  CHECK(page.find("no per-class scores") != std::string::npos);
  CHECK(page.find("no confusion matrix") != std::string::npos);
  CHECK(page.find("no val_samples.png yet") != std::string::npos);
  CHECK(page.find("no warnings") != std::string::npos);
  CHECK(page.find("no config.json") != std::string::npos);
  CHECK_FALSE(fs::exists(dir.file("report.html")));
}

TEST_CASE("a directory without a run is an error naming it", "[report]") {
  ScratchDir dir("report_none");
  const std::string missing = dir.file("no_such_run");
  CHECK_THROWS_WITH(fcn::write_run_report(missing), Catch::Contains(missing));
  CHECK_THROWS_WITH(fcn::write_run_report(dir.path()), Catch::Contains(dir.path()) && Catch::Contains("holds no run"));
}

TEST_CASE("html helpers escape, encode and tabulate", "[report]") {
  CHECK(fcn::html_escape("<a href='x'>&\"</a>") == "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;");
  CHECK(fcn::base64_encode("") == "");
  CHECK(fcn::base64_encode("f") == "Zg==");
  CHECK(fcn::base64_encode("fo") == "Zm8=");
  CHECK(fcn::base64_encode("foobar") == "Zm9vYmFy");
  CHECK(fcn::base64_encode(std::string("\xff\x00\x10", 3)) == "/wAQ");
  CHECK(fcn::format_percent(1, 4) == "25.0%");
  CHECK(fcn::format_percent(1, 0) == "n/a");
  const std::string table = fcn::html_table({"t", {"a", "<b>"}, {{"1", "2"}, {"3", "4"}}});
  CHECK(count(table, "<tr>") == 3);
  CHECK(table.find("<th>&lt;b&gt;</th>") != std::string::npos);
}

TEST_CASE("a long run's curves are thinned: the page stays small", "[report]") {
  ScratchDir dir("report_long");
  std::string metrics;
  for (int iter = 1; iter <= 100000; ++iter) {  // a VOC stage logged at every step
    metrics += "{\"iter\": " + std::to_string(iter) + ", \"loss\": " + std::to_string(1.0 + (iter % 7) * 0.1) +
               ", \"lr\": 1e-4, \"images_per_s\": 3.0}\n";
    if (iter % 4000 == 0) metrics += validation_line(iter, 0.5) + "\n";
  }
  write_text(dir.file("metrics.jsonl"), metrics);
  fcn::write_run_report(dir.path());
  const std::string page = read_text(dir.file("report.html"));
  CHECK(count(page, "class=\"val-point\"") == 25);
  CHECK(page.size() < 400 * 1024);
}
