#include <catch2/catch.hpp>

#include "fcn/model/config.hpp"
#include "fcn/core/error.hpp"
#include "fcn/core/spec_reader.hpp"

using namespace fcn;

TEST_CASE("spec reader validates types and ranges with the JSON path") {
  const json spec = json::parse(R"({"kernel": -1, "stride": [2, 3], "name": 5, "ratio": "x", "flag": 1})");
  SpecReader reader(spec, "layers[12]");
  CHECK_THROWS_WITH(reader.get_hw("kernel", {1, 1}, 1), "layers[12].kernel: expected positive integer, got -1");
  CHECK(reader.get_hw("stride", {1, 1}, 1) == std::array<int64_t, 2>{2, 3});
  CHECK_THROWS_WITH(reader.get_string("name"), Catch::Contains("layers[12].name: expected a string"));
  CHECK_THROWS_WITH(reader.get_number("ratio", 0.5), Catch::Contains("layers[12].ratio: expected a number"));
  CHECK_THROWS_WITH(reader.get_bool("flag", false), Catch::Contains("layers[12].flag: expected true or false"));
  CHECK(reader.get_int("absent", 7) == 7);
}

TEST_CASE("unknown keys are rejected with a did-you-mean") {
  const json spec = json::parse(R"({"num_output": 3, "strid": 2})");
  SpecReader reader(spec, "layers[0]");
  reader.get_int("num_output");
  reader.get_hw("stride", {1, 1}, 1);
  CHECK_THROWS_WITH(reader.finish(), "layers[0].strid: unknown key; did you mean \"stride\"?");
}

TEST_CASE("choices name the allowed values") {
  const json spec = json::parse(R"({"normalize": "vaild"})");
  SpecReader reader(spec, "layers[3]");
  CHECK_THROWS_WITH(reader.get_choice("normalize", {"valid", "batch", "none"}, "valid"),
                    Catch::Contains("did you mean \"valid\"?"));
}

TEST_CASE("JSON syntax errors give line and column") {
  CHECK_THROWS_WITH(parse_json_text("{\n  \"a\": 1,\n  \"b\": }\n", "cfg.json"), Catch::StartsWith("cfg.json:3:8:"));
  CHECK_THROWS_WITH(read_json_file("/nonexistent/cfg.json"), "/nonexistent/cfg.json: cannot open file");
}

TEST_CASE("overrides (--set) parse JSON values, else strings, creating objects") {
  json config = json::parse(R"({"solver": {"max_iter": 10}})");
  apply_overrides(config, {"solver.max_iter=500", "data.root=/tmp/x", "model.width=0.25", "solver.max_iter=7"});
  CHECK(config["solver"]["max_iter"] == 7);  // the last one wins
  CHECK(config["data"]["root"] == "/tmp/x");
  CHECK(config["model"]["width"] == 0.25);
  CHECK_THROWS_WITH(apply_overrides(config, {"novalue"}), Catch::Contains("expected key=value"));
  CHECK_THROWS_WITH(apply_overrides(config, {"solver.max_iter.x=1"}), Catch::Contains("is not an object"));
}

TEST_CASE("model config is validated key by key") {
  CHECK_THROWS_WITH(parse_model_config(json::parse(R"({"model": {"arch": "fcn8"}})"), "c.json"),
                    Catch::Contains("c.json: model.arch: unknown value \"fcn8\""));
  CHECK_THROWS_WITH(parse_model_config(json::parse(R"({"model": {"arch": "fcn8s", "num_clases": 3}})"), "c.json"),
                    "c.json: model.num_clases: unknown key; did you mean \"num_classes\"?");
  CHECK_THROWS_WITH(parse_model_config(json::parse(R"({"model": {"width": 0}})"), "c.json"),
                    Catch::Contains("model.width: must be >="));
  const ModelConfig model = parse_model_config(json::parse(R"({"model": {"arch": "fcn16s", "num_classes": 5}})"), "c");
  CHECK(model.zoo.arch == "fcn16s");
  CHECK(model.zoo.num_classes == 5);
}
