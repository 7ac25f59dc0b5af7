// Training diagnostics (gradient norms, update ratios, ReLU zero shares) and
// the warnings the monitor derives from them and from validations.
#include <catch2/catch.hpp>

#include "fcn/train/diagnostics.hpp"
#include "fcn/train/training_monitor.hpp"

using namespace fcn;

namespace {

Scores predicted(std::vector<int64_t> pred_pixels) {
  Scores scores;
  for (size_t c = 0; c < pred_pixels.size(); ++c) {
    ClassScore score;
    score.id = static_cast<int64_t>(c);
    score.name = c == 0 ? "background" : "class_" + std::to_string(c);
    score.pred_pixels = pred_pixels[c];
    scores.per_class.push_back(score);
  }
  return scores;
}

StepDiagnostics with_ratios(std::vector<double> ratios) {
  StepDiagnostics d;
  for (size_t i = 0; i < ratios.size(); ++i) d.update_ratio["conv" + std::to_string(i) + ".weight"] = ratios[i];
  return d;
}

}  // namespace

TEST_CASE("relu blocks: relu1_2 is in relu1, relu6 is its own") {
  CHECK(relu_block("relu1_2") == "relu1");
  CHECK(relu_block("relu5_3") == "relu5");
  CHECK(relu_block("relu6") == "relu6");
  CHECK(relu_block("my_relu") == "my_relu");
  CHECK(relu_block("relu_") == "relu_");
}

TEST_CASE("gradient norms and update ratios") {
  const auto param = [](const std::string& name, const Shape& shape) {
    Param p;
    p.name = name;
    p.data = Tensor(shape);
    p.grad = Tensor(shape);
    return p;
  };
  Param weight = param("conv.weight", {2, 2}), bias = param("conv.bias", {2}), frozen = param("up.weight", {1});
  frozen.lr_mult = 0;
  for (int i = 0; i < 4; ++i) {
    weight.data[i] = 2.f;   // ||w|| = 4
    weight.grad[i] = 1.5f;  // ||g|| = 3
  }
  bias.grad[0] = 3.f;
  bias.grad[1] = 4.f;  // ||g|| = 5, ||b|| = 0
  const std::vector<Param*> params{&weight, &bias, &frozen};
  const auto norms = gradient_norms(params, 0.5);
  CHECK(norms.size() == 2);
  CHECK(norms.at("conv.weight") == Approx(1.5));
  CHECK(norms.at("conv.bias") == Approx(2.5));
  std::map<std::string, Tensor> updates{{"conv.weight", Tensor({2, 2})}, {"conv.bias", Tensor({2})}};
  updates["conv.weight"][0] = 0.04f;  // ||v|| = 0.04
  const auto ratios = update_ratios(params, updates);
  REQUIRE(ratios.size() == 1);  // weights only
  CHECK(ratios.at("conv.weight") == Approx(0.01));
}

TEST_CASE("the ReLU zero counter counts each block's zero outputs while it exists") {
  const json spec = json::parse(R"({"inputs": {"data": {"channels": 1}}, "layers": [
      {"name": "relu1_1", "type": "relu", "inputs": ["data"]},
      {"name": "relu1_2", "type": "relu", "inputs": ["relu1_1"]},
      {"name": "scale", "type": "scale", "inputs": ["relu1_2"], "value": -1},
      {"name": "relu2", "type": "relu", "inputs": ["scale"]}]})");
  GraphOptions options;
  options.reuse_memory = false;
  Graph graph(spec, "graph", options);
  graph.reshape({{"data", {1, 1, 2, 2}}});
  const float values[] = {-1.f, 2.f, 3.f, 0.f};  // relu1: 2 zeros of 4 (twice); relu2: -relu1 -> all 4 zero
  for (int i = 0; i < 4; ++i) graph.blob("data")[i] = values[i];
  {
    ReluZeroCounter counter(graph);
    graph.forward(Mode::train);
    const auto fractions = counter.zero_fractions();
    REQUIRE(fractions.size() == 2);
    CHECK(fractions.at("relu1") == Approx(0.5));
    CHECK(fractions.at("relu2") == Approx(1.0));
  }
  graph.forward(Mode::train);  // detached: nothing is counted and nothing breaks
}

