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

TEST_CASE("config: model.class_weights reach every loss layer, and bad values name the key") {
  SECTION("a list goes to the zoo's loss layer and round-trips through to_json") {
    const Config c = parse(R"({"model": {"arch": "fcn32s", "num_classes": 3, "class_weights": [0.5, 1, 4]}})");
    CHECK(c.model.resolved_class_weights == std::vector<double>{0.5, 1, 4});
    int losses = 0;
    const json spec = model_graph_spec(c.model);
    for (const json& layer : spec["layers"])
      if (layer["type"] == "softmax_loss") {
        CHECK(layer["class_weights"] == json({0.5, 1, 4}));
        ++losses;
      }
    CHECK(losses == 1);
    CHECK(parse_config(c.to_json(), "again").model.resolved_class_weights == c.model.resolved_class_weights);
  }
  SECTION("absent: no key in to_json (earlier runs keep their config hash) and no weights on the loss") {
    const Config c = parse(R"({"model": {"arch": "fcn32s"}})");
    CHECK_FALSE(c.model.to_json().contains("class_weights"));
    const json spec = model_graph_spec(c.model);
    for (const json& layer : spec["layers"]) CHECK_FALSE(layer.contains("class_weights"));
  }
  SECTION("median_frequency is kept as given; training fills in the weights") {
    Config c = parse(R"({"model": {"arch": "fcn8s", "num_classes": 2, "class_weights": "median_frequency"}})");
    CHECK(c.model.median_frequency());
    CHECK(c.model.resolved_class_weights.empty());
    CHECK(c.model.to_json()["class_weights"] == "median_frequency");
    c.model.resolved_class_weights = {1.0, 9.0};
    const json spec = model_graph_spec(c.model);
    for (const json& layer : spec["layers"])
      if (layer["type"] == "softmax_loss") CHECK(layer["class_weights"] == json({1.0, 9.0}));
  }
  SECTION("explicit graphs: filled in where the loss has none, an error where it has its own") {
    const std::string graph = R"({"inputs": {"data": 3, "label": 1}, "layers": [
        {"name": "score", "type": "conv", "inputs": ["data"], "num_output": 2, "kernel_size": 1},
        {"name": "loss", "type": "softmax_loss", "inputs": ["score", "label"]LOSS_EXTRA}]})";
    auto with = [&](const std::string& extra) {
      std::string g = graph;
      g.replace(g.find("LOSS_EXTRA"), 10, extra);
      return R"({"model": {"num_classes": 2, "class_weights": [1, 3], "graph": )" + g + "}}";
    };
    CHECK(model_graph_spec(parse(with("")).model)["layers"][1]["class_weights"] == json({1, 3}));
    CHECK_THROWS_WITH(model_graph_spec(parse(with(R"(, "class_weights": [2, 2])")).model),
                      Catch::Contains("\"loss\"") && Catch::Contains("one place"));
  }
  SECTION("errors") {
    CHECK_THROWS_WITH(parse(R"({"model": {"arch": "fcn32s", "num_classes": 3, "class_weights": [1, 2]}})"),
                      Catch::Contains("model.class_weights") && Catch::Contains("num_classes is 3"));
    CHECK_THROWS_WITH(parse(R"({"model": {"arch": "fcn32s", "num_classes": 2, "class_weights": [1, -2]}})"),
                      Catch::Contains("model.class_weights[1]"));
    CHECK_THROWS_WITH(parse(R"({"model": {"arch": "fcn32s", "num_classes": 2, "class_weights": [0, 0]}})"),
                      Catch::Contains("every weight is 0"));
    CHECK_THROWS_WITH(parse(R"({"model": {"arch": "fcn32s", "class_weights": "median"}})"),
                      Catch::Contains("model.class_weights") && Catch::Contains("median_frequency"));
    CHECK_THROWS_WITH(parse(R"({"model": {"arch": "fcn32s", "class_weight": [1]}})"),
                      Catch::Contains("class_weights"));
  }
}

