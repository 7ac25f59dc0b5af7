#include <catch2/catch.hpp>

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "fcn/core/error.hpp"
#include "fcn/graph/graph.hpp"
#include "fcn/layers/batch_norm.hpp"
#include "fcn/layers/folded_params.hpp"
#include "fcn/train/checkpoint.hpp"
#include "gradcheck.hpp"
#include "layer_parity.hpp"
#include "recording_emitter.hpp"

using namespace fcn;
using namespace fcn::testing;

namespace {

json bn_spec(json options) {
  options["name"] = "bn";
  options["type"] = "batch_norm";
  options["inputs"] = {"x"};
  return options;
}

Param& param(Layer& layer, const std::string& name) {
  for (Param* p : layer.params())
    if (p->name == name) return *p;
  FAIL("no param " << name);
  throw;  // unreachable
}

// Random gamma, beta and running statistics (var in [0.5, 1.5]) of a reshaped layer.
void randomise_params(Layer& layer, std::mt19937_64& rng) {
  for (Param* p : layer.params()) {
    const bool var = p->name == layer.name() + ".running_var";
    p->data = random_tensor(p->data.shape(), rng, var ? 0.5f : -1.f, var ? 1.5f : 1.f);
  }
}

// Per-channel mean and biased variance over N, H, W in double.
struct Moments {
  std::vector<double> mean, var;
};

Moments moments(const Tensor& x) {
  const int64_t n = x.n(), c = x.c(), area = x.h() * x.w();
  Moments m{std::vector<double>(c, 0.0), std::vector<double>(c, 0.0)};
  for (int64_t ch = 0; ch < c; ++ch) {
    for (int64_t b = 0; b < n; ++b)
      for (int64_t i = 0; i < area; ++i) m.mean[ch] += x[(b * c + ch) * area + i];
    m.mean[ch] /= static_cast<double>(n * area);
    for (int64_t b = 0; b < n; ++b)
      for (int64_t i = 0; i < area; ++i) {
        const double d = x[(b * c + ch) * area + i] - m.mean[ch];
        m.var[ch] += d * d;
      }
    m.var[ch] /= static_cast<double>(n * area);
  }
  return m;
}

// max |actual - expected| <= tolerance * max |expected|
void check_relative(const std::string& what, const Tensor& actual, const std::vector<double>& expected,
                    double tolerance) {
  REQUIRE(static_cast<size_t>(actual.numel()) == expected.size());
  double diff = 0, scale = 0;
  for (int64_t i = 0; i < actual.numel(); ++i) {
    diff = std::max(diff, std::fabs(actual[i] - expected[static_cast<size_t>(i)]));
    scale = std::max(scale, std::fabs(expected[static_cast<size_t>(i)]));
  }
  INFO(what << ": max diff " << diff << ", max value " << scale);
  REQUIRE(scale > 0);
  CHECK(diff <= tolerance * scale);
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), sizeof(float) * a.numel()) == 0;
}

}  // namespace

TEST_CASE("batch_norm matches PyTorch: train (with the running update), test, frozen, affine false") {
  check_parity("batch_norm_parity.safetensors");
}

