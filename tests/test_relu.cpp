#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "gradcheck.hpp"
#include "layer_parity.hpp"

using namespace fcn;
using namespace fcn::testing;

namespace {

json relu_spec(double slope) {
  return {{"name", "relu"}, {"type", "relu"}, {"inputs", {"x"}}, {"negative_slope", slope}};
}

}  // namespace

TEST_CASE("relu gradient check, plain and leaky") {
  for (double slope : {0.0, 0.1}) {
    for (const Shape& shape : {Shape{1, 3, 5, 7}, Shape{2, 1, 3, 3}}) {
      INFO("slope " << slope << " shape " << shape_str(shape));
      auto layer = make_test_layer(relu_spec(slope));
      std::mt19937_64 rng(5);
      std::vector<Tensor> inputs{random_tensor(shape, rng, -1.f, 1.f, 0.02f)};  // away from the kink at 0
      check_gradients(*layer, inputs);
    }
  }
}

TEST_CASE("relu matches PyTorch relu and leaky_relu") { check_parity("relu_parity.safetensors"); }

TEST_CASE("relu runs in place: backward reads neither the input nor the output") {
  for (double slope : {0.0, 0.25}) {
    INFO("slope " << slope);
    auto layer = make_test_layer(relu_spec(slope));
    CHECK(layer->in_place_input() == 0);
    CHECK_FALSE(layer->backward_needs_inputs());
    CHECK_FALSE(layer->backward_needs_output());
    std::mt19937_64 rng(9);
    const Tensor x = random_tensor({1, 2, 3, 5}, rng);
    const Tensor dy = random_tensor(x.shape(), rng);
    layer->reshape({x.shape()});

    Tensor y(x.shape());
    layer->forward({&x}, y, Mode::train);
    Tensor dx_separate(x.shape());
    layer->backward({&x}, y, dy, {&dx_separate});

    Tensor in_place = x;  // the output overwrites its input
    layer->forward({&in_place}, in_place, Mode::train);
    for (int64_t i = 0; i < x.numel(); ++i) CHECK(in_place[i] == y[i]);
    Tensor garbage(x.shape());  // what the input blob holds after an in-place forward, at worst
    garbage.fill(std::numeric_limits<float>::quiet_NaN());
    Tensor dx_in_place(x.shape());
    layer->backward({&garbage}, garbage, dy, {&dx_in_place});
    for (int64_t i = 0; i < x.numel(); ++i) CHECK(dx_in_place[i] == dx_separate[i]);
  }
}

TEST_CASE("relu's kept bits cover every length, not only whole words of 16") {
  auto layer = make_test_layer(relu_spec(0.0));
  for (int64_t width : {1, 15, 16, 17, 33, 100}) {
    INFO("width " << width);
    std::mt19937_64 rng(static_cast<uint64_t>(width));
    const Tensor x = random_tensor({1, 1, 1, width}, rng);
    const Tensor dy = random_tensor(x.shape(), rng);
    layer->reshape({x.shape()});
    Tensor y(x.shape()), dx(x.shape());
    layer->forward({&x}, y, Mode::test);
    layer->backward({&x}, y, dy, {&dx});
    for (int64_t i = 0; i < width; ++i) CHECK(dx[i] == (x[i] > 0.f ? dy[i] : 0.f));
  }
}

TEST_CASE("relu at photo size (21 x 375x500), plain and leaky: every output, kept bit and accumulated gradient") {
  // the vector paths (two AVX2 or one AVX-512 compare and blend per word of 16) against the definition
  const Shape shape{1, 21, 375, 500};
  std::mt19937_64 rng(21);
  Tensor x = random_tensor(shape, rng);
  x[0] = 0.f;
  x[1] = -0.f;
  x[17] = std::numeric_limits<float>::quiet_NaN();  // y NaN, not kept: dx gets slope * dy
  const Tensor dy = random_tensor(shape, rng);
  const Tensor dx0 = random_tensor(shape, rng);
  for (float slope : {0.f, 0.2f}) {
    INFO("slope " << slope);
    auto layer = make_test_layer(relu_spec(slope));
    layer->reshape({shape});
    Tensor y(shape), dx = dx0;
    layer->forward({&x}, y, Mode::train);
    layer->backward({&x}, y, dy, {&dx});
    int64_t wrong = 0;
    for (int64_t i = 0; i < x.numel(); ++i) {
      const float expected = std::max(x[i], 0.f) + slope * std::min(x[i], 0.f);
      const bool same_y = std::isnan(x[i]) ? std::isnan(y[i]) : y[i] == expected;
      const float grad = x[i] > 0.f ? dy[i] : slope * dy[i];
      if (!same_y || dx[i] != dx0[i] + grad) ++wrong;
    }
    CHECK(wrong == 0);
  }
}

TEST_CASE("relu told its input gradient is fresh writes it whole, reading none of the old values") {
  // as a memory-planning graph tells it (Layer::set_fresh_input_grads) instead of zeroing the buffer first
  const Shape shape{1, 5, 37, 41};  // not a whole number of 16-lane words
  std::mt19937_64 rng(23);
  const Tensor x = random_tensor(shape, rng);
  const Tensor dy = random_tensor(shape, rng);
  for (float slope : {0.f, 0.2f}) {
    INFO("slope " << slope);
    auto layer = make_test_layer(relu_spec(slope));
    CHECK(layer->writes_fresh_input_grad(0));
    layer->reshape({shape});
    Tensor y(shape), zeroed(shape), stale(shape);
    layer->forward({&x}, y, Mode::train);
    zeroed.zero();
    layer->backward({&x}, y, dy, {&zeroed});  // the accumulating path, onto zeros
    stale.fill(std::numeric_limits<float>::quiet_NaN());
    layer->set_fresh_input_grads({1});
    layer->backward({&x}, y, dy, {&stale});
    CHECK(std::memcmp(stale.data(), zeroed.data(), sizeof(float) * zeroed.numel()) == 0);  // bit for bit
    layer->set_fresh_input_grads({});  // told nothing: adds again
    layer->backward({&x}, y, dy, {&stale});
    for (int64_t i = 0; i < stale.numel(); ++i) REQUIRE(stale[i] == 2.f * zeroed[i]);
  }
}

TEST_CASE("relu rejects a negative slope") {
  CHECK_THROWS_WITH(make_test_layer(relu_spec(-0.1)), Catch::Contains("test.negative_slope"));
}
