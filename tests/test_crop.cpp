#include <catch2/catch.hpp>

#include "fcn/graph/graph.hpp"
#include "fcn/layers/crop.hpp"
#include "gradcheck.hpp"
#include "layer_parity.hpp"

using namespace fcn;
using namespace fcn::testing;

namespace {

json crop_spec(json options) {
  options["name"] = "crop";
  options["type"] = "crop";
  options["inputs"] = {"x", "ref"};
  return options;
}

json pool(const std::string& name, const std::string& input, int kernel, int stride) {
  return {{"name", name}, {"type", "max_pool"}, {"inputs", {input}}, {"kernel", kernel}, {"stride", stride}};
}

json crop(const std::string& name, const std::string& x, const std::string& ref, json options = json::object()) {
  options["name"] = name;
  options["type"] = "crop";
  options["inputs"] = {x, ref};
  return options;
}

json graph_spec(json layers) { return {{"inputs", {{"data", {{"channels", 1}}}}}, {"layers", layers}}; }

// Every element of `out` equals x at the window offset.
void check_window(const Tensor& x, const Tensor& out, int64_t oh, int64_t ow) {
  for (int64_t c = 0; c < out.c(); ++c)
    for (int64_t h = 0; h < out.h(); ++h)
      for (int64_t w = 0; w < out.w(); ++w)
        REQUIRE(out[(c * out.h() + h) * out.w() + w] == x[(c * x.h() + h + oh) * x.w() + w + ow]);
}

}  // namespace

TEST_CASE("crop matches slicing in PyTorch (int, [h, w], axis 3 and axis 1 offsets)") {
  check_parity("crop_parity.safetensors");
}

TEST_CASE("crop gradient check: ref gets no gradient") {
  struct Row {
    json options;
    Shape x, ref;
  };
  const std::vector<Row> rows = {
      {{{"offset", {2, 1}}}, {1, 2, 7, 9}, {1, 2, 3, 5}},
      {{{"offset", 0}}, {2, 1, 5, 5}, {2, 1, 5, 3}},
      {{{"axis", 3}, {"offset", 3}}, {1, 3, 5, 9}, {1, 3, 1, 5}},
  };
  for (const Row& row : rows) {
    INFO(row.options.dump());
    auto layer = make_test_layer(crop_spec(row.options));
    std::mt19937_64 rng(3);
    std::vector<Tensor> inputs{random_tensor(row.x, rng), random_tensor(row.ref, rng)};
    GradCheckOptions options;
    options.skip_inputs = {1};
    check_gradients(*layer, inputs, options);

    Tensor out(layer->reshape({row.x, row.ref})), dx(row.x), dref(row.ref);
    dref.fill(3.f);
    layer->backward({&inputs[0], &inputs[1]}, out, out, {&dx, &dref});
    for (int64_t i = 0; i < dref.numel(); ++i) REQUIRE(dref[i] == 3.f);
  }
}

TEST_CASE("crop coord_map shifts by -offset") {
  auto layer = make_test_layer(crop_spec({{"offset", {2, 5}}}));
  layer->reshape({{1, 1, 9, 9}, {1, 1, 3, 3}});
  const CoordMap map = layer->coord_map();
  CHECK(map.scale == std::array<double, 2>{1.0, 1.0});
  CHECK(map.shift == std::array<double, 2>{-2.0, -5.0});
}

TEST_CASE("crop offset \"auto\" follows the graph's coordinate maps") {
  // data 9x11 -> a = max_pool k2 s2: blob = 0.5*p + (0 - 0.5)/2 = 0.5*p - 0.25, 5x6 (ceil)
  //           -> b = max_pool(a) k3 s1: b = a + (0 - 1)/1 = 0.5*p - 1.25, 3x4
  // crop(a, b): offset = shift_a - shift_b = -0.25 - (-1.25) = 1 on both axes
  // crop(data, p3) with p3 = max_pool(data) k3 s1 (shift -1): offset 0 - (-1) = 1
  Graph graph(graph_spec({pool("a", "data", 2, 2), pool("b", "a", 3, 1), crop("ab", "a", "b"),
                          crop("ab_w", "a", "b", {{"axis", 3}}), pool("p3", "data", 3, 1),
                          crop("data_p3", "data", "p3", {{"offset", "auto"}})}));
  graph.reshape({{"data", {1, 1, 9, 11}}});
  std::mt19937_64 rng(8);
  graph.blob("data") = random_tensor({1, 1, 9, 11}, rng);
  graph.forward(Mode::test);

  REQUIRE(graph.blob_shape("a") == Shape{1, 1, 5, 6});
  REQUIRE(graph.blob_shape("ab") == Shape{1, 1, 3, 4});
  CHECK(dynamic_cast<CropLayer*>(graph.find_layer("ab"))->offsets() == std::array<int64_t, 4>{0, 0, 1, 1});
  check_window(graph.blob("a"), graph.blob("ab"), 1, 1);
  // the cropped blob lands on ref's coordinates
  CHECK(graph.blob_coord_map("ab").shift[0] == Approx(graph.blob_coord_map("b").shift[0]));
  CHECK(graph.blob_coord_map("ab").shift[1] == Approx(graph.blob_coord_map("b").shift[1]));

  // axis 3: only w is cropped, h keeps x's size
  REQUIRE(graph.blob_shape("ab_w") == Shape{1, 1, 5, 4});
  check_window(graph.blob("a"), graph.blob("ab_w"), 0, 1);

  REQUIRE(graph.blob_shape("data_p3") == Shape{1, 1, 7, 9});
  check_window(graph.blob("data"), graph.blob("data_p3"), 1, 1);
}

