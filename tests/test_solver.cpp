// SGD as Caffe: hand-computed steps, lr policies, parity with
// torch.optim.SGD and a golden loss curve (fixtures by tools/fixtures_solver.py).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>

#include "fcn/graph/graph.hpp"
#include "fcn/train/solver.hpp"
#include "fcn/model/weights.hpp"
#include "layer_parity.hpp"

using namespace fcn;
using fcn::testing::check_close;
using fcn::testing::fixture_path;

namespace {

Param make_param(const std::string& name, std::vector<float> w, std::vector<float> g, float lr_mult = 1.f,
                 float decay_mult = 1.f) {
  Param p;
  p.name = name;
  p.data = Tensor({static_cast<int64_t>(w.size())});
  p.grad = Tensor({static_cast<int64_t>(g.size())});
  std::memcpy(p.data.data(), w.data(), w.size() * sizeof(float));
  std::memcpy(p.grad.data(), g.data(), g.size() * sizeof(float));
  p.lr_mult = lr_mult;
  p.decay_mult = decay_mult;
  return p;
}

SolverConfig solver_from_json(const json& j) {
  SolverConfig c;
  c.base_lr = j.at("base_lr");
  c.lr_policy = j.at("lr_policy");
  c.momentum = j.at("momentum");
  c.weight_decay = j.at("weight_decay");
  c.iter_size = j.at("iter_size");
  return c;
}

// Image `i` of an [N, C, H, W] tensor as [1, C, H, W].
Tensor image_of(const Tensor& batch, int64_t i) {
  Tensor out({1, batch.dim(1), batch.dim(2), batch.dim(3)});
  std::memcpy(out.data(), batch.data() + i * out.numel(), sizeof(float) * out.numel());
  return out;
}

// The fixture's graph with its "init/<param>" values loaded.
struct FixtureNet {
  SafetensorsFile fixture;
  Graph graph;
  SolverConfig solver;

  explicit FixtureNet(const std::string& file)
      : fixture(read_safetensors(fixture_path(file))),
        graph(json::parse(fixture.metadata.at("spec"))),
        solver(solver_from_json(json::parse(fixture.metadata.at("solver")))) {
    const Tensor& data = fixture.tensors.at("data");
    graph.reshape({{"data", {1, data.dim(1), data.dim(2), data.dim(3)}}, {"label", {1, 1, data.dim(2), data.dim(3)}}});
    graph.init_params(1);
    SafetensorsFile init;
    for (const auto& item : fixture.tensors)
      if (item.first.rfind("init/", 0) == 0) init.tensors[item.first.substr(5)] = item.second;
    const LoadReport report = load_params(graph, init, file, LoadMode::strict);
    REQUIRE(report.missing.empty());
  }

  // Forward + backward of image i; returns its loss.
  double pass(int64_t i) {
    graph.blob("data") = image_of(fixture.tensors.at("data"), i);
    graph.blob("label") = image_of(fixture.tensors.at("label"), i);
    graph.forward(Mode::train);
    graph.backward();
    return graph.loss();
  }
};

}  // namespace

TEST_CASE("one SGD step: normalize, regularize, momentum, apply") {
  SolverConfig c;
  c.momentum = 0.5;
  c.weight_decay = 0.1;
  c.iter_size = 2;
  Solver solver(c);
  Param w = make_param("w", {1.f, -2.f}, {4.f, 6.f}, 2.f, 0.5f);
  Param frozen = make_param("f", {3.f}, {5.f}, 0.f);
  solver.step({&w, &frozen}, 0.1);
  // g = grad/2 + 0.1*0.5*w = {2.05, 2.9}; v = 0.1*2*g = {0.41, 0.58}; w -= v
  CHECK(w.data[0] == Approx(1.f - 0.41f));
  CHECK(w.data[1] == Approx(-2.f - 0.58f));
  CHECK(solver.momentum().at("w")[0] == Approx(0.41f));
  CHECK(frozen.data[0] == 3.f);  // lr_mult 0: untouched, no buffer
  CHECK(solver.momentum().count("f") == 0);

  // second step with zero gradient: g = 0.05*w; v = 0.5*v + 0.2*g
  w.grad.zero();
  const float w0 = w.data[0];
  solver.step({&w}, 0.1);
  const float v = 0.5f * 0.41f + 0.2f * (0.05f * w0);
  CHECK(solver.momentum().at("w")[0] == Approx(v));
  CHECK(w.data[0] == Approx(w0 - v));
}

