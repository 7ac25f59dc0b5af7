#include <catch2/catch.hpp>

#include "fcn/layers/concat.hpp"
#include "gradcheck.hpp"
#include "layer_parity.hpp"

using namespace fcn;
using namespace fcn::testing;

namespace {

json concat_spec(std::vector<std::string> inputs, json options = json::object()) {
  options["name"] = "cat";
  options["type"] = "concat";
  options["inputs"] = inputs;
  return options;
}

// Element [n, c, h, w] of an NCHW tensor.
float at(const Tensor& t, int64_t n, int64_t c, int64_t h, int64_t w) {
  return t[((n * t.c() + c) * t.h() + h) * t.w() + w];
}

}  // namespace

TEST_CASE("concat matches torch.cat: 2 and 3 inputs, channels, h, w and negative axes") {
  check_parity("concat_parity.safetensors");
}

TEST_CASE("concat gradient check over axes and input counts") {
  struct Row {
    int axis;
    std::vector<Shape> shapes;
  };
  const std::vector<Row> rows = {
      {1, {{2, 1, 3, 4}, {2, 3, 3, 4}}},
      {2, {{1, 2, 2, 3}, {1, 2, 1, 3}, {1, 2, 4, 3}}},
      {3, {{2, 1, 2, 1}, {2, 1, 2, 5}}},
      {-2, {{1, 2, 3, 2}, {1, 2, 2, 2}}},
  };
  for (const Row& row : rows) {
    INFO("axis " << row.axis << ", " << row.shapes.size() << " inputs");
    std::vector<std::string> names;
    for (size_t i = 0; i < row.shapes.size(); ++i) names.push_back("in" + std::to_string(i));
    auto layer = make_test_layer(concat_spec(names, {{"axis", row.axis}}));
    std::mt19937_64 rng(5);
    std::vector<Tensor> inputs;
    for (const Shape& s : row.shapes) inputs.push_back(random_tensor(s, rng));
    check_gradients(*layer, inputs);
  }
}

TEST_CASE("concat reads the same blob twice: both slices of the gradient add up") {
  auto layer = make_test_layer(concat_spec({"a", "a"}, {{"axis", 3}}));
  Tensor x({1, 1, 2, 2}), dx({1, 1, 2, 2});
  Tensor y(layer->reshape({x.shape(), x.shape()}));
  REQUIRE(y.shape() == Shape{1, 1, 2, 4});
  Tensor dy(y.shape());
  for (int64_t i = 0; i < dy.numel(); ++i) dy[i] = static_cast<float>(i);
  dx.fill(0.5f);
  layer->backward({&x, &x}, y, dy, {&dx, &dx});
  // dx[h, w] = 0.5 + dy[h, w] + dy[h, 2 + w]
  for (int64_t h = 0; h < 2; ++h)
    for (int64_t w = 0; w < 2; ++w) CHECK(dx[h * 2 + w] == 0.5f + dy[h * 4 + w] + dy[h * 4 + 2 + w]);
}