TEST_CASE("single_class: two validations in a row predicting one class warn, once") {
  SolverConfig solver;
  TrainingMonitor monitor(solver);
  CHECK_FALSE(monitor.after_validation(100, predicted({1000, 0, 0})));
  CHECK_FALSE(monitor.after_validation(200, predicted({600, 300, 100})));  // the streak breaks
  CHECK_FALSE(monitor.after_validation(300, predicted({998, 2, 0})));
  const auto warning = monitor.after_validation(400, predicted({1000, 0, 0}));
  REQUIRE(warning);
  CHECK(warning->kind == "single_class");
  CHECK_THAT(warning->message, Catch::Contains("iteration 400") && Catch::Contains("'background'") &&
                                   Catch::Contains("solver.base_lr") && Catch::Contains("median_frequency"));
  CHECK_FALSE(monitor.after_validation(500, predicted({1000, 0, 0})));  // said once
}

TEST_CASE("loss_plateau: the two halves of the window within 1%, and 0 turns it off") {
  SolverConfig solver;
  solver.plateau_window = 400;
  solver.display_every = 50;
  TrainingMonitor monitor(solver);
  // falling: no warning while the window fills and while it keeps falling
  for (int64_t iter = 50; iter <= 1000; iter += 50)
    REQUIRE_FALSE(monitor.after_logged_loss(iter, 2.0 - 0.001 * static_cast<double>(iter)));
  std::optional<TrainingWarning> warning;
  int64_t warned_at = 0;
  for (int64_t iter = 1050; iter <= 1600 && !warning; iter += 50) {
    warning = monitor.after_logged_loss(iter, iter % 100 ? 0.7 : 0.702);
    warned_at = iter;
  }
  REQUIRE(warning);
  CHECK(warning->kind == "loss_plateau");
  CHECK(warned_at <= 1450);  // within one window of the flat part
  CHECK_THAT(warning->message, Catch::Contains("400 iterations"));

  solver.plateau_window = 0;
  TrainingMonitor off(solver);
  for (int64_t iter = 50; iter <= 2000; iter += 50) REQUIRE_FALSE(off.after_logged_loss(iter, 1.0));
}

TEST_CASE("update_ratio: a median outside the band warns with the numbers and a learning rate to try") {
  SolverConfig solver;
  solver.base_lr = 0.05;
  solver.update_ratio_band = {1e-5, 3e-2};
  TrainingMonitor monitor(solver);
  CHECK_FALSE(monitor.after_diagnostics(10, with_ratios({1e-3, 2e-3, 0.5}), 0.05));  // one outlier: median fine
  const auto high = monitor.after_diagnostics(20, with_ratios({0.04, 0.05, 0.9}), 0.05);
  REQUIRE(high);
  CHECK(high->kind == "update_ratio");
  CHECK_THAT(high->message, Catch::Contains("0.05") && Catch::Contains("above the band") &&
                                Catch::Contains("largest 0.9 in conv2.weight") && Catch::Contains("base_lr 0.005"));
  CHECK_FALSE(monitor.after_diagnostics(30, with_ratios({1e-8, 1e-8, 1e-8}), 0.05));  // said once

  TrainingMonitor low_monitor(solver);
  const auto low = low_monitor.after_diagnostics(10, with_ratios({1e-7, 2e-7, 1e-6}), 0.05);
  REQUIRE(low);
  CHECK_THAT(low->message, Catch::Contains("below the band") && Catch::Contains("base_lr 0.5"));
}

TEST_CASE("update_ratio: small ratios once the schedule has decayed the lr under a tenth of base_lr are no warning") {
  SolverConfig solver;
  solver.base_lr = 0.05;
  solver.update_ratio_band = {1e-5, 3e-2};
  TrainingMonitor monitor(solver);
  CHECK_FALSE(monitor.after_diagnostics(1490, with_ratios({1e-7, 2e-7, 1e-6}), 0.0001));  // a poly tail
  CHECK(monitor.after_diagnostics(1500, with_ratios({1e-7, 2e-7, 1e-6}), 0.01));  // still a fifth of base_lr
  TrainingMonitor high(solver);
  CHECK(high.after_diagnostics(1490, with_ratios({0.5, 0.6, 0.9}), 0.0001));  // too high warns at any lr
}