TEST_CASE("config: the data section takes one form: data.root or data.train and data.val") {
  const std::string model = R"({"model": {"arch": "fcn32s"}, "data": )";
  const std::string sources = R"("train": {"format": "sbd", "root": "sbd"}, "val": {"root": "voc", "split": "seg11valid"})";
  const auto load = [&](const std::string& data, const std::vector<std::string>& overrides = {}) {
    json config = json::parse(model + data + "}");
    apply_overrides(config, overrides);
    return parse_config(config, "run.json");
  };

  SECTION("each form alone") {
    const Config single = load(R"({"root": "r", "format": "sbd", "train_split": "t", "val_split": "v"})");
    CHECK(single.data.root == "r");
    CHECK(single.data.train.empty());
    const Config split = load("{" + sources + "}");
    CHECK(split.data.train == std::vector<DataSource>{{"sbd", "sbd", "train"}});
    CHECK(split.data.val == std::vector<DataSource>{{"voc", "voc", "seg11valid"}});
    // [] is no sources: the resolved single-root config writes it that way
    CHECK(load(R"({"root": "r", "train": [], "val": []})").data.root == "r");
  }

  SECTION("a run's config.json from an earlier fcn (the single-root keys at their defaults beside sources) loads") {
    const DataConfig defaults;
    const Config old_run = load(R"({"root": "", "format": ")" + defaults.format + R"(", "train_split": ")" +
                                defaults.train_split + R"(", "val_split": ")" + defaults.val_split + R"(", )" +
                                sources + "}");
    CHECK(old_run.data.train == std::vector<DataSource>{{"sbd", "sbd", "train"}});
    // a root that means something is still refused
    CHECK_THROWS_WITH(load(R"({"root": "x", )" + sources + "}"), Catch::Contains("data.root"));
  }

  SECTION("a single-root key with sources is an error naming both keys and the --set to use") {
    // the README's --set on a config with sources, and a file that mixes the forms itself
    for (const auto& [data, overrides] : std::vector<std::pair<std::string, std::vector<std::string>>>{
             {"{" + sources + "}", {"data.root=/data/voc"}}, {R"({"root": "/data/voc", )" + sources + "}", {}}})
      CHECK_THROWS_WITH(load(data, overrides),
                        Catch::StartsWith("run.json: data.root: not with data.train and data.val") &&
                            Catch::EndsWith("--set data.train.root=DIR --set data.val.root=DIR"));
    CHECK_THROWS_WITH(load("{" + sources + R"(, "train_split": "x"})"),
                      Catch::StartsWith("run.json: data.train_split: not with data.train and data.val") &&
                          Catch::EndsWith("--set data.train.split=NAME"));
    CHECK_THROWS_WITH(load("{" + sources + R"(, "val_split": "x"})"), Catch::EndsWith("--set data.val.split=NAME"));
    CHECK_THROWS_WITH(load("{" + sources + "}", {"data.format=sbd"}),
                      Catch::Contains("data.format: not with") &&
                          Catch::EndsWith("--set data.train.format=FORMAT --set data.val.format=FORMAT"));
    // a list of sources has no per-item --set path: it is set whole
    CHECK_THROWS_WITH(load(R"({"root": "r", "train": [{"root": "a"}, {"root": "b"}], "val": {"root": "v"}})"),
                      Catch::Contains("--set 'data.train=[{\"root\": \"DIR\", ...}, ...]' (a list: set it whole) "
                                      "--set data.val.root=DIR"));
  }

  SECTION("sources on a single-root config, or one split's alone, are an error") {
    CHECK_THROWS_WITH(load(R"({"root": "r"})", {"data.train.root=/data/sbd"}),
                      Catch::StartsWith("run.json: data.val: missing: data.train and data.val come together") &&
                          Catch::Contains("data.root for one dataset holding both splits (--set data.root=DIR)"));
    CHECK_THROWS_WITH(load(R"({"val": {"root": "v"}})"), Catch::StartsWith("run.json: data.train: missing"));
    CHECK_THROWS_WITH(load(R"({"root": "r"})", {"data.train.root=/data/sbd", "data.val.root=/data/voc"}),
                      Catch::StartsWith("run.json: data.root: not with data.train and data.val"));
    CHECK_THROWS_WITH(load("{}"), Catch::StartsWith("run.json: data.root: missing required key (or data.train and data.val"));
  }

  SECTION("the resolved config keeps its form and reads back") {
    for (const std::string& data : {std::string(R"({"root": "r", "val_split": "v"})"), "{" + sources + "}"}) {
      const Config config = load(data);
      const json resolved = config.to_json();
      CHECK(resolved["data"].contains("root") == config.data.train.empty());
      CHECK(resolved["data"].contains("train") == !config.data.train.empty());
      const Config again = parse_config(resolved, "config.json");
      CHECK(again.to_json() == resolved);
    }
  }
}

