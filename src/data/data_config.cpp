// The "data" section of a config: parsing (every key checked, errors name
// the JSON path), its JSON form, and class names.
#include "fcn/data/dataset.hpp"
#include "fcn/error.hpp"

namespace fcn {

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

}  // namespace

DataConfig parse_data_config(SpecReader& reader) {
  DataConfig config;
  config.format = reader.get_choice("format", {"voc", "sbd", "folder"}, config.format);
  config.root = reader.get_string("root");
  config.train_split = reader.get_string("train_split", config.train_split);
  config.val_split = reader.get_string("val_split", config.val_split);
  config.image_dir = reader.get_string("image_dir", config.image_dir);
  config.label_dir = reader.get_string("label_dir", config.label_dir);
  config.image_ext = reader.get_string("image_ext", config.image_ext);
  if (config.image_ext.empty() || config.image_ext[0] != '.')
    reader.fail("image_ext", "expected an extension starting with '.', got \"" + config.image_ext + "\"");
  config.mean_bgr = reader.get_number_list("mean_bgr", config.mean_bgr);
  if (config.mean_bgr.size() != 3) reader.fail("mean_bgr", "expected 3 numbers (blue, green, red)");
  config.input_scale = reader.get_number("input_scale", config.input_scale, 1e-6, 1e6);
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
  return json{{"format", config.format},
              {"root", config.root},
              {"train_split", config.train_split},
              {"val_split", config.val_split},
              {"image_dir", config.image_dir},
              {"label_dir", config.label_dir},
              {"image_ext", config.image_ext},
              {"mean_bgr", config.mean_bgr},
              {"input_scale", config.input_scale},
              {"class_names", config.class_names},
              {"augment",
               {{"flip", a.flip}, {"scale", {a.scale_min, a.scale_max}}, {"crop", {a.crop_height, a.crop_width}}}},
              {"seed", config.seed},
              {"on_error", config.on_error},
              {"ignore_label", config.ignore_label},
              {"prefetch", config.prefetch}};
}

const std::vector<std::string>& voc_class_names() {
  static const std::vector<std::string> names = {
      "background", "aeroplane", "bicycle", "bird",  "boat",        "bottle", "bus",
      "car",        "cat",       "chair",   "cow",   "diningtable", "dog",    "horse",
      "motorbike",  "person",    "pottedplant", "sheep", "sofa",    "train",  "tvmonitor"};
  return names;
}

std::vector<std::string> resolve_class_names(const DataConfig& config, int64_t num_classes) {
  if (!config.class_names.empty()) {
    if (static_cast<int64_t>(config.class_names.size()) != num_classes)
      throw Error("data.class_names: has " + std::to_string(config.class_names.size()) + " names but there are " +
                  std::to_string(num_classes) + " classes");
    return config.class_names;
  }
  if (num_classes == static_cast<int64_t>(voc_class_names().size())) return voc_class_names();
  std::vector<std::string> names;
  for (int64_t i = 0; i < num_classes; ++i) names.push_back("class_" + std::to_string(i));
  return names;
}

}  // namespace fcn