TEST_CASE("concat at photo size: 21 + 2 channels of 375x500, and along w, N = 2") {
  std::mt19937_64 rng(9);
  const Tensor a = random_tensor({2, 21, 375, 500}, rng), b = random_tensor({2, 2, 375, 500}, rng);
  struct Case {
    int axis;
    Shape b_shape;
  };
  for (const Case& c : {Case{1, {2, 2, 375, 500}}, Case{3, {2, 21, 375, 7}}}) {
    INFO("axis " << c.axis);
    const Tensor second = c.axis == 1 ? b : random_tensor(c.b_shape, rng);
    auto layer = make_test_layer(concat_spec({"a", "b"}, {{"axis", c.axis}}));
    Tensor y(layer->reshape({a.shape(), second.shape()}));
    layer->forward({&a, &second}, y, Mode::test);
    // y[n, c, h, w] is a's element below a's extent along the axis, else second's, shifted by that extent
    bool same = true;
    for (int64_t n = 0; n < y.n(); ++n)
      for (int64_t ch = 0; ch < y.c(); ++ch)
        for (int64_t h = 0; h < y.h(); ++h)
          for (int64_t w = 0; w < y.w(); ++w) {
            const int64_t along = c.axis == 1 ? ch : w, first = c.axis == 1 ? a.c() : a.w();
            const float expected = along < first ? at(a, n, ch, h, w)
                                                 : (c.axis == 1 ? at(second, n, ch - first, h, w)
                                                                : at(second, n, ch, h, w - first));
            same = same && at(y, n, ch, h, w) == expected;
          }
    CHECK(same);
    // backward: each input gets its own slice, added to what it held
    Tensor da(a.shape()), db(second.shape());
    da.fill(1.f);
    db.fill(-1.f);
    layer->backward({&a, &second}, y, y, {&da, &db});
    bool added = true;
    for (int64_t i = 0; i < a.numel(); ++i) added = added && da[i] == a[i] + 1.f;
    for (int64_t i = 0; i < second.numel(); ++i) added = added && db[i] == second[i] - 1.f;
    CHECK(added);
  }
}

TEST_CASE("concat contract: identity map, no arithmetic, backward without input values") {
  auto layer = make_test_layer(concat_spec({"a", "b"}));
  layer->reshape({{1, 2, 5, 6}, {1, 3, 5, 6}});
  const CoordMap map = layer->coord_map();
  CHECK(map.scale == std::array<double, 2>{1, 1});
  CHECK(map.shift == std::array<double, 2>{0, 0});
  CHECK(layer->input_extent() == std::array<double, 2>{1, 1});
  CHECK(layer->forward_flops() == 0);
  CHECK_FALSE(layer->backward_needs_inputs());
  CHECK_FALSE(layer->backward_needs_output());
  CHECK(layer->in_place_input() == -1);
  CHECK(dynamic_cast<ConcatLayer&>(*layer).options().axis == 1);
  CHECK(dynamic_cast<ConcatLayer&>(*make_test_layer(concat_spec({"a", "b"}, {{"axis", -1}}))).options().axis == 3);
}

TEST_CASE("concat errors: shapes off the axis, axis range, too few inputs") {
  auto layer = make_test_layer(concat_spec({"a", "b"}));
  CHECK_THROWS_WITH(layer->reshape({{1, 21, 5, 5}, {1, 3, 5, 6}}),
                    Catch::Contains("'cat' (concat)") && Catch::Contains("a [1, 21, 5, 5]") &&
                        Catch::Contains("b [1, 3, 5, 6]") && Catch::Contains("concat axis 1"));
  CHECK_THROWS_WITH(layer->reshape({{2, 1, 5, 5}, {1, 1, 5, 5}}), Catch::Contains("[2, 1, 5, 5]"));
  auto along_h = make_test_layer(concat_spec({"a", "b"}, {{"axis", 2}}));
  CHECK(along_h->reshape({{1, 2, 5, 3}, {1, 2, 1, 3}}) == Shape{1, 2, 6, 3});
  CHECK_THROWS_WITH(along_h->reshape({{1, 2, 5, 3}, {1, 3, 5, 3}}), Catch::Contains("concat axis 2"));
  CHECK_THROWS_WITH(make_test_layer(concat_spec({"a", "b"}, {{"axis", 0}})),
                    Catch::Contains("test.axis") && Catch::Contains("batch"));
  CHECK_THROWS_WITH(make_test_layer(concat_spec({"a", "b"}, {{"axis", 4}})), Catch::Contains("test.axis"));
  CHECK_THROWS_WITH(make_test_layer(concat_spec({"a", "b"}, {{"axis", -4}})), Catch::Contains("test.axis"));
  CHECK_THROWS_WITH(make_test_layer(concat_spec({"a"})), Catch::Contains("test.inputs"));
  CHECK_THROWS_WITH(make_test_layer(concat_spec({"a", "b"}, {{"axes", 1}})), Catch::Contains("test.axes"));
}