TEST_CASE("batch_norm params: gamma, beta and the running statistics, allocated at reshape") {
  auto layer = make_test_layer(bn_spec({}));
  const auto params = layer->params();
  REQUIRE(params.size() == 4);
  CHECK(params[0]->name == "bn.weight");
  CHECK(params[1]->name == "bn.bias");
  CHECK(params[2]->name == "bn.running_mean");
  CHECK(params[3]->name == "bn.running_var");
  for (Param* p : params) CHECK(p->data.numel() == 0);  // C is not known yet
  CHECK(layer->reshape({{2, 5, 3, 4}}) == Shape{2, 5, 3, 4});
  const float initial[4] = {1.f, 0.f, 0.f, 1.f};
  for (size_t i = 0; i < 4; ++i) {
    INFO(params[i]->name);
    REQUIRE(params[i]->data.shape() == Shape{5});
    for (int64_t c = 0; c < 5; ++c) CHECK(params[i]->data[c] == initial[i]);
  }
  // gamma and beta learn without decay; the statistics are never touched by the solver
  CHECK(params[0]->lr_mult == 1.f);
  CHECK(params[0]->decay_mult == 0.f);
  CHECK(params[1]->lr_mult == 1.f);
  CHECK(params[1]->decay_mult == 0.f);
  for (Param* p : {params[2], params[3]}) {
    CHECK(p->frozen());
    CHECK(p->decay_mult == 0.f);
    CHECK(p->grad.numel() == 0);
  }
  CHECK(params[0]->grad.shape() == Shape{5});
  // the same shape keeps the values (loaded weights survive a new image size); new channels reallocate
  params[2]->data[0] = 7.f;
  layer->reshape({{1, 5, 8, 8}});
  CHECK(params[2]->data[0] == 7.f);
  layer->reshape({{1, 2, 8, 8}});
  CHECK(params[2]->data.shape() == Shape{2});
  CHECK(params[2]->data[0] == 0.f);
  CHECK(layer->forward_flops() == 2.0 * 2 * 64);

  auto multipliers = make_test_layer(bn_spec({{"lr_mult", 0.5}, {"decay_mult", 1}, {"bias_lr_mult", 2}}));
  CHECK(multipliers->params()[0]->lr_mult == 0.5f);
  CHECK(multipliers->params()[0]->decay_mult == 1.f);
  CHECK(multipliers->params()[1]->lr_mult == 2.f);

  auto plain = make_test_layer(bn_spec({{"affine", false}}));
  REQUIRE(plain->params().size() == 2);
  CHECK(plain->params()[0]->name == "bn.running_mean");

  auto frozen = make_test_layer(bn_spec({{"mode", "frozen"}}));
  for (Param* p : frozen->params()) CHECK(p->frozen());
}

TEST_CASE("batch_norm memory-planner flags: batch statistics read x in backward, frozen is an affine map") {
  auto train = make_test_layer(bn_spec({}));
  CHECK(train->in_place_input() == -1);
  CHECK(train->backward_needs_inputs());
  CHECK(!train->backward_needs_output());
  auto frozen = make_test_layer(bn_spec({{"mode", "frozen"}}));
  CHECK(frozen->in_place_input() == 0);
  CHECK(!frozen->backward_needs_inputs());
  CHECK(!frozen->backward_needs_output());
  CHECK(frozen->input_extent() == std::array<double, 2>{1, 1});
}

TEST_CASE("batch_norm gradient check: batch statistics, running statistics, frozen, affine false") {
  struct Row {
    json options;
    Shape shape;
    Mode mode;
  };
  const std::vector<Row> rows = {
      {json::object(), {2, 3, 4, 5}, Mode::train},
      {json::object(), {1, 2, 1, 3}, Mode::train},  // three values per channel
      {{{"affine", false}, {"eps", 1e-3}}, {3, 2, 2, 3}, Mode::train},
      {{{"momentum", 0.5}}, {2, 3, 4, 5}, Mode::test},
      {{{"mode", "frozen"}}, {2, 3, 4, 5}, Mode::train},
      {{{"affine", false}}, {2, 3, 3, 2}, Mode::test},
      {{{"lr_mult", 0}}, {2, 3, 3, 4}, Mode::train},  // beta alone learns
  };
  for (const Row& row : rows) {
    INFO(row.options.dump() << " on " << shape_str(row.shape) << (row.mode == Mode::train ? ", train" : ", test"));
    auto layer = make_test_layer(bn_spec(row.options));
    layer->reshape({row.shape});
    std::mt19937_64 rng(5);
    randomise_params(*layer, rng);
    std::vector<Tensor> inputs{random_tensor(row.shape, rng, -2.f, 3.f)};
    GradCheckOptions options;
    options.mode = row.mode;
    check_gradients(*layer, inputs, options);
  }
}

