#include <catch2/catch.hpp>

#include <cstring>
#include <limits>
#include <utility>

#include "fcn/core/error.hpp"
#include "fcn/cpu/elementwise.hpp"
#include "fcn/layers/pool.hpp"
#include "gradcheck.hpp"
#include "layer_parity.hpp"

using namespace fcn;
using namespace fcn::testing;

namespace {

json pool_spec(json options) {
  options["name"] = "pool";
  options["type"] = "max_pool";
  options["inputs"] = {"x"};
  return options;
}

// Forward and backward of a max_pool (kernel, stride, pad per axis, ceil
// mode) on x with ties and NaNs, against the window rule written out: the
// window clipped to the input, row-major, a value greater or NaN wins.
void check_window_rule(int64_t kernel, int64_t stride, int64_t pad, Shape shape) {
  INFO("kernel " << kernel << " stride " << stride << " pad " << pad << " input " << shape_str(shape));
  auto layer = make_test_layer(pool_spec({{"kernel", kernel}, {"stride", stride}, {"pad", pad}, {"ceil_mode", true}}));
  std::mt19937_64 rng(static_cast<uint64_t>(kernel * 100 + stride * 10 + pad));
  Tensor x = random_tensor(shape, rng);
  std::uniform_int_distribution<int64_t> pick(0, x.numel() - 1);
  for (int64_t i = 0; i < x.numel() / 30; ++i) x[pick(rng)] = 0.25f;  // ties
  for (int i = 0; i < 20; ++i) x[pick(rng)] = std::nanf("");
  Tensor y(layer->reshape({x.shape()}));
  layer->forward({&x}, y, Mode::test);
  Tensor dy(y.shape()), dx(x.shape());
  for (int64_t i = 0; i < dy.numel(); ++i) dy[i] = static_cast<float>(i % 1000 + 1);
  layer->backward({&x}, y, dy, {&dx});
  const int64_t planes = shape[0] * shape[1], h = shape[2], w = shape[3], out_h = y.h(), out_w = y.w();
  Tensor dx_expected(x.shape());
  int64_t wrong = 0;
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t oy = 0; oy < out_h; ++oy)
      for (int64_t ox = 0; ox < out_w; ++ox) {
        int64_t best = -1;
        for (int64_t iy = std::max<int64_t>(oy * stride - pad, 0); iy < std::min(oy * stride - pad + kernel, h); ++iy)
          for (int64_t ix = std::max<int64_t>(ox * stride - pad, 0); ix < std::min(ox * stride - pad + kernel, w);
               ++ix) {
            const int64_t i = (p * h + iy) * w + ix;
            if (best < 0 || x[i] > x[best] || std::isnan(x[i])) best = i;
          }
        const float out = y[(p * out_h + oy) * out_w + ox];
        if (std::isnan(x[best]) ? !std::isnan(out) : out != x[best]) ++wrong;
        dx_expected[best] += dy[(p * out_h + oy) * out_w + ox];
      }
  CHECK(wrong == 0);
  for (int64_t i = 0; i < dx.numel(); ++i) REQUIRE(dx[i] == dx_expected[i]);
}

// The layer's input gradient for dy added onto zeros, then written fresh
// into NaNs (which a read of the old values would carry); the layer is left
// told that its gradient is fresh.
std::pair<Tensor, Tensor> added_then_written(Layer& layer, const Tensor& x, const Tensor& y, const Tensor& dy) {
  Tensor added(x.shape()), written(x.shape());
  added.zero();
  layer.backward({&x}, y, dy, {&added});
  written.fill(std::numeric_limits<float>::quiet_NaN());
  layer.set_fresh_input_grads({1});
  layer.backward({&x}, y, dy, {&written});
  return {std::move(added), std::move(written)};
}

}  // namespace

TEST_CASE("pool_output_size follows PyTorch, ceil mode dropping a window that starts in the padding") {
  struct Row {
    int64_t in, kernel, stride, pad;
    bool ceil;
    int64_t expected;
  };
  const Row rows[] = {
      {7, 2, 2, 0, true, 4},   // ceil((7-2)/2) + 1: the last window covers one pixel
      {7, 2, 2, 0, false, 3},  // floor
      {5, 2, 2, 1, true, 3},   // ceil gives 4, but window 4 would start at 6 >= 5 + 1: dropped
      {5, 2, 2, 1, false, 3},  // floor((5+2-2)/2) + 1
      {6, 3, 2, 1, true, 4},   // ceil(5/2) + 1 = 4, (4-1)*2 = 6 < 6 + 1: kept
      {8, 2, 3, 0, true, 3},   // stride > kernel: ceil(6/3) + 1
      {224, 2, 2, 0, true, 112},
      {699, 2, 2, 0, true, 350},  // conv1 of FCN on a 500 image padded by 100 (odd: ceil keeps the edge)
      {2, 3, 1, 0, true, 0},      // kernel larger than the input
  };
  for (const Row& r : rows) {
    INFO("in " << r.in << " kernel " << r.kernel << " stride " << r.stride << " pad " << r.pad << " ceil " << r.ceil);
    CHECK(pool_output_size(r.in, r.kernel, r.stride, r.pad, r.ceil) == r.expected);
  }
}

