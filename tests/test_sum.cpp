#include <catch2/catch.hpp>

#include "gradcheck.hpp"
#include "layer_parity.hpp"

using namespace fcn;
using namespace fcn::testing;

namespace {

json sum_spec(std::vector<std::string> inputs, json options = json::object()) {
  options["name"] = "fuse";
  options["type"] = "sum";
  options["inputs"] = inputs;
  return options;
}

}  // namespace

TEST_CASE("sum matches PyTorch, with and without coeffs") { check_parity("sum_parity.safetensors"); }

TEST_CASE("sum gradient check over input counts and coeffs") {
  struct Row {
    std::vector<std::string> inputs;
    json options;
    Shape shape;
  };
  const std::vector<Row> rows = {
      {{"a"}, {{"coeffs", {-1.5}}}, {1, 2, 3, 5}},
      {{"a", "b"}, json::object(), {2, 3, 5, 7}},
      {{"a", "b", "c"}, {{"coeffs", {0.5, 2, -1}}}, {1, 1, 7, 3}},
  };
  for (const Row& row : rows) {
    INFO(row.inputs.size() << " inputs " << row.options.dump());
    auto layer = make_test_layer(sum_spec(row.inputs, row.options));
    std::mt19937_64 rng(6);
    std::vector<Tensor> inputs;
    for (size_t i = 0; i < row.inputs.size(); ++i) inputs.push_back(random_tensor(row.shape, rng));
    check_gradients(*layer, inputs);
  }
}

TEST_CASE("sum reads the same blob twice: both gradients add up") {
  auto layer = make_test_layer(sum_spec({"a", "a"}, {{"coeffs", {1, 2}}}));
  Tensor x({1, 1, 2, 2}), dy({1, 1, 2, 2}), dx({1, 1, 2, 2});
  dy.fill(1.f);
  Tensor y(layer->reshape({x.shape(), x.shape()}));
  layer->backward({&x, &x}, y, dy, {&dx, &dx});
  for (int64_t i = 0; i < dx.numel(); ++i) CHECK(dx[i] == 3.f);
}

TEST_CASE("sum errors: shapes differ, coeff count, no inputs") {
  auto layer = make_test_layer(sum_spec({"a", "b"}));
  CHECK_THROWS_WITH(layer->reshape({{1, 21, 5, 5}, {1, 21, 5, 6}}), Catch::Contains("'fuse' (sum)") &&
                                                                        Catch::Contains("[1, 21, 5, 5]") &&
                                                                        Catch::Contains("[1, 21, 5, 6]"));
  CHECK_THROWS_WITH(make_test_layer(sum_spec({"a", "b"}, {{"coeffs", {1}}})), Catch::Contains("test.coeffs"));
  CHECK_THROWS_WITH(make_test_layer(sum_spec({})), Catch::Contains("test.inputs"));
}

TEST_CASE("sum with its ReLU fused writes max(sum, 0), NaN kept, for one, two and three inputs") {
  const std::vector<std::pair<std::vector<std::string>, json>> rows = {
      {{"a"}, {{"coeffs", {-1.5}}}}, {{"a", "b"}, json::object()}, {{"a", "b", "c"}, {{"coeffs", {0.5, 2, -1}}}}};
  for (const auto& [names, options] : rows) {
    INFO(names.size() << " inputs");
    auto plain = make_test_layer(sum_spec(names, options));
    auto rectifying = make_test_layer(sum_spec(names, options));
    REQUIRE(rectifying->rectify_output(true));
    std::mt19937_64 rng(8);
    std::vector<Tensor> inputs;
    for (size_t i = 0; i < names.size(); ++i) inputs.push_back(random_tensor({2, 3, 37, 41}, rng));
    inputs[0][5] = std::numeric_limits<float>::quiet_NaN();
    std::vector<const Tensor*> pointers;
    for (const Tensor& t : inputs) pointers.push_back(&t);
    Tensor sum(inputs[0].shape()), rectified(inputs[0].shape());
    plain->forward(pointers, sum, Mode::train);
    rectifying->forward(pointers, rectified, Mode::train);
    CHECK(std::isnan(rectified[5]));
    int64_t zeroed = 0;
    for (int64_t i = 0; i < sum.numel(); ++i) {
      if (i == 5) continue;
      REQUIRE(rectified[i] == std::max(sum[i], 0.f));  // the same sum, bit for bit
      zeroed += sum[i] < 0.f;
    }
    CHECK(zeroed > sum.numel() / 4);
  }
}