TEST_CASE("batch_norm at photo size against a float64 reference: train forward, running update, backward") {
  const int64_t c = 21, h = 375, w = 500;
  auto layer = make_test_layer(bn_spec({{"momentum", 0.3}}));
  REQUIRE(layer->reshape({{1, c, h, w}}) == Shape{1, c, h, w});
  std::mt19937_64 rng(17);
  randomise_params(*layer, rng);
  // channel means up to 100 standard deviations away from zero: a one-pass variance would cancel
  Tensor x = random_tensor({1, c, h, w}, rng);
  for (int64_t ch = 0; ch < c; ++ch)
    for (int64_t i = 0; i < h * w; ++i) x[ch * h * w + i] = x[ch * h * w + i] * 0.5f + 5.f * ch;
  const Tensor gamma = param(*layer, "bn.weight").data, beta = param(*layer, "bn.bias").data;
  const Tensor running_mean = param(*layer, "bn.running_mean").data;
  const Tensor running_var = param(*layer, "bn.running_var").data;

  Tensor y({1, c, h, w});
  layer->forward({&x}, y, Mode::train);
  const Moments m = moments(x);
  const double count = static_cast<double>(h * w);
  std::vector<double> y_expected(static_cast<size_t>(x.numel())), mean_expected(c), var_expected(c);
  for (int64_t ch = 0; ch < c; ++ch) {
    const double invstd = 1.0 / std::sqrt(m.var[ch] + 1e-5);
    for (int64_t i = 0; i < h * w; ++i)
      y_expected[ch * h * w + i] = (x[ch * h * w + i] - m.mean[ch]) * invstd * gamma[ch] + beta[ch];
    mean_expected[ch] = 0.7 * running_mean[ch] + 0.3 * m.mean[ch];
    var_expected[ch] = 0.7 * running_var[ch] + 0.3 * m.var[ch] * count / (count - 1);
  }
  check_relative("output", y, y_expected, 1e-5);
  check_relative("running_mean", param(*layer, "bn.running_mean").data, mean_expected, 1e-6);
  check_relative("running_var", param(*layer, "bn.running_var").data, var_expected, 1e-6);

  const Tensor dy = random_tensor(y.shape(), rng);
  Tensor dx(x.shape());
  for (Param* p : layer->params()) p->grad.zero();
  layer->backward({&x}, y, dy, {&dx});
  // dx = gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)), dgamma = sum dy * xhat, dbeta = sum dy
  std::vector<double> dx_expected(static_cast<size_t>(x.numel())), dgamma(c, 0.0), dbeta(c, 0.0);
  for (int64_t ch = 0; ch < c; ++ch) {
    const double invstd = 1.0 / std::sqrt(m.var[ch] + 1e-5);
    auto xhat = [&](int64_t i) { return (x[ch * h * w + i] - m.mean[ch]) * invstd; };
    for (int64_t i = 0; i < h * w; ++i) {
      dbeta[ch] += dy[ch * h * w + i];
      dgamma[ch] += dy[ch * h * w + i] * xhat(i);
    }
    for (int64_t i = 0; i < h * w; ++i)
      dx_expected[ch * h * w + i] =
          gamma[ch] * invstd * (dy[ch * h * w + i] - dbeta[ch] / count - xhat(i) * dgamma[ch] / count);
  }
  check_relative("input grad", dx, dx_expected, 1e-4);
  check_relative("weight grad", param(*layer, "bn.weight").grad, dgamma, 1e-4);
  check_relative("bias grad", param(*layer, "bn.bias").grad, dbeta, 1e-4);
}

TEST_CASE("batch_norm modes: test and frozen use the running statistics and never update them") {
  auto layer = make_test_layer(bn_spec({}));
  layer->reshape({{2, 3, 2, 2}});
  std::mt19937_64 rng(8);
  randomise_params(*layer, rng);
  const Tensor x = random_tensor({2, 3, 2, 2}, rng);
  const Tensor mean_before = param(*layer, "bn.running_mean").data;
  Tensor y({2, 3, 2, 2});
  layer->forward({&x}, y, Mode::test);
  CHECK(same_bits(param(*layer, "bn.running_mean").data, mean_before));
  layer->forward({&x}, y, Mode::train);
  CHECK(!same_bits(param(*layer, "bn.running_mean").data, mean_before));

  auto frozen = make_test_layer(bn_spec({{"mode", "frozen"}}));
  frozen->reshape({{2, 3, 2, 2}});
  randomise_params(*frozen, rng);
  const Tensor frozen_mean = param(*frozen, "bn.running_mean").data;
  const Tensor frozen_var = param(*frozen, "bn.running_var").data;
  Tensor y_train({2, 3, 2, 2}), y_test({2, 3, 2, 2});
  frozen->forward({&x}, y_train, Mode::train);
  frozen->forward({&x}, y_test, Mode::test);
  CHECK(same_bits(y_train, y_test));
  CHECK(same_bits(param(*frozen, "bn.running_mean").data, frozen_mean));
  CHECK(same_bits(param(*frozen, "bn.running_var").data, frozen_var));
  // y = (x - running_mean) / sqrt(running_var + eps) * gamma + beta
  const Tensor& gamma = param(*frozen, "bn.weight").data;
  const Tensor& beta = param(*frozen, "bn.bias").data;
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int64_t ch = (i / 4) % 3;
    const double expected = (x[i] - frozen_mean[ch]) / std::sqrt(frozen_var[ch] + 1e-5) * gamma[ch] + beta[ch];
    CHECK(y_train[i] == Approx(expected).margin(1e-6));
  }
}

