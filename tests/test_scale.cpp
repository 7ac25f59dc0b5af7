#include <catch2/catch.hpp>

#include "gradcheck.hpp"
#include "layer_parity.hpp"

using namespace fcn;
using namespace fcn::testing;

namespace {

json scale_spec(json options) {
  options["name"] = "s";
  options["type"] = "scale";
  options["inputs"] = {"x"};
  return options;
}

}  // namespace

TEST_CASE("scale matches PyTorch, fixed and learnable") { check_parity("scale_parity.safetensors"); }

TEST_CASE("scale gradient check, fixed and learnable") {
  for (const json& options : {json{{"value", 0.01}}, json{{"value", -2.0}, {"learnable", true}}}) {
    INFO(options.dump());
    auto layer = make_test_layer(scale_spec(options));
    std::mt19937_64 rng(12);
    std::vector<Tensor> inputs{random_tensor({2, 3, 5, 7}, rng)};
    check_gradients(*layer, inputs);
  }
}

TEST_CASE("scale parameter: one learnable weight initialised to value, lr/decay multipliers") {
  auto fixed = make_test_layer(scale_spec({{"value", 0.0001}}));
  CHECK(fixed->params().empty());
  CHECK(fixed->in_place_input() == 0);
  CHECK_THROWS_WITH(make_test_layer(scale_spec({{"value", 2}, {"lr_mult", 0}})), Catch::Contains("test.lr_mult"));

  auto learned = make_test_layer(scale_spec({{"value", 0.25}, {"learnable", true}}));
  REQUIRE(learned->params().size() == 1);
  const Param& w = *learned->params()[0];
  CHECK(w.name == "s.weight");
  CHECK(w.data.shape() == Shape{1});
  CHECK(w.data[0] == 0.25f);
  CHECK(w.lr_mult == 1.f);
  CHECK(w.decay_mult == 1.f);
  CHECK(learned->backward_needs_inputs());

  auto frozen = make_test_layer(scale_spec({{"value", 3}, {"learnable", true}, {"lr_mult", 0}}));
  CHECK(frozen->params()[0]->frozen());
  std::mt19937_64 rng(1);
  std::vector<Tensor> inputs{random_tensor({1, 2, 3, 3}, rng)};
  check_gradients(*frozen, inputs);  // still passes gradients to x, none to the frozen weight
}