TEST_CASE("crop offset \"auto\" through conv, pool and deconv (the FCN pattern in miniature)") {
  // data -> conv k3 pad 100: blob = p + (100 - 1) = p + 99
  //      -> max_pool k2 s2: 0.5*(p + 99) + (0 - 0.5)/2 = 0.5*p + 49.25
  //      -> deconv k4 s2 (a = 2, b = (4-1)/2 - 0): 2*(0.5*p + 49.25) + 1.5 = p + 100
  // crop(up, data): offset = 100 - 0 = 100
  const json conv = {{"name", "conv"},  {"type", "conv"}, {"inputs", {"data"}},
                     {"num_output", 1}, {"kernel", 3},    {"pad", 100}};
  const json deconv = {{"name", "up"}, {"type", "deconv"}, {"inputs", {"pool"}}, {"num_output", 1},
                       {"kernel", 4},  {"stride", 2},      {"bias", false},      {"weight_init", "bilinear"}};
  Graph graph(graph_spec({conv, pool("pool", "conv", 2, 2), deconv, crop("score", "up", "data")}));
  graph.reshape({{"data", {1, 1, 6, 7}}});
  CHECK(dynamic_cast<CropLayer*>(graph.find_layer("score"))->offsets() == std::array<int64_t, 4>{0, 0, 100, 100});
  CHECK(graph.blob_shape("score") == Shape{1, 1, 6, 7});
  CHECK(graph.blob_coord_map("score").shift[0] == Approx(0.0).margin(1e-9));
}

TEST_CASE("crop offset \"auto\" errors: non-integer, negative, different scales, no graph") {
  // a = k2 s2: 0.5*p - 0.25; q = k4 s2: 0.5*p + (0 - 1.5)/2 = 0.5*p - 0.75; offset 0.5
  const json a = pool("a", "data", 2, 2), q = pool("q", "data", 4, 2), p3 = pool("p3", "data", 3, 1);
  const std::map<std::string, Shape> input{{"data", {1, 1, 9, 9}}};
  Graph fractional(graph_spec({a, q, crop("c", "a", "q")}));
  CHECK_THROWS_WITH(fractional.reshape(input),
                    Catch::Contains("'c' (crop)") && Catch::Contains("0.5") && Catch::Contains("non-negative integer"));
  // p3 = k3 s1: p - 1, so cropping it against data needs offset -1
  Graph negative(graph_spec({p3, crop("c", "p3", "data")}));
  CHECK_THROWS_WITH(negative.reshape(input), Catch::Contains("'c' (crop)") && Catch::Contains("-1"));
  Graph scales(graph_spec({a, crop("c", "data", "a")}));
  CHECK_THROWS_WITH(scales.reshape(input), Catch::Contains("'c' (crop)") && Catch::Contains("different scales"));

  auto layer = make_test_layer(crop_spec(json::object()));
  CHECK_THROWS_WITH(layer->reshape({{1, 1, 9, 9}, {1, 1, 5, 5}}), Catch::Contains("'crop' (crop)"));
}

TEST_CASE("crop errors: window outside x, bad offsets") {
  auto layer = make_test_layer(crop_spec({{"offset", 2}}));
  CHECK_THROWS_WITH(layer->reshape({{1, 2, 5, 5}, {1, 2, 4, 3}}),
                    Catch::Contains("'crop' (crop)") && Catch::Contains("offset [2, 2]") &&
                        Catch::Contains("[1, 2, 5, 5]") && Catch::Contains("[1, 2, 4, 3]"));
  auto bigger_ref = make_test_layer(crop_spec({{"offset", 0}}));
  CHECK_THROWS_WITH(bigger_ref->reshape({{1, 2, 5, 5}, {1, 2, 6, 5}}), Catch::Contains("exceeds x"));

  CHECK_THROWS_WITH(make_test_layer(crop_spec({{"offset", {1, 2, 3}}})), Catch::Contains("test.offset"));
  CHECK_THROWS_WITH(make_test_layer(crop_spec({{"offset", "automatic"}})), Catch::Contains("test.offset"));
  CHECK_THROWS_WITH(make_test_layer(crop_spec({{"offset", -1}})), Catch::Contains("non-negative"));
  CHECK_THROWS_WITH(make_test_layer(crop_spec({{"axis", 4}})), Catch::Contains("test.axis"));
  CHECK_THROWS_WITH(make_test_layer(crop_spec({{"axis", 1}})), Catch::Contains("test.axis"));
}
