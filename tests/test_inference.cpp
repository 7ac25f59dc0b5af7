// Inference helpers: the score blob, test-mode scores at the image's size,
// argmax masks.
#include <catch2/catch.hpp>

#include "fcn/core/error.hpp"
#include "fcn/eval/inference.hpp"

using namespace fcn;

namespace {

// conv 3x3 (3 -> 2 classes, size kept) then a loss.
json net_spec(int64_t pad) {
  return {{"inputs", {{"data", {{"channels", 3}}}, {"label", {{"channels", 1}}}}},
          {"layers",
           {{{"name", "score"}, {"type", "conv"}, {"inputs", {"data"}}, {"num_output", 2}, {"kernel", 3}, {"pad", pad}},
            {{"name", "loss"}, {"type", "softmax_loss"}, {"inputs", {"score", "label"}}}}}};
}

}  // namespace

TEST_CASE("argmax_mask takes the best class per pixel, ties to the lowest id") {
  Tensor scores({1, 3, 1, 4});
  const float values[] = {1, 5, 0, 2,   // class 0
                          3, 5, 0, 1,   // class 1
                          2, 4, 1, 2};  // class 2
  std::copy(std::begin(values), std::end(values), scores.data());
  const Image mask = argmax_mask(scores);
  REQUIRE(mask.channels == 1);
  REQUIRE(mask.height == 1);
  REQUIRE(mask.width == 4);
  CHECK(std::vector<uint8_t>(mask.pixels.begin(), mask.pixels.end()) == std::vector<uint8_t>{1, 0, 2, 0});
}

TEST_CASE("infer_scores runs in test mode at the image's size") {
  Graph graph(net_spec(1));  // pad 1 keeps the size
  CHECK(score_blob_name(graph) == "score");
  Tensor image({1, 3, 5, 7});
  image.fill(1.f);
  graph.reshape({{"data", image.shape()}, {"label", {1, 1, 5, 7}}});
  graph.init_params(3);
  const Tensor& scores = infer_scores(graph, image);
  CHECK(scores.shape() == Shape{1, 2, 5, 7});
  const Image mask = predict_mask(graph, image);
  CHECK(mask.height == 5);
  CHECK(mask.width == 7);
  // a second size reshapes the graph
  Tensor other({1, 3, 4, 4});
  CHECK(infer_scores(graph, other).shape() == Shape{1, 2, 4, 4});
}

TEST_CASE("a score map of another size than the image is an error") {
  // no loss layer: the last layer's output is the score blob
  const json spec = {{"inputs", {{"data", {{"channels", 3}}}}},
                     {"layers", {{{"name", "conv"}, {"type", "conv"}, {"inputs", {"data"}}, {"num_output", 2}, {"kernel", 3}}}}};
  Graph graph(spec);
  CHECK(score_blob_name(graph) == "conv");
  Tensor image({1, 3, 6, 6});
  graph.reshape({{"data", image.shape()}});
  graph.init_params(3);
  CHECK_THROWS_WITH(infer_scores(graph, image),
                    Catch::Contains("score blob 'conv' is [1, 2, 4, 4]") && Catch::Contains("6x6"));
  CHECK_THROWS_WITH(infer_scores(graph, Tensor({2, 3, 6, 6})), Catch::Contains("one image"));
}
