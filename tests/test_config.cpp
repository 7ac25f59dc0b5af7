// The run config (src/model/config.cpp): the settings that must agree.
#include <catch2/catch.hpp>

#include "fcn/core/error.hpp"
#include "fcn/model/config.hpp"

using namespace fcn;

namespace {

Config parse(const std::string& text) { return parse_config(json::parse(text), "run.json"); }

}  // namespace

TEST_CASE("config: model.ignore_label and data.ignore_label are one setting") {
  SECTION("neither given: both 255") {
    const Config c = parse(R"({"model": {"arch": "fcn32s"}, "data": {"root": "r"}})");
    CHECK(c.model.zoo.ignore_label == 255);
    CHECK(c.data.ignore_label == 255);
  }
  SECTION("model's fills in data's") {
    const Config c = parse(R"({"model": {"arch": "fcn32s", "ignore_label": 254}, "data": {"root": "r"}})");
    CHECK(c.data.ignore_label == 254);
    CHECK(c.model.zoo.ignore_label == 254);
  }
  SECTION("data's fills in model's (and so the loss layer's)") {
    const Config c = parse(R"({"model": {"arch": "fcn8s"}, "data": {"root": "r", "ignore_label": 254}})");
    CHECK(c.model.zoo.ignore_label == 254);
    bool found = false;
    const json spec = model_graph_spec(c.model);
    for (const json& layer : spec["layers"])
      if (layer["type"] == "softmax_loss") {
        CHECK(layer["ignore_label"] == 254);
        found = true;
      }
    CHECK(found);
  }
  SECTION("the same value twice is fine, two values are an error naming both") {
    CHECK_NOTHROW(parse(R"({"model": {"arch": "fcn32s", "ignore_label": 7}, "data": {"root": "r", "ignore_label": 7}})"));
    CHECK_THROWS_WITH(
        parse(R"({"model": {"arch": "fcn32s", "ignore_label": 254}, "data": {"root": "r", "ignore_label": 255}})"),
        Catch::Contains("model.ignore_label (254) and data.ignore_label (255) differ"));
  }
  SECTION("an explicit graph's loss layer must use data's ignore label") {
    const std::string graph = R"({"inputs": {"data": 3, "label": 1}, "layers": [
        {"name": "score", "type": "conv", "inputs": ["data"], "num_output": 2, "kernel": 1},
        {"name": "loss", "type": "softmax_loss", "inputs": ["score", "label"], "ignore_label": 254}]})";
    CHECK_NOTHROW(parse(R"({"model": {"graph": )" + graph + R"(}, "data": {"root": "r", "ignore_label": 254}})"));
    CHECK_THROWS_WITH(parse(R"({"model": {"graph": )" + graph + R"(}, "data": {"root": "r"}})"),
                      Catch::Contains("layer \"loss\" has ignore_label 254 but data.ignore_label is 255"));
  }
}
