#include <catch2/catch.hpp>
#include <cmath>

#include "gradcheck.hpp"
#include "layer_parity.hpp"

using namespace fcn;
using namespace fcn::testing;

namespace {

json loss_spec(json options = json::object()) {
  options["name"] = "loss";
  options["type"] = "softmax_loss";
  options["inputs"] = {"score", "label"};
  return options;
}

// Class ids in [0, classes), about a quarter of them the ignore label 255.
Tensor random_labels(const Shape& shape, int64_t classes, std::mt19937_64& rng) {
  Tensor label(shape);
  std::uniform_int_distribution<int64_t> pick(0, classes * 4 / 3);
  for (int64_t i = 0; i < label.numel(); ++i) {
    const int64_t v = pick(rng);
    label[i] = static_cast<float>(v < classes ? v : 255);
  }
  return label;
}

// Nothing counts: the loss is 0 and backward adds nothing.
void require_zero_loss_and_gradient(Layer& layer, const Tensor& score, const Tensor& label) {
  Tensor loss(layer.reshape({score.shape(), label.shape()})), dloss(Shape{});
  dloss[0] = 1.f;
  layer.forward({&score, &label}, loss, Mode::train);
  CHECK(loss[0] == 0.f);
  Tensor dscore(score.shape());
  layer.backward({&score, &label}, loss, dloss, {&dscore, nullptr});
  for (int64_t i = 0; i < dscore.numel(); ++i) REQUIRE(dscore[i] == 0.f);
}

}  // namespace

TEST_CASE("softmax_loss matches PyTorch cross_entropy (valid = mean over the batch, none = batch = sum / N), with and without class weights") {
  check_parity("softmax_loss_parity.safetensors");
}

TEST_CASE("softmax_loss outputs a 0-d loss") {
  auto layer = make_test_layer(loss_spec());
  CHECK(layer->is_loss());
  CHECK(layer->reshape({{2, 3, 4, 5}, {2, 1, 4, 5}}) == Shape{});
}

TEST_CASE("softmax_loss gradient check for every normalization") {
  for (const char* normalize : {"valid", "batch", "none"}) {
    for (const Shape& shape : {Shape{1, 3, 5, 7}, Shape{2, 4, 3, 3}}) {
      INFO(normalize << " " << shape_str(shape));
      auto layer = make_test_layer(loss_spec({{"normalize", normalize}}));
      std::mt19937_64 rng(21);
      std::vector<Tensor> inputs{random_tensor(shape, rng, -2.f, 2.f),
                                 random_labels({shape[0], 1, shape[2], shape[3]}, shape[1], rng)};
      GradCheckOptions options;
      options.skip_inputs = {1};
      check_gradients(*layer, inputs, options);
    }
  }
}

TEST_CASE("softmax_loss gradient check with class weights, for every normalization") {
  for (const char* normalize : {"valid", "batch", "none"}) {
    INFO(normalize);
    auto layer = make_test_layer(loss_spec({{"normalize", normalize}, {"class_weights", {0.25, 3.0, 0.0, 1.5}}}));
    std::mt19937_64 rng(5);
    const Shape shape{2, 4, 3, 5};
    std::vector<Tensor> inputs{random_tensor(shape, rng, -2.f, 2.f), random_labels({2, 1, 3, 5}, 4, rng)};
    GradCheckOptions options;
    options.skip_inputs = {1};
    check_gradients(*layer, inputs, options);
  }
}

// -sum_p w[l_p] log softmax(s_p)[l_p] / sum_p w[l_p], in double precision.
double weighted_mean_loss(const Tensor& score, const Tensor& label, const std::vector<double>& weights) {
  const int64_t classes = score.c(), pixels = score.h() * score.w();
  double loss = 0, weight = 0;
  for (int64_t p = 0; p < pixels; ++p) {
    const auto l = static_cast<int64_t>(label[p]);
    if (l == 255) continue;
    double m = score[p];
    for (int64_t c = 1; c < classes; ++c) m = std::max(m, static_cast<double>(score[c * pixels + p]));
    double total = 0;
    for (int64_t c = 0; c < classes; ++c) total += std::exp(score[c * pixels + p] - m);
    loss += weights[l] * (std::log(total) - (score[l * pixels + p] - m));
    weight += weights[l];
  }
  return loss / weight;
}

