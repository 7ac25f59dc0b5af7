#include <catch2/catch.hpp>
#include <cmath>

#include "fcn/core/error.hpp"
#include "gradcheck.hpp"

using namespace fcn;
using namespace fcn::testing;

namespace {

json dropout_spec(json options = json::object()) {
  options["name"] = "drop";
  options["type"] = "dropout";
  options["inputs"] = {"x"};
  return options;
}

Tensor run(Layer& layer, const Tensor& x, Mode mode, uint64_t seed) {
  std::mt19937_64 rng(seed);
  layer.set_rng(&rng);
  Tensor y(layer.reshape({x.shape()}));
  layer.forward({&x}, y, mode);
  layer.set_rng(nullptr);
  return y;
}

}  // namespace

TEST_CASE("dropout in train mode keeps about 1 - ratio of the units, scaled by exactly 1/(1 - ratio)") {
  for (double ratio : {0.5, 0.2, 0.0}) {
    INFO("ratio " << ratio);
    auto layer = make_test_layer(dropout_spec({{"ratio", ratio}}));
    std::mt19937_64 rng(1);
    const Tensor x = random_tensor({2, 8, 25, 25}, rng, 0.5f, 1.5f);  // no zeros: kept units stay non-zero
    const Tensor y = run(*layer, x, Mode::train, 42);
    const float scale = static_cast<float>(1.0 / (1.0 - ratio));
    int64_t kept = 0;
    for (int64_t i = 0; i < x.numel(); ++i) {
      if (y[i] == 0.f) continue;
      ++kept;
      REQUIRE(y[i] == x[i] * scale);
    }
    // 10000 Bernoulli(1 - ratio) draws: the standard deviation of the kept fraction is <= 0.005
    CHECK(static_cast<double>(kept) / x.numel() == Approx(1.0 - ratio).margin(0.025));
  }
}

TEST_CASE("dropout keeps a unit exactly where u >= ratio, u = (draw >> 11) * 2^-53 of each unit") {
  // the mask is part of the random stream a resumed run replays: pinned here
  // draw by draw, with ratios whose ratio * 2^53 falls between integers and
  // one equal to a draw of the stream (that unit is kept, u >= ratio)
  std::mt19937_64 rng(3);
  const Tensor x = random_tensor({1, 3, 11, 13}, rng, 0.5f, 1.5f);
  std::mt19937_64 peek(42);
  for (int skip = 0; skip < 17; ++skip) peek();
  const double draw_17 = static_cast<double>(peek() >> 11) * 0x1.0p-53;
  for (double ratio : {0.5, 0.1, 0.3, 1.0 / 3.0, draw_17, std::nextafter(draw_17, 1.0)}) {
    INFO("ratio " << ratio);
    auto layer = make_test_layer(dropout_spec({{"ratio", ratio}}));
    const Tensor y = run(*layer, x, Mode::train, 42);
    std::mt19937_64 reference(42);
    for (int64_t i = 0; i < x.numel(); ++i) {
      const double u = static_cast<double>(reference() >> 11) * 0x1.0p-53;
      INFO("unit " << i << ", u " << u);
      REQUIRE((y[i] != 0.f) == (u >= ratio));
    }
  }
}

TEST_CASE("dropout draws a mask of several thousand units as unit-by-unit draws, and leaves the generator after them") {
  // 2 x 3 x 23 x 31 = 4278 units: more than one buffer of draws, and a part
  // buffer at the end of each image (per-image generators) and of the whole
  std::mt19937_64 rng(5);
  const Tensor x = random_tensor({2, 3, 23, 31}, rng, 0.5f, 1.5f);
  const double ratio = 0.4;
  auto layer = make_test_layer(dropout_spec({{"ratio", ratio}}));
  auto expect_mask = [&](const Tensor& y, int64_t first, int64_t count, std::mt19937_64& reference) {
    for (int64_t i = first; i < first + count; ++i) {
      const double u = static_cast<double>(reference() >> 11) * 0x1.0p-53;
      INFO("unit " << i << ", u " << u);
      REQUIRE((y[i] != 0.f) == (u >= ratio));
      if (y[i] != 0.f) REQUIRE(y[i] == x[i] * static_cast<float>(1.0 / (1.0 - ratio)));
    }
  };
  SECTION("one generator") {
    std::mt19937_64 drawn(11), reference(11);
    layer->set_rng(&drawn);
    Tensor y(layer->reshape({x.shape()}));
    layer->forward({&x}, y, Mode::train);
    layer->set_rng(nullptr);
    expect_mask(y, 0, x.numel(), reference);
    CHECK(drawn() == reference());
  }
  SECTION("a generator per image") {
    std::mt19937_64 shared(11);
    std::vector<std::mt19937_64> images{std::mt19937_64(21), std::mt19937_64(22)};
    layer->set_rng(&shared);
    layer->set_image_rngs(&images);
    Tensor y(layer->reshape({x.shape()}));
    layer->forward({&x}, y, Mode::train);
    layer->set_rng(nullptr);
    layer->set_image_rngs(nullptr);
    const int64_t per_image = x.numel() / 2;
    for (int n = 0; n < 2; ++n) {
      std::mt19937_64 reference(21 + n);
      expect_mask(y, n * per_image, per_image, reference);
      CHECK(images[n]() == reference());
    }
  }
}

TEST_CASE("dropout: the same seed draws the same mask, another seed another one") {
  auto layer = make_test_layer(dropout_spec());
  std::mt19937_64 rng(2);
  const Tensor x = random_tensor({1, 4, 9, 9}, rng, 0.5f, 1.5f);
  const Tensor a = run(*layer, x, Mode::train, 7), b = run(*layer, x, Mode::train, 7);
  const Tensor c = run(*layer, x, Mode::train, 8);
  int64_t differ = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    REQUIRE(a[i] == b[i]);
    differ += a[i] != c[i];
  }
  CHECK(differ > 0);
}

TEST_CASE("dropout is the identity in test mode, forward and backward") {
  auto layer = make_test_layer(dropout_spec({{"ratio", 0.7}}));
  std::mt19937_64 rng(3);
  const Tensor x = random_tensor({1, 3, 5, 7}, rng);
  const Tensor y = run(*layer, x, Mode::test, 1);
  for (int64_t i = 0; i < x.numel(); ++i) REQUIRE(y[i] == x[i]);
  std::vector<Tensor> inputs{x};
  check_gradients(*layer, inputs);
}

TEST_CASE("dropout gradient check in train mode (the checker reseeds the rng for every forward)") {
  for (const Shape& shape : {Shape{1, 3, 5, 7}, Shape{2, 2, 3, 3}}) {
    INFO(shape_str(shape));
    auto layer = make_test_layer(dropout_spec({{"ratio", 0.3}}));
    std::mt19937_64 rng(4);
    std::vector<Tensor> inputs{random_tensor(shape, rng)};
    GradCheckOptions options;
    options.mode = Mode::train;
    check_gradients(*layer, inputs, options);
  }
}

TEST_CASE("dropout errors: ratio out of range, no rng in train mode") {
  CHECK_THROWS_WITH(make_test_layer(dropout_spec({{"ratio", 1.0}})), Catch::Contains("test.ratio"));
  CHECK_THROWS_WITH(make_test_layer(dropout_spec({{"ratio", -0.1}})), Catch::Contains("test.ratio"));
  auto layer = make_test_layer(dropout_spec());
  Tensor x({1, 1, 2, 2});
  Tensor y(layer->reshape({x.shape()}));
  CHECK_THROWS_WITH(layer->forward({&x}, y, Mode::train), Catch::Contains("'drop' (dropout)"));
}