TEST_CASE("batch_norm in training needs more than one value per channel, as PyTorch") {
  auto layer = make_test_layer(bn_spec({}));
  const Tensor x({1, 4, 1, 1});
  Tensor y(layer->reshape({x.shape()}));
  CHECK_THROWS_WITH(layer->forward({&x}, y, Mode::train),
                    Catch::Contains("'bn' (batch_norm)") && Catch::Contains("more than 1 value per channel") &&
                        Catch::Contains("[1, 4, 1, 1]"));
  CHECK_NOTHROW(layer->forward({&x}, y, Mode::test));
  auto frozen = make_test_layer(bn_spec({{"mode", "frozen"}}));
  Tensor y_frozen(frozen->reshape({x.shape()}));
  CHECK_NOTHROW(frozen->forward({&x}, y_frozen, Mode::train));
}

TEST_CASE("batch_norm spec errors name the key") {
  CHECK_THROWS_WITH(make_test_layer(bn_spec({{"mode", "eval"}})), Catch::Contains("test.mode"));
  CHECK_THROWS_WITH(make_test_layer(bn_spec({{"momentum", 1.5}})), Catch::Contains("test.momentum"));
  CHECK_THROWS_WITH(make_test_layer(bn_spec({{"eps", 0}})), Catch::Contains("test.eps"));
  CHECK_THROWS_WITH(make_test_layer(bn_spec({{"mode", "frozen"}, {"lr_mult", 1}})),
                    Catch::Contains("test.lr_mult") && Catch::Contains("frozen"));
  CHECK_THROWS_WITH(make_test_layer(bn_spec({{"mode", "frozen"}, {"bias_lr_mult", 2}})),
                    Catch::Contains("test.bias_lr_mult"));
  CHECK_NOTHROW(make_test_layer(bn_spec({{"mode", "frozen"}, {"lr_mult", 0}})));
  CHECK_THROWS_WITH(make_test_layer(bn_spec({{"affine", false}, {"lr_mult", 1}})), Catch::Contains("test.lr_mult"));
  CHECK_THROWS_WITH(make_test_layer(bn_spec({{"momentun", 0.1}})), Catch::Contains("did you mean \"momentum\""));
  auto layer = make_test_layer(bn_spec({}));
  CHECK_THROWS_WITH(layer->reshape({{2, 3, 4}}), Catch::Contains("'bn' (batch_norm)"));
}

namespace {

// conv -> batch_norm (train) -> relu -> conv -> batch_norm (frozen, in place
// when memory is reused) -> relu -> score conv -> loss
json net_spec(bool conv_bias = true) {
  return json::parse(R"({"inputs": {"data": {"channels": 3}, "label": {"channels": 1}}, "layers": [
    {"name": "conv1", "type": "conv", "inputs": ["data"], "num_output": 4, "kernel": 3, "pad": 1, "bias": )" +
                     std::string(conv_bias ? "true" : "false") + R"(},
    {"name": "bn1", "type": "batch_norm", "inputs": ["conv1"]},
    {"name": "relu1", "type": "relu", "inputs": ["bn1"]},
    {"name": "conv2", "type": "conv", "inputs": ["relu1"], "num_output": 5, "kernel": 3, "pad": 1},
    {"name": "bn2", "type": "batch_norm", "inputs": ["conv2"], "mode": "frozen"},
    {"name": "relu2", "type": "relu", "inputs": ["bn2"]},
    {"name": "score", "type": "conv", "inputs": ["relu2"], "num_output": 3, "kernel": 1},
    {"name": "loss", "type": "softmax_loss", "inputs": ["score", "label"], "normalize": "valid"}]})");
}