TEST_CASE("max_pool reshape uses pool_output_size per axis and rejects too-small inputs") {
  auto layer = make_test_layer(pool_spec({{"kernel", {3, 2}}, {"stride", {2, 3}}, {"pad", {1, 0}}}));
  CHECK(layer->reshape({{2, 3, 9, 11}}) ==
        Shape{2, 3, pool_output_size(9, 3, 2, 1, true), pool_output_size(11, 2, 3, 0, true)});
  auto big = make_test_layer(pool_spec({{"kernel", 5}}));
  CHECK_THROWS_WITH(big->reshape({{1, 1, 3, 8}}),
                    Catch::Contains("'pool' (max_pool)") && Catch::Contains("[1, 1, 3, 8]"));
}

TEST_CASE("max_pool spec errors name the key") {
  CHECK_THROWS_WITH(make_test_layer(pool_spec({{"stride", 2}})), Catch::Contains("test.kernel"));
  CHECK_THROWS_WITH(make_test_layer(pool_spec({{"kernel", 3}, {"pad", 2}})),
                    Catch::Contains("test.pad") && Catch::Contains("kernel/2"));
  CHECK_THROWS_WITH(make_test_layer(pool_spec({{"kernel", 0}})), Catch::Contains("test.kernel"));
  CHECK_THROWS_WITH(make_test_layer(pool_spec({{"kernel", 2}, {"ceil_mod", true}})),
                    Catch::Contains("test.ceil_mod") && Catch::Contains("did you mean \"ceil_mode\""));
}

TEST_CASE("max_pool ties go to the first maximum and padding never wins") {
  auto layer = make_test_layer(pool_spec({{"kernel", 2}, {"stride", 2}, {"pad", 1}}));
  // 3x3 input of equal negative values: padding (-inf) must lose, and every
  // window's gradient goes to its first real pixel in row-major order.
  Tensor x({1, 1, 3, 3});
  x.fill(-2.f);
  Tensor y(layer->reshape({x.shape()}));
  REQUIRE(y.shape() == Shape{1, 1, 2, 2});
  layer->forward({&x}, y, Mode::test);
  for (int64_t i = 0; i < 4; ++i) CHECK(y[i] == -2.f);
  Tensor dy(y.shape());
  dy.fill(1.f);
  Tensor dx(x.shape());
  layer->backward({&x}, y, dy, {&dx});
  // windows cover rows/cols {0}, {1,2}: their first pixels are (0,0), (0,1), (1,0), (1,1)
  const float expected[9] = {1, 1, 0, 1, 1, 0, 0, 0, 0};
  for (int64_t i = 0; i < 9; ++i) CHECK(dx[i] == expected[i]);
}

TEST_CASE("max_pool coord_map is Caffe's: a = 1/s, b = (pad - (k-1)/2)/s") {
  auto layer = make_test_layer(pool_spec({{"kernel", {3, 2}}, {"stride", {2, 4}}, {"pad", {1, 0}}}));
  const CoordMap map = layer->coord_map();
  CHECK(map.scale[0] == Approx(0.5));
  CHECK(map.shift[0] == Approx(0.0));  // (1 - 1) / 2
  CHECK(map.scale[1] == Approx(0.25));
  CHECK(map.shift[1] == Approx(-0.125));  // (0 - 0.5) / 4
}