TEST_CASE("config: the ResNet model keys round-trip, and combinations no net has name their key") {
  const auto model_of = [](const std::string& model) {
    return parse_model_config(json::parse("{\"model\": " + model + "}"), "run.json");
  };
  const ModelConfig resnet = model_of(R"({"arch": "fcn8s", "backbone": "resnet34", "batch_norm": "frozen"})");
  CHECK(model_backbone(resnet.zoo) == "resnet34");
  CHECK(model_dropout(resnet.zoo) == 0.0);
  const json written = resnet.to_json();
  CHECK(written["backbone"] == "resnet34");
  CHECK(written["batch_norm"] == "frozen");
  CHECK_FALSE(written.contains("aux_weight"));
  CHECK(parse_model_config({{"model", written}}, "config.json").to_json() == written);

  const ModelConfig tv = model_of(R"({"arch": "fcn_resnet101", "aux_weight": 0.25})");
  CHECK(model_backbone(tv.zoo) == "resnet101");
  CHECK(model_dropout(tv.zoo) == Approx(0.1));
  CHECK(tv.to_json()["aux_weight"] == 0.25);
  CHECK(parse_model_config({{"model", tv.to_json()}}, "config.json").to_json() == tv.to_json());
  CHECK(model_aux_weight(model_of(R"({"arch": "fcn_resnet50"})").zoo) == 0.5);

  // a VGG16 config writes none of the ResNet keys (its hash stays what it was)
  const json vgg = model_of(R"({"arch": "fcn16s"})").to_json();
  for (const char* key : {"backbone", "batch_norm", "aux_weight"}) CHECK_FALSE(vgg.contains(key));
  CHECK(vgg["dropout"] == 0.5);

  for (const auto& [model, key] : std::vector<std::pair<std::string, std::string>>{
           {R"({"arch": "fcn8s-atonce", "backbone": "resnet50"})", "model.backbone"},
           {R"({"arch": "fcn_resnet50", "backbone": "resnet18"})", "model.backbone"},
           {R"({"arch": "fcn8s", "backbone": "resnet152"})", "model.backbone"},
           {R"({"arch": "fcn32s", "backbone": "resnet18", "dropout": 0.2})", "model.dropout"},
           {R"({"arch": "fcn8s", "aux_weight": 0.5})", "model.aux_weight"},
           {R"({"arch": "fcn8s", "batch_norm": "frozen"})", "model.batch_norm"},
           {R"({"arch": "fcn_resnet50", "batch_norm": "eval"})", "model.batch_norm"}}) {
    INFO(model);
    CHECK_THROWS_WITH(model_of(model), Catch::Contains(key));
  }
}

TEST_CASE("config: model.precision is fp32 unless set, and written only when bf16") {
  const Config plain = parse(R"({"model": {"arch": "fcn32s"}})");
  CHECK(plain.model.precision == Precision::fp32);
  // a config without the key keeps the hash it had before the key existed
  CHECK_FALSE(plain.to_json()["model"].contains("precision"));
  CHECK_FALSE(parse(R"({"model": {"arch": "fcn32s", "precision": "fp32"}})").to_json()["model"].contains("precision"));

  const Config bf16 = parse(R"({"model": {"arch": "fcn32s", "precision": "bf16"}})");
  CHECK(bf16.model.precision == Precision::bf16);
  CHECK(bf16.to_json()["model"]["precision"] == "bf16");
  CHECK(parse_config(bf16.to_json(), "config.json").model.precision == Precision::bf16);

  json overridden = json::parse(R"({"model": {"arch": "fcn32s"}})");
  apply_overrides(overridden, {"model.precision=bf16"});
  CHECK(parse_config(overridden, "run.json").model.precision == Precision::bf16);

  for (const char* bad : {R"("fp16")", "16", R"("BF16")"}) {
    INFO(bad);
    try {
      parse(std::string(R"({"model": {"arch": "fcn32s", "precision": )") + bad + "}}");
      FAIL("accepted");
    } catch (const Error& e) {
      const std::string message = e.what();
      CHECK(message.find("model.precision") != std::string::npos);
      CHECK(message.find('\n') == std::string::npos);
    }
  }
}