std::unique_ptr<Graph> make_net(GraphOptions options, uint64_t seed, int64_t batch = 2, int64_t h = 6, int64_t w = 7,
                                bool conv_bias = true) {
  auto graph = std::make_unique<Graph>(net_spec(conv_bias), "graph", options);
  graph->reshape({{"data", {batch, 3, h, w}}, {"label", {batch, 1, h, w}}});
  graph->init_params(seed);
  std::mt19937_64 rng(seed);
  for (const char* bn : {"bn1", "bn2"}) randomise_params(*graph->find_layer(bn), rng);
  Tensor& data = graph->blob("data");
  data = random_tensor(data.shape(), rng);
  Tensor& label = graph->blob("label");
  for (int64_t i = 0; i < label.numel(); ++i) label[i] = static_cast<float>(rng() % 3);
  return graph;
}

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    path = std::filesystem::temp_directory_path() / ("fcn_test_batch_norm_" + std::to_string(::getpid()));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

}  // namespace

TEST_CASE("batch_norm under the memory planner: reused buffers give the same loss and gradients") {
  GraphOptions separate;
  separate.reuse_memory = false;
  GraphOptions reused;
  reused.reuse_memory = true;
  reused.reuse_values = true;
  auto reference = make_net(separate, 4);
  auto planned = make_net(reused, 4);
  for (Mode mode : {Mode::train, Mode::test}) {
    for (auto* graph : {reference.get(), planned.get()}) {
      graph->zero_param_grads();
      graph->forward(mode);
      graph->backward();
    }
    CHECK(planned->loss() == Approx(reference->loss()).epsilon(1e-6));
    for (Param* p : reference->params()) {
      INFO(p->name << (mode == Mode::train ? " after a training pass" : " after a test pass"));
      const Param* q = planned->find_param(p->name);
      CHECK(same_bits(p->data, q->data));  // the running statistics too
      if (p->frozen()) continue;
      for (int64_t i = 0; i < p->grad.numel(); ++i) REQUIRE(q->grad[i] == Approx(p->grad[i]).margin(1e-6));
    }
  }
}

TEST_CASE("batch_norm with its ReLU fused (max(y, 0) written by the normalisation) at photo size: the same numbers") {
  // reuse_memory runs each ReLU in place over its batch_norm's output, and
  // the batch_norm (train bn1, frozen bn2) rectifies; without it they run apart
  GraphOptions separate;
  separate.reuse_memory = false;
  auto reference = make_net(separate, 7, 2, 188, 250);
  auto fused = make_net(GraphOptions{}, 7, 2, 188, 250);
  for (const char* bn : {"bn1", "bn2"}) {
    INFO(bn);
    CHECK_FALSE(dynamic_cast<const BatchNormLayer&>(*reference->find_layer(bn)).rectifies_output());
    CHECK(dynamic_cast<const BatchNormLayer&>(*fused->find_layer(bn)).rectifies_output());
  }
  for (Mode mode : {Mode::train, Mode::test}) {
    INFO((mode == Mode::train ? "train" : "test"));
    for (auto* graph : {reference.get(), fused.get()}) {
      graph->zero_param_grads();
      graph->forward(mode);
      graph->backward();
    }
    CHECK(fused->loss() == reference->loss());
    CHECK(same_bits(fused->blob("score"), reference->blob("score")));
    for (Param* p : reference->params()) {
      INFO(p->name);
      const Param* q = fused->find_param(p->name);
      CHECK(same_bits(p->data, q->data));
      if (!p->frozen()) CHECK(same_bits(p->grad, q->grad));
    }
  }
}