TEST_CASE("max_pool gradient check") {
  struct Row {
    json options;
    Shape shape;
  };
  const std::vector<Row> rows = {
      {{{"kernel", 2}}, {1, 2, 5, 7}},  // ceil keeps partial edge windows
      {{{"kernel", 3}, {"stride", 2}, {"pad", 1}}, {2, 2, 7, 9}},
      {{{"kernel", 2}, {"stride", 2}, {"pad", 1}}, {1, 2, 5, 5}},  // dropped last window
      {{{"kernel", 2}, {"stride", 3}}, {1, 3, 8, 7}},              // stride > kernel: gaps
      {{{"kernel", 3}, {"stride", 2}, {"ceil_mode", false}}, {1, 2, 8, 9}},
      {{{"kernel", {3, 2}}, {"stride", {1, 2}}, {"pad", {1, 1}}}, {1, 2, 5, 6}},  // rectangular, overlapping
  };
  for (const Row& row : rows) {
    INFO(row.options.dump() << " on " << shape_str(row.shape));
    auto layer = make_test_layer(pool_spec(row.options));
    std::mt19937_64 rng(11);
    std::vector<Tensor> inputs{random_tensor(row.shape, rng, -1.f, 1.f, 0.05f)};
    check_gradients(*layer, inputs);
  }
}

TEST_CASE("max_pool matches PyTorch max_pool2d forward and backward") { check_parity("pool_parity.safetensors"); }

TEST_CASE("2x2 stride-2 max_pool on wide planes (16 windows at a time) follows the window rule") {
  // ties (first maximum), NaNs (a NaN wins; a later NaN replaces it), ceil mode's partial
  // last window; checked against the window rule written out
  auto layer = make_test_layer(json{{"name", "pool"}, {"type", "max_pool"}, {"inputs", {"x"}}, {"kernel", 2}});
  std::mt19937_64 rng(5);
  Tensor x = random_tensor({1, 3, 9, 75}, rng);
  std::uniform_int_distribution<int> pick(0, static_cast<int>(x.numel()) - 1);
  for (int i = 0; i < 300; ++i) x[pick(rng)] = 0.25f;  // ties
  for (int i = 0; i < 20; ++i) x[pick(rng)] = std::nanf("");
  Tensor y(layer->reshape({x.shape()}));
  REQUIRE(y.shape() == Shape{1, 3, 5, 38});
  layer->forward({&x}, y, Mode::test);
  Tensor dy(y.shape()), dx(x.shape());
  for (int64_t i = 0; i < dy.numel(); ++i) dy[i] = static_cast<float>(i + 1);
  layer->backward({&x}, y, dy, {&dx});
  Tensor dx_expected(x.shape());
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t oy = 0; oy < 5; ++oy)
      for (int64_t ox = 0; ox < 38; ++ox) {
        int64_t best = -1;
        for (int64_t iy = 2 * oy; iy < std::min<int64_t>(2 * oy + 2, 9); ++iy)
          for (int64_t ix = 2 * ox; ix < std::min<int64_t>(2 * ox + 2, 75); ++ix) {
            const int64_t i = (c * 9 + iy) * 75 + ix;
            if (best < 0 || x[i] > x[best] || std::isnan(x[i])) best = i;
          }
        const float out = y[(c * 5 + oy) * 38 + ox];
        INFO("channel " << c << " output " << oy << ", " << ox);
        if (std::isnan(x[best]))
          REQUIRE(std::isnan(out));
        else
          REQUIRE(out == x[best]);
        dx_expected[best] += dy[(c * 5 + oy) * 38 + ox];
      }
  for (int64_t i = 0; i < dx.numel(); ++i) REQUIRE(dx[i] == dx_expected[i]);
}

TEST_CASE("max_pool with windows inside the columns (a row of outputs at a time) follows the window rule") {
  // the ResNet stem's 3x3 stride 2 pad 1 at its size for a 500x500 photo, and
  // strides 1 and 3 (the generic stride); ceil mode's partial last windows
  check_window_rule(3, 2, 1, {1, 3, 250, 250});
  check_window_rule(3, 1, 1, {2, 2, 37, 41});
  check_window_rule(3, 3, 0, {1, 2, 40, 95});
  check_window_rule(2, 2, 0, {1, 2, 9, 75});
}

TEST_CASE("max_pool told its input gradient is fresh writes it whole, reading none of the old values") {
  // as a memory-planning graph tells it (Layer::set_fresh_input_grads): overlapping windows (3x3 stride 2,
  // whose argmaxes may repeat) and a ceil-mode edge, two planes
  auto layer = make_test_layer(pool_spec({{"kernel", 3}, {"stride", 2}, {"pad", 1}, {"ceil_mode", true}}));
  CHECK(layer->writes_fresh_input_grad(0));
  const Shape shape{1, 2, 9, 12};
  const Shape out_shape = layer->reshape({shape});
  std::mt19937_64 rng(31);
  const Tensor x = random_tensor(shape, rng, -1.f, 1.f, 0.01f);
  const Tensor dy = random_tensor(out_shape, rng);
  Tensor y(out_shape);
  layer->forward({&x}, y, Mode::train);
  auto [added, written] = added_then_written(*layer, x, y, dy);
  for (int64_t i = 0; i < shape_numel(shape); ++i) REQUIRE(written[i] == added[i]);
  layer->set_fresh_input_grads({});  // told nothing: adds again
  layer->backward({&x}, y, dy, {&written});
  for (int64_t i = 0; i < shape_numel(shape); ++i) REQUIRE(written[i] == 2.f * added[i]);
}

