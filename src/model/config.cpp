// A run's configuration, every section: model, data, solver, init, the
// --set overrides and the whole file's load and validation.
#include "fcn/model/config.hpp"

#include <algorithm>
#include <cmath>
#include <map>

#include "fcn/core/error.hpp"
#include "fcn/core/layer.hpp"

namespace fcn {

namespace {

// model.class_weights: "median_frequency" or one finite weight >= 0 per
// class, not all 0.
void read_class_weights(SpecReader& reader, ModelConfig& model) {
  reader.accept("class_weights");
  if (!reader.has("class_weights")) return;
  const json& value = reader.raw("class_weights");
  if (value.is_string()) {
    if (value.get<std::string>() != "median_frequency")
      reader.fail("class_weights", "expected a list of per-class weights or \"median_frequency\", got \"" +
                                       value.get<std::string>() + "\"");
    model.class_weights = value;
    return;
  }
  const std::vector<double> weights = reader.get_number_list("class_weights", {});
  if (static_cast<int64_t>(weights.size()) != model.zoo.num_classes)
    reader.fail("class_weights", "has " + std::to_string(weights.size()) + " weights but num_classes is " +
                                     std::to_string(model.zoo.num_classes) + "; give one weight per class");
  bool any_positive = false;
  for (size_t c = 0; c < weights.size(); ++c) {
    if (!std::isfinite(weights[c]) || weights[c] < 0)
      reader.fail("class_weights[" + std::to_string(c) + "]", "a class weight must be a finite number >= 0");
    any_positive = any_positive || weights[c] > 0;
  }
  if (!any_positive) reader.fail("class_weights", "every weight is 0: nothing would be learned");
  model.class_weights = weights;
  model.resolved_class_weights = weights;
}

ModelConfig read_model(SpecReader reader) {
  ModelConfig model;
  if (reader.has("graph")) {
    model.graph = reader.raw("graph");
    if (!model.graph.is_object()) reader.fail("graph", "expected a graph object with \"inputs\" and \"layers\"");
    if (reader.has("arch")) reader.fail("arch", "give either \"arch\" or \"graph\", not both");
  } else {
    ModelSpec& zoo = model.zoo;
    zoo.arch = reader.get_choice("arch", model_archs(), zoo.arch);
  }
  ModelSpec& zoo = model.zoo;
  zoo.num_classes = reader.get_int("num_classes", zoo.num_classes, 1, 255);
  zoo.width = reader.get_number("width", zoo.width, 1e-3, 16.0);
  zoo.normalize = reader.get_choice("normalize", {"valid", "batch", "none"}, zoo.normalize);
  zoo.ignore_label = reader.get_int("ignore_label", zoo.ignore_label, -1);
  if (reader.has("backbone")) zoo.backbone = reader.get_choice("backbone", model_backbones(), "vgg16");
  if (reader.has("dropout")) zoo.dropout = reader.get_number("dropout", 0.0, 0.0, 0.99);
  if (reader.has("aux_weight")) zoo.aux_weight = reader.get_number("aux_weight", 0.0, 0.0);
  zoo.batch_norm = reader.get_choice("batch_norm", {"train", "frozen"}, zoo.batch_norm);
  const std::vector<std::string> inits = {"gaussian", "xavier", "msra", "zero", "constant"};
  zoo.weight_init = read_init(reader, "weight_init", zoo.weight_init, inits);
  zoo.score_init = read_init(reader, "score_init", zoo.score_init, inits);
  read_class_weights(reader, model);
  model.precision = parse_precision(reader.get_string("precision", "fp32"), reader.key_path("precision"));
  reader.finish();
  if (model.graph.is_null()) check_model_spec(zoo);
  return model;
}

SolverConfig read_solver(SpecReader reader) {
  SolverConfig s;
  s.base_lr = reader.get_number("base_lr", s.base_lr, 0.0);
  s.lr_policy = reader.get_choice("lr_policy", {"fixed", "step", "multistep", "poly", "inv"}, s.lr_policy);
  s.gamma = reader.get_number("gamma", s.gamma, 0.0);
  s.stepsize = reader.get_int("stepsize", s.stepsize, 0);
  for (double v : reader.get_number_list("stepvalues", {})) {
    if (v < 0 || v != static_cast<double>(static_cast<int64_t>(v)))
      reader.fail("stepvalues", "expected non-negative integers");
    s.stepvalues.push_back(static_cast<int64_t>(v));
  }
  s.power = reader.get_number("power", s.power, 0.0);
  s.momentum = reader.get_number("momentum", s.momentum, 0.0, 1.0);
  s.weight_decay = reader.get_number("weight_decay", s.weight_decay, 0.0);
  s.batch_size = reader.get_int("batch_size", s.batch_size, 1, 4096);
  s.iter_size = reader.get_int("iter_size", s.iter_size, 1);
  s.max_iter = reader.get_int("max_iter", s.max_iter, 0);
  s.snapshot_every = reader.get_int("snapshot_every", s.snapshot_every, 0);
  s.test_every = reader.get_int("test_every", s.test_every, 0);
  s.display_every = reader.get_int("display_every", s.display_every, 0);
  s.val_limit = reader.get_int("val_limit", s.val_limit, 0);
  s.threads = static_cast<int>(reader.get_int("threads", s.threads, 0, 1024));
  s.seed = static_cast<uint64_t>(reader.get_int("seed", static_cast<int64_t>(s.seed), 0));
  s.on_nan = reader.get_choice("on_nan", {"stop", "skip"}, s.on_nan);
  s.allreduce_bucket_mb = reader.get_number("allreduce_bucket_mb", s.allreduce_bucket_mb, 0.001);
  s.plateau_window = reader.get_int("plateau_window", s.plateau_window, 0);
  s.update_ratio_band = reader.get_number_list("update_ratio_band", s.update_ratio_band);
  if (s.update_ratio_band.size() != 2 || !(s.update_ratio_band[0] >= 0) ||
      !(s.update_ratio_band[0] < s.update_ratio_band[1]))
    reader.fail("update_ratio_band", "expected [low, high] with 0 <= low < high");
  if (s.lr_policy == "step" && s.stepsize <= 0) reader.fail("stepsize", "lr_policy \"step\" needs stepsize > 0");
  if (s.lr_policy == "multistep" && s.stepvalues.empty())
    reader.fail("stepvalues", "lr_policy \"multistep\" needs a list of iterations");
  reader.finish();
  return s;
}

InitConfig read_init_section(SpecReader reader) {
  InitConfig init;
  init.weights = reader.get_string("weights", "");
  reader.finish();
  return init;
}

json parse_override_value(const std::string& text) {
  try {
    return json::parse(text);
  } catch (const json::exception&) {
    return text;  // not JSON: taken as a string
  }
}

}  // namespace

json ModelConfig::to_json() const {
  json out = json::object();
  if (!graph.is_null()) {
    out["graph"] = graph;
  } else {
    out["arch"] = zoo.arch;
  }
  out["num_classes"] = zoo.num_classes;
  out["width"] = zoo.width;
  out["normalize"] = zoo.normalize;
  out["ignore_label"] = zoo.ignore_label;
  out["dropout"] = model_dropout(zoo);
  // the ResNet keys only where they mean something: a VGG16 config keeps the hash it had before they existed
  const std::string backbone = model_backbone(zoo);
  if (backbone != "vgg16") {
    out["backbone"] = backbone;
    out["batch_norm"] = zoo.batch_norm;
  }
  if (zoo.arch == "fcn_resnet50" || zoo.arch == "fcn_resnet101") out["aux_weight"] = model_aux_weight(zoo);
  out["weight_init"] = zoo.weight_init;
  out["score_init"] = zoo.score_init;
  // only when set: configs without it keep the hash they had before the key existed
  if (!class_weights.is_null()) out["class_weights"] = class_weights;
  // only when not fp32, for the same reason
  if (precision != Precision::fp32) out["precision"] = precision_name(precision);
  return out;
}

json SolverConfig::to_json() const {
  json out = {{"base_lr", base_lr},       {"lr_policy", lr_policy},   {"gamma", gamma},
          {"stepsize", stepsize},     {"stepvalues", stepvalues}, {"power", power},
          {"momentum", momentum},     {"weight_decay", weight_decay}, {"iter_size", iter_size},
          {"max_iter", max_iter},     {"snapshot_every", snapshot_every}, {"test_every", test_every},
          {"display_every", display_every}, {"val_limit", val_limit}, {"threads", threads},
          {"seed", seed},             {"on_nan", on_nan},         {"allreduce_bucket_mb", allreduce_bucket_mb},
          {"plateau_window", plateau_window}, {"update_ratio_band", update_ratio_band}};
  // only when not 1: configs without it keep the hash they had before the key existed
  if (batch_size != 1) out["batch_size"] = batch_size;
  return out;
}

json InitConfig::to_json() const { return {{"weights", weights}}; }

ModelConfig parse_model_section(SpecReader reader) { return read_model(std::move(reader)); }
SolverConfig parse_solver_section(SpecReader reader) { return read_solver(std::move(reader)); }
InitConfig parse_init_section(SpecReader reader) { return read_init_section(std::move(reader)); }

void apply_overrides(json& config, const std::vector<std::string>& overrides) {
  for (const auto& item : overrides) {
    const auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      throw Error("--set " + item + ": expected key=value, e.g. --set solver.max_iter=500");
    const std::string path = item.substr(0, eq);
    json* node = &config;
    size_t start = 0;
    while (true) {
      const size_t dot = path.find('.', start);
      const std::string key = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
      if (key.empty()) throw Error("--set " + item + ": empty key in \"" + path + "\"");
      if (!node->is_object()) throw Error("--set " + item + ": \"" + path.substr(0, start - 1) + "\" is not an object");
      if (dot == std::string::npos) {
        (*node)[key] = parse_override_value(item.substr(eq + 1));
        break;
      }
      if (!node->contains(key)) (*node)[key] = json::object();
      node = &(*node)[key];
      start = dot + 1;
    }
  }
}

ModelConfig parse_model_config(const json& config, const std::string& source) {
  SpecReader reader(config, "");
  if (!reader.has("model")) throw Error(source + ": missing the \"model\" section");
  try {
    return read_model(reader.get_object("model"));
  } catch (const Error& e) {
    throw Error(source + ": " + e.what());
  }
}

json model_graph_spec(const ModelConfig& model) {
  json spec = model.graph.is_null() ? build_fcn_graph(model.zoo) : model.graph;
  if (model.resolved_class_weights.empty() || !spec.contains("layers") || !spec["layers"].is_array()) return spec;
  for (json& layer : spec["layers"]) {
    if (!layer.is_object() || layer.value("type", json()) != "softmax_loss") continue;
    if (layer.contains("class_weights"))
      throw Error("model.graph layer \"" + layer.value("name", std::string()) +
                  "\" has its own class_weights; remove it or model.class_weights (one place for them)");
    layer["class_weights"] = model.resolved_class_weights;
  }
  return spec;
}

// ---- the "data" section

namespace {

AugmentConfig parse_augment(SpecReader reader) {
  AugmentConfig augment;
  augment.flip = reader.get_bool("flip", augment.flip);
  const std::vector<double> scale = reader.get_number_list("scale", {augment.scale_min, augment.scale_max});
  if (scale.size() != 2 || !(scale[0] > 0) || !(scale[0] <= scale[1]))
    reader.fail("scale", "expected [min, max] with 0 < min <= max");
  augment.scale_min = scale[0];
  augment.scale_max = scale[1];
  const auto crop = reader.get_hw("crop", {0, 0}, 0);
  if ((crop[0] == 0) != (crop[1] == 0)) reader.fail("crop", "expected [h, w] both positive, or 0 for no crop");
  augment.crop_height = crop[0];
  augment.crop_width = crop[1];
  reader.finish();
  return augment;
}

DataSource parse_source(SpecReader reader, const std::string& default_split) {
  DataSource source;
  source.format = reader.get_choice("format", {"voc", "sbd", "folder"}, source.format);
  source.root = reader.get_string("root");
  source.split = reader.get_string("split", default_split);
  if (source.root.empty()) reader.fail("root", "must not be empty");
  reader.finish();
  return source;
}

// data.train / data.val: one source object or a list of them ([]: none).
std::vector<DataSource> parse_sources(SpecReader& reader, const std::string& key, const std::string& default_split) {
  std::vector<DataSource> sources;
  if (!reader.has(key)) return sources;
  const json& raw = reader.raw(key);
  if (raw.is_object()) {
    sources.push_back(parse_source(reader.get_object(key), default_split));
  } else if (raw.is_array()) {
    for (size_t i = 0; i < raw.size(); ++i) {
      if (!raw[i].is_object())
        reader.fail(key, "expected source objects {\"format\", \"root\", \"split\"}, got " + raw[i].dump());
      sources.push_back(parse_source(SpecReader(raw[i], reader.key_path(key) + "[" + std::to_string(i) + "]"),
                                     default_split));
    }
  } else {
    reader.fail(key, "expected a source {\"format\", \"root\", \"split\"} or a list of them, got " + raw.dump());
  }
  return sources;
}

// The --set that changes `field` of every source of one split: a list of
// sources has no per-item path, so it is set whole.
std::string source_override(SpecReader& reader, const std::string& split, const std::string& field,
                            const std::string& value) {
  if (reader.raw(split).is_object()) return "--set data." + split + "." + field + "=" + value;
  return "--set 'data." + split + "=[{\"" + field + "\": \"" + value + "\", ...}, ...]' (a list: set it whole)";
}

// The data section has two forms: one dataset holding both splits (root,
// format, train_split, val_split) or a source per split (train, val, each
// {format, root, split}). A key of the other form would be silently
// ignored: `--set data.root=...` on the VOC recipes, whose sources have
// their own roots. Checked after the --set overrides, so a file that mixes
// the forms fails the same way as an override that does.
void check_one_form(SpecReader& reader, const DataConfig& config) {
  const bool train = !config.train.empty(), val = !config.val.empty();
  if (!train && !val) return;
  if (train != val) {
    const std::string given = train ? "train" : "val", missing = train ? "val" : "train";
    reader.fail(missing, "missing: data." + given + " and data." + missing +
                             " come together (a source each); or give neither and data.root for one dataset "
                             "holding both splits (--set data.root=DIR)");
  }
  struct Replacement {
    std::string key, field, placeholder;
    std::vector<std::string> splits;  // whose sources' `field` replaces `key`
  };
  const std::vector<Replacement> replacements = {{"root", "root", "DIR", {"train", "val"}},
                                                 {"format", "format", "FORMAT", {"train", "val"}},
                                                 {"train_split", "split", "NAME", {"train"}},
                                                 {"val_split", "split", "NAME", {"val"}}};
  // A run's config.json from an earlier fcn wrote the single-root keys with
  // their defaults beside the sources; those values say nothing and still load.
  const DataConfig defaults;
  const std::map<std::string, std::string> written_by_earlier_fcn = {
      {"root", ""}, {"format", defaults.format}, {"train_split", defaults.train_split}, {"val_split", defaults.val_split}};
  for (const Replacement& r : replacements) {
    if (!reader.has(r.key)) continue;
    if (reader.raw(r.key) == json(written_by_earlier_fcn.at(r.key))) continue;
    std::string sets;
    for (const std::string& split : r.splits)
      sets += (sets.empty() ? "" : " ") + source_override(reader, split, r.field, r.placeholder);
    reader.fail(r.key, "not with data.train and data.val (one form per config: data.root for one dataset holding "
                       "both splits, or a {\"format\", \"root\", \"split\"} source per split); set the sources' "
                       "instead: " + sets);
  }
}

json sources_to_json(const std::vector<DataSource>& sources) {
  json out = json::array();
  for (const auto& s : sources) out.push_back({{"format", s.format}, {"root", s.root}, {"split", s.split}});
  return out;
}

std::vector<double> read_three(SpecReader& reader, const char* key, const std::vector<double>& fallback,
                               const char* what) {
  std::vector<double> values = reader.get_number_list(key, fallback);
  if (values.size() != 3) reader.fail(key, std::string("expected 3 numbers (") + what + ")");
  for (double v : values)
    if (!std::isfinite(v)) reader.fail(key, "every value must be finite");
  return values;
}

// data.channel_order, pixel_scale, mean, std, input_scale; the old
// data.mean_bgr (BGR order, 0..255 units, what configs before these keys
// wrote) becomes mean = mean_bgr in channel_order times pixel_scale.
void parse_input_convention(SpecReader& reader, DataConfig& config) {
  config.channel_order = reader.get_choice("channel_order", {"bgr", "rgb"}, config.channel_order);
  config.pixel_scale = reader.get_number("pixel_scale", config.pixel_scale, 1e-6, 1e6);
  if (reader.has("mean") && reader.has("mean_bgr"))
    reader.fail("mean_bgr", "not with data.mean (mean_bgr is the old form of data.mean: give one of them)");
  if (reader.has("mean_bgr")) {
    std::vector<double> bgr = read_three(reader, "mean_bgr", {}, "blue, green, red");
    if (config.channel_order == "rgb") std::reverse(bgr.begin(), bgr.end());
    for (double& m : bgr) m *= config.pixel_scale;
    config.mean = bgr;
  } else {
    config.mean = read_three(reader, "mean", config.mean, "one per channel, in data.channel_order");
  }
  config.std = read_three(reader, "std", config.std, "one per channel, in data.channel_order");
  for (double s : config.std)
    if (!(s > 0)) reader.fail("std", "every std must be > 0, got " + std::to_string(s));
  config.input_scale = reader.get_number("input_scale", config.input_scale, 1e-6, 1e6);
}

}  // namespace

DataConfig parse_data_config(SpecReader& reader) {
  DataConfig config;
  config.train = parse_sources(reader, "train", config.train_split);
  config.val = parse_sources(reader, "val", config.val_split);
  check_one_form(reader, config);
  if (config.train.empty()) {
    if (!reader.has("root"))
      reader.fail("root", "missing required key (or data.train and data.val, a source for each split)");
    config.format = reader.get_choice("format", {"voc", "sbd", "folder"}, config.format);
    config.root = reader.get_string("root");
    config.train_split = reader.get_string("train_split", config.train_split);
    config.val_split = reader.get_string("val_split", config.val_split);
  }
  config.image_dir = reader.get_string("image_dir", config.image_dir);
  config.label_dir = reader.get_string("label_dir", config.label_dir);
  config.image_ext = reader.get_string("image_ext", config.image_ext);
  if (config.image_ext.empty() || config.image_ext[0] != '.')
    reader.fail("image_ext", "expected an extension starting with '.', got \"" + config.image_ext + "\"");
  parse_input_convention(reader, config);
  if (reader.has("class_names")) config.class_names = reader.get_string_list("class_names");
  reader.accept("class_names");
  if (reader.has("augment")) config.augment = parse_augment(reader.get_object("augment"));
  reader.accept("augment");
  config.seed = static_cast<uint64_t>(reader.get_int("seed", static_cast<int64_t>(config.seed), 0));
  config.on_error = reader.get_choice("on_error", {"stop", "skip"}, config.on_error);
  config.ignore_label = reader.get_int("ignore_label", config.ignore_label, 0, 255);
  config.prefetch = static_cast<int>(reader.get_int("prefetch", config.prefetch, 1, 256));
  reader.finish();
  return config;
}

json data_config_to_json(const DataConfig& config) {
  const AugmentConfig& a = config.augment;
  json out = {{"image_dir", config.image_dir},
              {"label_dir", config.label_dir},
              {"image_ext", config.image_ext},
              {"channel_order", config.channel_order},
              {"pixel_scale", config.pixel_scale},
              {"mean", config.mean},
              {"std", config.std},
              {"input_scale", config.input_scale},
              {"class_names", config.class_names},
              {"augment",
               {{"flip", a.flip}, {"scale", {a.scale_min, a.scale_max}}, {"crop", {a.crop_height, a.crop_width}}}},
              {"seed", config.seed},
              {"on_error", config.on_error},
              {"ignore_label", config.ignore_label},
              {"prefetch", config.prefetch}};
  // one form only: parse_data_config refuses a section that mixes them
  if (config.train.empty()) {
    out.update({{"format", config.format}, {"root", config.root}, {"train_split", config.train_split},
                {"val_split", config.val_split}});
  } else {
    out.update({{"train", sources_to_json(config.train)}, {"val", sources_to_json(config.val)}});
  }
  return out;
}

// ---- the whole config

namespace {

bool section_has(const json& config, const char* section, const char* key) {
  return config.contains(section) && config[section].is_object() && config[section].contains(key);
}

// The ignore label of the loss (model.ignore_label, or each softmax_loss
// layer of an explicit graph) and of the loader and crop padding
// (data.ignore_label) are one setting: the one given fills in the other, and
// two different values are an error (the loss would score the loader's void
// pixels as a class).
void link_ignore_labels(const json& config, Config& out) {
  int64_t& model_label = out.model.zoo.ignore_label;
  int64_t& data_label = out.data.ignore_label;
  const bool in_model = section_has(config, "model", "ignore_label");
  const bool in_data = section_has(config, "data", "ignore_label");
  if (in_model && in_data && model_label != data_label)
    throw Error("model.ignore_label (" + std::to_string(model_label) + ") and data.ignore_label (" +
                std::to_string(data_label) + ") differ; they are one setting: give one of them, or the same value");
  if (in_model && !in_data && model_label >= 0 && model_label <= 255) data_label = model_label;
  if (in_data && !in_model) model_label = data_label;
  if (out.model.graph.is_null() || !out.model.graph.contains("layers") || !out.model.graph["layers"].is_array()) return;
  // malformed layers are left to the graph builder, which names what is wrong
  const auto text = [](const json& layer, const char* key) {
    return layer.contains(key) && layer[key].is_string() ? layer[key].get<std::string>() : std::string();
  };
  for (const json& layer : out.model.graph["layers"]) {
    if (!layer.is_object() || text(layer, "type") != "softmax_loss") continue;
    const int64_t loss_label = layer.contains("ignore_label") && layer["ignore_label"].is_number_integer()
                                   ? layer["ignore_label"].get<int64_t>()
                                   : 255;  // the layer's default
    if (loss_label != data_label)
      throw Error("model.graph layer \"" + text(layer, "name") + "\" has ignore_label " + std::to_string(loss_label) +
                  " but data.ignore_label is " + std::to_string(data_label) + "; they must be the same");
  }
}

}  // namespace

json Config::to_json() const {
  return {{"model", model.to_json()}, {"data", data_config_to_json(data)}, {"solver", solver.to_json()},
          {"init", init.to_json()}};
}

Config parse_config(const json& config, const std::string& source) {
  try {
    SpecReader reader(config, "");
    Config out;
    out.model = parse_model_section(reader.get_object("model"));
    if (reader.has("data")) {
      SpecReader data = reader.get_object("data");
      out.data = parse_data_config(data);
    }
    if (reader.has("solver")) out.solver = parse_solver_section(reader.get_object("solver"));
    if (reader.has("init")) out.init = parse_init_section(reader.get_object("init"));
    reader.finish();
    link_ignore_labels(config, out);
    return out;
  } catch (const Error& e) {
    throw Error(source + ": " + e.what());
  }
}

Config load_config(const std::string& filename, const std::vector<std::string>& overrides) {
  json config = read_json_file(filename);
  apply_overrides(config, overrides);
  return parse_config(config, filename);
}

}  // namespace fcn