TEST_CASE("lr policies follow Caffe's formulas") {
  SolverConfig c;
  c.base_lr = 0.01;
  c.gamma = 0.1;
  c.power = 0.75;
  c.max_iter = 1000;
  c.lr_policy = "fixed";
  CHECK(learning_rate(c, 0) == 0.01);
  CHECK(learning_rate(c, 999) == 0.01);
  c.lr_policy = "step";
  c.stepsize = 100;
  CHECK(learning_rate(c, 99) == Approx(0.01));
  CHECK(learning_rate(c, 100) == Approx(0.001));
  CHECK(learning_rate(c, 250) == Approx(0.0001));
  c.lr_policy = "multistep";
  c.stepvalues = {10, 50};
  CHECK(learning_rate(c, 9) == Approx(0.01));
  CHECK(learning_rate(c, 10) == Approx(0.001));
  CHECK(learning_rate(c, 49) == Approx(0.001));
  CHECK(learning_rate(c, 50) == Approx(0.0001));
  c.lr_policy = "poly";
  c.power = 0.9;
  CHECK(learning_rate(c, 0) == Approx(0.01));
  CHECK(learning_rate(c, 500) == Approx(0.01 * std::pow(0.5, 0.9)));
  CHECK(learning_rate(c, 1000) == 0.0);
  c.lr_policy = "inv";
  c.gamma = 1e-4;
  c.power = 0.75;
  CHECK(learning_rate(c, 0) == Approx(0.01));
  CHECK(learning_rate(c, 2000) == Approx(0.01 * std::pow(1.2, -0.75)));
  c.lr_policy = "cosine";
  CHECK_THROWS_WITH(Solver(c), Catch::Contains("solver.lr_policy") && Catch::Contains("cosine"));
}

TEST_CASE("gradients_finite flags inf and nan in trainable params only") {
  Param a = make_param("a", {1.f, 2.f}, {0.5f, -1.f});
  Param frozen = make_param("f", {1.f}, {std::numeric_limits<float>::quiet_NaN()}, 0.f);
  CHECK(gradients_finite({&a, &frozen}));
  a.grad[1] = std::numeric_limits<float>::infinity();
  CHECK_FALSE(gradients_finite({&a}));
  a.grad[1] = std::numeric_limits<float>::quiet_NaN();
  CHECK_FALSE(gradients_finite({&a}));
  a.grad[1] = 3.f;
  // a gradient large enough for the threads and vectors: the extremes of the finite floats pass,
  // one non-finite value anywhere (the first, a middle one, the last) fails
  Param big = make_param("big", {0.f}, {0.f});
  big.data = Tensor({(1 << 21) + 3});
  big.grad = Tensor({(1 << 21) + 3});
  big.grad[5] = std::numeric_limits<float>::max();
  big.grad[6] = -std::numeric_limits<float>::max();
  big.grad[7] = std::numeric_limits<float>::denorm_min();
  CHECK(gradients_finite({&big}));
  for (int64_t at : {int64_t{0}, big.grad.numel() / 2 + 1, big.grad.numel() - 1}) {
    for (float bad : {-std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()}) {
      INFO("at " << at << " value " << bad);
      big.grad[at] = bad;
      CHECK_FALSE(gradients_finite({&a, &big}));
      CHECK_FALSE(gradients_finite({&big}));
      big.grad[at] = 0.f;
    }
  }
  CHECK(gradients_finite({&a, &big}));
}

TEST_CASE("iter_size 2 with multipliers equals torch.optim.SGD on a batch of 2") {
  FixtureNet net("solver_sgd.safetensors");
  Solver solver(net.solver);
  REQUIRE(net.solver.iter_size == 2);
  for (int step = 1; step <= 3; ++step) {
    INFO("step " << step);
    net.graph.zero_param_grads();
    for (int64_t i = 0; i < net.solver.iter_size; ++i) net.pass(i);
    solver.step(net.graph.params(), solver.learning_rate(step - 1));
    const std::string prefix = "step" + std::to_string(step) + "/";
    for (Param* p : net.graph.params()) {
      check_close(p->name, p->data, net.fixture.tensors.at(prefix + p->name));
      if (!p->frozen())
        check_close(p->name + ".momentum", solver.momentum().at(p->name),
                    net.fixture.tensors.at(prefix + p->name + ".momentum"));
    }
  }
  CHECK(net.graph.find_param("up.weight")->frozen());
  check_close("frozen up.weight", net.graph.find_param("up.weight")->data, net.fixture.tensors.at("init/up.weight"));
}

TEST_CASE("golden: the first 10 training losses of a tiny net equal PyTorch's") {
  FixtureNet net("solver_golden.safetensors");
  Solver solver(net.solver);
  const Tensor& expected = net.fixture.tensors.at("losses");
  const int64_t images = net.fixture.tensors.at("data").dim(0);
  REQUIRE(expected.numel() == 10);
  for (int64_t step = 0; step < 10; ++step) {
    net.graph.zero_param_grads();
    const double loss = net.pass(step % images);
    INFO("step " << step << ": fcn " << loss << ", PyTorch " << expected[step]);
    CHECK(std::fabs(loss - expected[step]) < 1e-4);
    solver.step(net.graph.params(), solver.learning_rate(step));
  }
  CHECK(expected[9] < expected[0]);  // the fixture does learn
}