TEST_CASE("max_pool given a rectifier's bits writes relu_backward of its input gradient") {
  // a folded ReLU backward (Graph::fold_rectifier_backwards): overlapping windows (3x3 stride 2), whose
  // winners can repeat, two images of two planes; bit for bit what the ReLU's own pass would make
  auto layer = make_test_layer(pool_spec({{"kernel", 3}, {"stride", 2}, {"pad", 1}, {"ceil_mode", true}}));
  CHECK(layer->masks_input_grad());
  const Shape shape{2, 2, 9, 12};
  const Shape out_shape = layer->reshape({shape});
  std::mt19937_64 rng(43);
  const Tensor x = random_tensor(shape, rng, -1.f, 1.f, 0.01f);
  const Tensor dy = random_tensor(out_shape, rng);
  Tensor y(out_shape), unmasked(shape), expected(shape), written(shape);
  layer->forward({&x}, y, Mode::train);
  layer->backward({&x}, y, dy, {&unmasked});
  const int64_t n = shape_numel(shape);
  std::vector<uint16_t> kept(cpu::relu_mask_words(n));
  for (uint16_t& word : kept) word = static_cast<uint16_t>(rng());
  cpu::relu_backward(kept.data(), unmasked.data(), expected.data(), n, 0.f, false);
  written.fill(std::numeric_limits<float>::quiet_NaN());
  layer->set_fresh_input_grads({1});
  layer->set_input_grad_kept(kept.data());
  layer->backward({&x}, y, dy, {&written});
  CHECK(std::memcmp(written.data(), expected.data(), n * sizeof(float)) == 0);
  int64_t winners_masked = 0;
  for (int64_t i = 0; i < n; ++i) winners_masked += unmasked[i] != 0.f && written[i] == 0.f;
  CHECK(winners_masked > 0);
}

TEST_CASE("2x2 stride-2 max_pool told its gradient is fresh writes what adding would, with and without a rectifier's bits") {
  // the windows tile the input, so the fresh gradient is written densely, 16
  // windows at a time where their 32 columns lie in the row (pooling.cpp,
  // unpool_2x2): wide rows with a tail, an odd last row and column, an even
  // plane; a -0 and a NaN among the gradients; bit for bit the cleared-and-added
  // gradient and relu_backward of it
  for (const Shape& shape : {Shape{2, 3, 9, 75}, Shape{1, 2, 8, 64}}) {
    auto layer = make_test_layer(json{{"name", "pool"}, {"type", "max_pool"}, {"inputs", {"x"}}, {"kernel", 2}});
    REQUIRE(layer->writes_fresh_input_grad(0));
    const Shape out_shape = layer->reshape({shape});
    std::mt19937_64 rng(47);
    const Tensor x = random_tensor(shape, rng, -1.f, 1.f, 0.01f);
    Tensor dy = random_tensor(out_shape, rng);
    dy[3] = -0.f;
    dy[7] = std::nanf("");
    Tensor y(out_shape), expected(shape);
    layer->forward({&x}, y, Mode::train);
    auto [added, written] = added_then_written(*layer, x, y, dy);
    const int64_t n = shape_numel(shape);
    INFO("shape " << shape[0] << "x" << shape[1] << "x" << shape[2] << "x" << shape[3]);
    CHECK(std::memcmp(written.data(), added.data(), n * sizeof(float)) == 0);
    std::vector<uint16_t> kept(cpu::relu_mask_words(n));
    for (uint16_t& word : kept) word = static_cast<uint16_t>(rng());
    cpu::relu_backward(kept.data(), added.data(), expected.data(), n, 0.f, false);
    written.fill(std::numeric_limits<float>::quiet_NaN());
    layer->set_input_grad_kept(kept.data());
    layer->backward({&x}, y, dy, {&written});
    CHECK(std::memcmp(written.data(), expected.data(), n * sizeof(float)) == 0);
  }
}
