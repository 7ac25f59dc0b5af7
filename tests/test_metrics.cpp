#include <catch2/catch.hpp>

#include <cmath>

#include "data_fixtures.hpp"
#include "fcn/core/error.hpp"
#include "fcn/eval/metrics.hpp"

using namespace fcn;

namespace {

struct MetricsFixture {
  int64_t num_classes;
  ConfusionMatrix matrix;
  json fixture;
};

// Accumulates the fixture's images (written by tools/fixtures_data.py).
MetricsFixture load_fixture() {
  const json fixture = read_json_file(fcn::testing::data_fixture("metrics.json"));
  const int64_t n = fixture["num_classes"].get<int64_t>();
  ConfusionMatrix matrix(n);
  for (const auto& image : fixture["images"]) {
    const auto label = image["label"].get<std::vector<int32_t>>();
    const auto pred = image["pred"].get<std::vector<int32_t>>();
    matrix.add(label.data(), pred.data(), label.size());
  }
  return {n, matrix, fixture};
}

void check_optional(const std::optional<double>& got, const json& want) {
  if (want.is_null()) {
    CHECK_FALSE(got.has_value());
  } else {
    REQUIRE(got.has_value());
    CHECK(*got == Approx(want.get<double>()).epsilon(1e-12));
  }
}

}  // namespace

TEST_CASE("confusion matrix matches numpy's fast_hist", "[metrics]") {
  const MetricsFixture f = load_fixture();
  const auto hist = f.fixture["hist"].get<std::vector<int64_t>>();
  for (int64_t i = 0; i < f.num_classes; ++i)
    for (int64_t j = 0; j < f.num_classes; ++j) CHECK(f.matrix.count(i, j) == hist[i * f.num_classes + j]);
  CHECK(f.matrix.ignored_pixels() == f.fixture["ignored_pixels"].get<int64_t>());
  CHECK(f.matrix.ignored_pixels() > 0);
  CHECK(f.matrix.num_images() == 3);
}

TEST_CASE("scores follow the reference score.py formulas", "[metrics]") {
  const MetricsFixture f = load_fixture();
  const json& want = f.fixture["expected"];
  const Scores s = compute_scores(f.matrix, {"bg", "one"});
  CHECK(s.pixel_acc == Approx(want["pixel_acc"].get<double>()).epsilon(1e-12));
  CHECK(s.mean_acc == Approx(want["mean_acc"].get<double>()).epsilon(1e-12));
  CHECK(s.mean_iou == Approx(want["mean_iou"].get<double>()).epsilon(1e-12));
  CHECK(s.fwavacc == Approx(want["fwavacc"].get<double>()).epsilon(1e-12));
  REQUIRE(s.per_class.size() == 6);
  for (size_t c = 0; c < 6; ++c) {
    INFO("class " << c);
    check_optional(s.per_class[c].iou, want["iou"][c]);
    check_optional(s.per_class[c].acc, want["acc"][c]);
    CHECK(s.per_class[c].gt_pixels == want["gt_pixels"][c].get<int64_t>());
    CHECK(s.per_class[c].pred_pixels == want["pred_pixels"][c].get<int64_t>());
  }
  // the fixture has a class absent from both (4) and one only predicted (5)
  CHECK_FALSE(s.per_class[4].iou.has_value());
  CHECK(s.per_class[5].iou == 0.0);
  CHECK_FALSE(s.per_class[5].acc.has_value());
  CHECK(s.per_class[1].name == "one");
  CHECK(s.per_class[3].name == "class_3");
}

TEST_CASE("scores JSON has the documented schema with nulls", "[metrics]") {
  const MetricsFixture f = load_fixture();
  const json j = scores_to_json(compute_scores(f.matrix, {}));
  for (const char* key : {"pixel_acc", "mean_acc", "mean_iou", "fwavacc", "num_images", "ignored_pixels", "per_class"})
    CHECK(j.contains(key));
  CHECK(j.size() == 7);
  CHECK(j["num_images"] == 3);
  const json& absent = j["per_class"][4];
  CHECK(absent["id"] == 4);
  CHECK(absent["iou"].is_null());
  CHECK(absent["acc"].is_null());
  CHECK(absent["gt_pixels"] == 0);
  CHECK(j["per_class"][0].size() == 6);
  CHECK(j["mean_iou"].get<double>() == Approx(f.fixture["expected"]["mean_iou"].get<double>()));
}

TEST_CASE("element types and merging give the same matrix", "[metrics]") {
  const uint8_t label8[] = {0, 1, 255, 2, 2, 7};
  const uint8_t pred8[] = {0, 2, 1, 2, 0, 9};  // 9 sits on an ignored pixel (label 7)
  const float labelf[] = {0, 1, 255, 2, 2, 7};
  const float predf[] = {0, 2, 1, 2, 0, 9};
  ConfusionMatrix a(3), b(3), merged(3);
  a.add(label8, pred8, 6);
  b.add(labelf, predf, 6);
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 3; ++j) CHECK(a.count(i, j) == b.count(i, j));
  CHECK(a.ignored_pixels() == 2);
  merged.merge(a);
  merged.merge(b);
  CHECK(merged.count(2, 2) == 2);
  CHECK(merged.num_images() == 2);
  CHECK(merged.ignored_pixels() == 4);
}

TEST_CASE("a prediction that is not a class is an error", "[metrics]") {
  const uint8_t label[] = {0, 1};
  const uint8_t pred[] = {0, 3};
  ConfusionMatrix m(3);
  CHECK_THROWS_WITH(m.add(label, pred, 2), Catch::Contains("predicted value 3"));
}

TEST_CASE("nothing scored gives undefined (null) figures", "[metrics]") {
  const Scores s = compute_scores(ConfusionMatrix(2), {});
  CHECK(std::isnan(s.pixel_acc));
  CHECK(std::isnan(s.mean_iou));
  const json j = scores_to_json(s);
  CHECK(j["mean_iou"].is_null());
  CHECK(j["fwavacc"].is_null());
}

TEST_CASE("printed table names every class and the four figures", "[metrics]") {
  const MetricsFixture f = load_fixture();
  const std::string table = format_scores(compute_scores(f.matrix, {"background", "cat"}));
  CHECK_THAT(table, Catch::Contains("background"));
  CHECK_THAT(table, Catch::Contains("cat"));
  CHECK_THAT(table, Catch::Contains("mean IoU  44.39%"));
  CHECK_THAT(table, Catch::Contains("pixel acc  69.94%"));
}