TEST_CASE("softmax_loss with class weights at a photo's size (21 classes, 375x500) matches a float64 reference") {
  std::vector<double> weights;
  for (int c = 0; c < 21; ++c) weights.push_back(c == 0 ? 0.05 : 0.5 + c * 0.3);  // background rare in weight
  auto layer = make_test_layer(loss_spec({{"normalize", "valid"}, {"class_weights", weights}}));
  std::mt19937_64 rng(3);
  Tensor score = random_tensor({1, 21, 375, 500}, rng, -8.f, 8.f);
  Tensor label = random_labels({1, 1, 375, 500}, 21, rng);
  Tensor loss(layer->reshape({score.shape(), label.shape()}));
  layer->forward({&score, &label}, loss, Mode::train);
  CHECK(loss[0] == Approx(weighted_mean_loss(score, label, weights)).epsilon(1e-6));
}

TEST_CASE("softmax_loss: counted pixels of weight 0 only give loss 0 and zero gradients (valid)") {
  auto layer = make_test_layer(loss_spec({{"normalize", "valid"}, {"class_weights", {1.0, 0.0, 2.0}}}));
  std::mt19937_64 rng(4);
  Tensor score = random_tensor({1, 3, 2, 3}, rng), label({1, 1, 2, 3});
  label.fill(1.f);
  label[0] = 255.f;
  require_zero_loss_and_gradient(*layer, score, label);
}

TEST_CASE("softmax_loss is stable for huge scores") {
  auto layer = make_test_layer(loss_spec({{"normalize", "none"}}));
  Tensor score({1, 2, 1, 1}), label({1, 1, 1, 1});
  score[0] = 1000.f;
  score[1] = 0.f;
  label[0] = 1.f;  // -log softmax = log(1 + e^1000) - 0 = 1000 (to float precision)
  Tensor loss(layer->reshape({score.shape(), label.shape()}));
  layer->forward({&score, &label}, loss, Mode::train);
  CHECK(loss[0] == Approx(1000.f));
}

TEST_CASE("softmax_loss with every pixel ignored: loss 0 and zero gradients") {
  for (const char* normalize : {"valid", "batch", "none"}) {
    INFO(normalize);
    auto layer = make_test_layer(loss_spec({{"normalize", normalize}, {"ignore_label", 7}}));
    std::mt19937_64 rng(2);
    Tensor score = random_tensor({1, 3, 2, 3}, rng), label({1, 1, 2, 3});
    label.fill(7.f);
    require_zero_loss_and_gradient(*layer, score, label);
  }
}

TEST_CASE("softmax_loss errors: label out of range, shape mismatch, bad options") {
  auto layer = make_test_layer(loss_spec());
  Tensor score({1, 3, 2, 2}), label({1, 1, 2, 2});
  Tensor loss(layer->reshape({score.shape(), label.shape()}));
  for (float bad : {3.f, -1.f, 1.5f, 254.f}) {
    INFO(bad);
    label[2] = bad;
    CHECK_THROWS_WITH(layer->forward({&score, &label}, loss, Mode::train), Catch::Contains("'loss' (softmax_loss)") &&
                                                                               Catch::Contains("label value") &&
                                                                               Catch::Contains("ignore label 255"));
  }
  CHECK_THROWS_WITH(layer->reshape({{1, 3, 4, 4}, {1, 1, 4, 5}}), Catch::Contains("'loss' (softmax_loss)") &&
                                                                      Catch::Contains("[1, 3, 4, 4]") &&
                                                                      Catch::Contains("[1, 1, 4, 5]"));
  CHECK_THROWS_WITH(layer->reshape({{2, 3, 4, 4}, {1, 1, 4, 4}}), Catch::Contains("[2, 3, 4, 4]"));
  CHECK_THROWS_WITH(make_test_layer(loss_spec({{"normalize", "mean"}})), Catch::Contains("test.normalize"));
  CHECK_THROWS_WITH(make_test_layer(loss_spec({{"ignore_label", 2.5}})), Catch::Contains("test.ignore_label"));
  CHECK_THROWS_WITH(make_test_layer(loss_spec({{"class_weights", {1.0, -1.0}}})),
                    Catch::Contains("test.class_weights") && Catch::Contains(">= 0"));
  CHECK_THROWS_WITH(make_test_layer(loss_spec({{"class_weight", {1.0}}})), Catch::Contains("class_weights"));
  auto weighted = make_test_layer(loss_spec({{"class_weights", {1.0, 2.0}}}));
  CHECK_THROWS_WITH(weighted->reshape({{1, 3, 2, 2}, {1, 1, 2, 2}}),
                    Catch::Contains("'loss' (softmax_loss)") && Catch::Contains("class_weights has 2 entries") &&
                        Catch::Contains("3 classes"));
}