TEST_CASE("inference folds each batch_norm into its conv (and ReLU): the scores of the layers run apart, refolded when params change") {
  // net_spec: conv1 -> bn1 (train) -> relu1, conv2 -> bn2 (frozen, in place) -> relu2, at 2x188x250
  GraphOptions folding;
  folding.skip_loss_in_test = true;
  folding.profile = true;
  GraphOptions apart = folding;
  apart.fold_batch_norm = false;
  for (bool conv_bias : {true, false}) {
    INFO("conv bias " << conv_bias);
    auto folded = make_net(folding, 9, 2, 188, 250, conv_bias);
    auto reference = make_net(apart, 9, 2, 188, 250, conv_bias);
    auto compare = [&](const std::string& when) {
      INFO(when);
      for (auto* graph : {folded.get(), reference.get()}) graph->forward(Mode::test);
      const Tensor& a = folded->blob("score");
      const Tensor& b = reference->blob("score");
      std::vector<double> expected(b.data(), b.data() + b.numel());
      check_relative("scores", a, expected, 1e-5);
    };
    auto tweak = [&](const std::string& param, float by) {
      for (auto* graph : {folded.get(), reference.get()}) {
        Tensor& data = graph->find_param(param)->data;
        for (int64_t i = 0; i < data.numel(); i += 3) data[i] += by;
      }
    };
    compare("first fold");
    for (auto* graph : {folded.get(), reference.get()}) graph->forward(Mode::train);  // moves bn1's running statistics
    compare("after a training forward");
    tweak("conv2.weight", 0.05f);
    compare("after a change of conv2's weight");
    tweak("bn2.running_var", 0.5f);
    tweak("bn1.weight", -0.3f);
    compare("after a change of the batch norms' params");
    // the batch norms ran in the training forward only; the ReLUs ran, over rectified values
    const auto& timings = folded->layer_timings();
    const auto& apart_timings = reference->layer_timings();
    auto calls = [](const Graph& graph, const std::vector<LayerTiming>& t, const std::string& name) {
      for (size_t i = 0; i < t.size(); ++i)
        if (graph.layers()[i]->name() == name) return t[i].forward_calls;
      return int64_t{-1};
    };
    CHECK(calls(*folded, timings, "bn1") == 1);
    CHECK(calls(*folded, timings, "bn2") == 1);
    CHECK(calls(*reference, apart_timings, "bn1") == 5);
    CHECK(calls(*folded, timings, "relu1") == 5);
  }
}

TEST_CASE("the folded weights' fingerprint changes when any one weight does, and with the size") {
  std::mt19937_64 rng(3);
  Tensor w = random_tensor({64, 3, 7, 7}, rng);
  const uint64_t print = FoldedParams::fingerprint(w);
  CHECK(FoldedParams::fingerprint(Tensor(w)) == print);
  int64_t unchanged = 0;
  for (int64_t i = 0; i < w.numel(); ++i) {
    const float kept = w[i];
    w[i] = std::nextafter(kept, 2.f);
    if (FoldedParams::fingerprint(w) == print) ++unchanged;
    w[i] = kept;
  }
  CHECK(unchanged == 0);
  Tensor shorter({w.numel() - 1});
  std::copy(w.data(), w.data() + shorter.numel(), shorter.data());
  Tensor longer({w.numel() + 1});
  longer.zero();
  std::copy(w.data(), w.data() + w.numel(), longer.data());
  CHECK(FoldedParams::fingerprint(shorter) != print);
  CHECK(FoldedParams::fingerprint(longer) != print);
}

TEST_CASE("batch_norm running statistics round-trip through a checkpoint, without momentum buffers") {
  TempDir dir;
  const std::string path = (dir.path / "ckpt.safetensors").string();
  auto graph = make_net({}, 6);
  Solver solver(SolverConfig{});
  graph->zero_param_grads();
  graph->forward(Mode::train);
  graph->backward();
  solver.step(graph->params(), 0.01);
  CHECK(solver.momentum().count("bn1.weight") == 1);
  CHECK(solver.momentum().count("bn1.running_mean") == 0);
  save_checkpoint(path, *graph, &solver, {1, 0.01, "h", 6});
  const SafetensorsFile file = read_safetensors(path);
  for (const char* name : {"bn1.running_mean", "bn1.running_var", "bn2.running_mean", "bn2.weight"})
    CHECK(file.tensors.count(name) == 1);
  CHECK(file.tensors.count("bn1.running_mean.momentum") == 0);

  auto restored = make_net({}, 9);  // other values everywhere
  Solver restored_solver(SolverConfig{});
  load_checkpoint(path, *restored, restored_solver);
  for (Param* p : graph->params()) {
    INFO(p->name);
    CHECK(same_bits(p->data, restored->find_param(p->name)->data));
  }
  // and a checkpoint without them cannot resume this model
  SafetensorsFile missing = read_safetensors(path);
  missing.tensors.erase("bn1.running_var");
  write_safetensors(path, missing);
  CHECK_THROWS_WITH(load_checkpoint(path, *restored, restored_solver), Catch::Contains("bn1.running_var"));
}

