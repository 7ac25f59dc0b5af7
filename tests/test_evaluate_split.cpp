// evaluate_split: the scoring loop behind `fcn eval` and validation, checked
// with score functions whose confusion matrix is known from the labels.
#include <catch2/catch.hpp>

#include <vector>

#include "data_fixtures.hpp"
#include "fcn/core/error.hpp"
#include "fcn/data/synthetic.hpp"
#include "fcn/eval/evaluate_split.hpp"
#include "fcn/eval/inference.hpp"

using namespace fcn;
using fcn::testing::ScratchDir;

namespace {

constexpr int64_t kClasses = 4;

DataConfig synthetic_data(const ScratchDir& dir) {
  SyntheticSpec spec;
  spec.out = dir.path();
  spec.train = 2;
  spec.val = 4;
  spec.height = 40;
  spec.width = 56;
  spec.classes = kClasses;
  spec.seed = 9;
  write_synthetic_dataset(spec);
  DataConfig data;
  data.root = dir.path();
  data.image_dir = "JPEGImages";
  data.label_dir = "SegmentationClass";
  return data;
}

// Scores [1, K, H, W] that are 1 at `label_of(y, x)` and 0 elsewhere.
Tensor one_hot(const Image& labels, int64_t classes, int64_t constant_class) {
  Tensor scores({1, classes, labels.height, labels.width});
  const int64_t plane = static_cast<int64_t>(labels.height) * labels.width;
  for (int64_t i = 0; i < plane; ++i) {
    const int64_t label = constant_class >= 0 ? constant_class : labels.pixels[i];
    scores[(label < classes ? label : 0) * plane + i] = 1.f;
  }
  return scores;
}

}  // namespace

TEST_CASE("evaluate_split: known predictions give the known confusion matrix", "[evaluate_split]") {
  ScratchDir dir("evaluate_split");
  const DataConfig data = synthetic_data(dir);
  const Dataset dataset(data, "val", kClasses);
  REQUIRE(dataset.size() == 4);
  // the expected matrix, from the label files themselves
  std::vector<int64_t> truth_pixels(kClasses, 0);
  int64_t void_pixels = 0;
  std::vector<Image> truths;
  for (size_t i = 0; i < dataset.size(); ++i) {
    truths.push_back(dataset.load_label(i));
    for (uint8_t label : truths.back().pixels) (label < kClasses ? truth_pixels[label] : void_pixels) += 1;
  }
  REQUIRE(void_pixels + truth_pixels[0] > 0);

  SECTION("the ground truth itself: a diagonal matrix, mean IoU 1") {
    size_t next = 0;
    Tensor scores;
    const ConfusionMatrix matrix = evaluate_split(dataset, data, kClasses, [&](const Tensor& image) {
      REQUIRE(image.h() == truths[next].height);
      scores = one_hot(truths[next++], kClasses, -1);
      return argmax_mask(scores);
    });
    CHECK(next == 4);
    CHECK(matrix.num_images() == 4);
    CHECK(matrix.ignored_pixels() == void_pixels);
    for (int64_t c = 0; c < kClasses; ++c) CHECK(matrix.count(c, c) == truth_pixels[c]);
    CHECK(compute_scores(matrix, {}).mean_iou == Approx(1.0));
  }
  SECTION("always class 2: column 2 holds every scored pixel") {
    Tensor scores;
    size_t next = 0;
    const ConfusionMatrix matrix = evaluate_split(dataset, data, kClasses, [&](const Tensor&) {
      scores = one_hot(truths[next++], kClasses, 2);
      return argmax_mask(scores);
    });
    for (int64_t c = 0; c < kClasses; ++c) {
      CHECK(matrix.count(c, 2) == truth_pixels[c]);
      CHECK(matrix.count(c, c == 0 ? 1 : 0) == 0);
    }
  }
  SECTION("a range scores only its images, in order, and reports each") {
    Tensor scores;
    size_t next = 1;
    std::vector<std::string> seen;
    const ConfusionMatrix matrix = evaluate_split(
        dataset, data, kClasses,
        [&](const Tensor&) {
          scores = one_hot(truths[next++], kClasses, -1);
          return argmax_mask(scores);
        },
        1, 3,
        [&](int64_t position, const Sample& sample, const Image& truth, const Image& prediction) {
          CHECK(position == static_cast<int64_t>(seen.size()));
          CHECK(truth.pixels == truths[1 + seen.size()].pixels);
          CHECK(prediction.height == truth.height);
          seen.push_back(sample.id);
        });
    CHECK(matrix.num_images() == 2);
    CHECK(seen == std::vector<std::string>{dataset.id(1), dataset.id(2)});
  }
  SECTION("a range outside the split is an error") {
    const auto never = [](const Tensor&) { return Image(1, 1, 1); };
    CHECK_THROWS_AS(evaluate_split(dataset, data, kClasses, never, 2, 5), Error);
    CHECK_THROWS_AS(evaluate_split(dataset, data, kClasses, never, 3, 2), Error);
  }
}