TEST_CASE("batch_norm folded into the conv before it gives the same test-mode scores") {
  for (bool conv_bias : {true, false}) {
    INFO("conv bias " << conv_bias);
    json spec = net_spec(conv_bias);
    spec["layers"] = json::array({spec["layers"][0], spec["layers"][1]});  // conv1 -> bn1
    spec["inputs"].erase("label");
    Graph graph(spec);
    graph.reshape({{"data", {1, 3, 9, 11}}});
    graph.init_params(12);
    std::mt19937_64 rng(12);
    randomise_params(*graph.find_layer("bn1"), rng);
    const Tensor image = random_tensor({1, 3, 9, 11}, rng, -3.f, 3.f);
    graph.blob("data") = image;
    graph.forward(Mode::test);
    const Tensor expected = graph.blob("bn1");

    json conv_only = spec;
    conv_only["layers"] = json::array({spec["layers"][0]});
    conv_only["layers"][0]["bias"] = true;
    Graph folded(conv_only);
    folded.reshape({{"data", {1, 3, 9, 11}}});
    Tensor weight = graph.find_param("conv1.weight")->data;
    Tensor bias({4});
    if (conv_bias) bias = graph.find_param("conv1.bias")->data;
    dynamic_cast<const BatchNormLayer&>(*graph.find_layer("bn1")).fold_into_conv(weight, bias);
    folded.find_param("conv1.weight")->data = weight;
    folded.find_param("conv1.bias")->data = bias;
    folded.blob("data") = image;
    folded.forward(Mode::test);
    const Tensor& got = folded.blob("conv1");
    std::vector<double> reference(expected.data(), expected.data() + expected.numel());
    check_relative("folded scores", got, reference, 1e-5);
  }
  auto layer = make_test_layer(bn_spec({}));
  layer->reshape({{1, 4, 2, 2}});
  Tensor weight({3, 2, 1, 1}), bias({3});
  CHECK_THROWS_WITH(dynamic_cast<BatchNormLayer&>(*layer).fold_into_conv(weight, bias),
                    Catch::Contains("cannot fold 4 channels"));
}

TEST_CASE("batch_norm's ONNX form: BatchNormalization on the running statistics, ones and zeros without affine") {
  for (bool affine : {true, false}) {
    INFO("affine " << affine);
    auto layer = make_test_layer(bn_spec({{"affine", affine}, {"eps", 1e-3}, {"mode", "frozen"}}));
    layer->reshape({{1, 3, 4, 4}});
    std::mt19937_64 rng(2);
    randomise_params(*layer, rng);
    RecordingEmitter onnx({{"x", {1, 3, 4, 4}}}, true);
    layer->emit_onnx(onnx, {"x"}, "bn");
    REQUIRE(onnx.nodes.size() == 1);
    const auto& node = onnx.nodes[0];
    CHECK(node.op == "BatchNormalization");
    CHECK(std::get<float>(node.attributes.at("epsilon").value) == 1e-3f);
    REQUIRE(node.inputs.size() == 5);
    CHECK(node.inputs[0] == "x");
    const std::vector<float> ones(3, 1.f), zeros(3, 0.f);
    auto values = [&](const std::string& param_name) {
      const Tensor& t = param(*layer, param_name).data;
      return std::vector<float>(t.data(), t.data() + t.numel());
    };
    CHECK(onnx.floats.at(node.inputs[1]) == (affine ? values("bn.weight") : ones));
    CHECK(onnx.floats.at(node.inputs[2]) == (affine ? values("bn.bias") : zeros));
    CHECK(node.inputs[3] == "bn.running_mean");
    CHECK(onnx.floats.at(node.inputs[3]) == values("bn.running_mean"));
    CHECK(onnx.floats.at(node.inputs[4]) == values("bn.running_var"));
  }
}

TEST_CASE("batch_norm's running statistics and affine must come from a weights file, a frozen upsampler need not") {
  for (const std::string mode : {"train", "frozen"}) {
    INFO(mode);
    auto layer = make_test_layer({{"name", "bn"}, {"type", "batch_norm"}, {"inputs", {"x"}}, {"mode", mode}});
    layer->reshape({{1, 3, 4, 4}});
    REQUIRE(layer->params().size() == 4);
    for (Param* p : layer->params()) {
      INFO(p->name);
      CHECK(p->must_be_loaded());
    }
  }
  auto upsampler = make_test_layer({{"name", "up"}, {"type", "deconv"}, {"inputs", {"x"}}, {"num_output", 3},
                                    {"kernel", 4}, {"stride", 2}, {"bias", false}, {"weight_init", "bilinear"},
                                    {"lr_mult", 0}});
  upsampler->reshape({{1, 3, 4, 4}});
  CHECK_FALSE(upsampler->params().at(0)->must_be_loaded());
}
