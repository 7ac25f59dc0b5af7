// The model zoo's graph-spec builder: one JSON layer per call.
#include "fcn/model/zoo_builder.hpp"

namespace fcn::zoo {

std::string GraphBuilder::conv(const std::string& name, const std::string& input, int64_t outputs, int64_t kernel,
                               int64_t pad, const json& init) {
  add({{"name", name}, {"type", "conv"}, {"inputs", {input}}, {"num_output", outputs}, {"kernel", kernel},
       {"pad", pad}, {"weight_init", init}, {"lr_mult", 1}, {"decay_mult", 1}, {"bias_lr_mult", 2},
       {"bias_decay_mult", 0}});
  return name;
}

std::string GraphBuilder::conv_relu(const std::string& name, const std::string& input, int64_t outputs,
                                    int64_t kernel, int64_t pad) {
  conv(name, input, outputs, kernel, pad, spec_.weight_init);
  return relu("relu" + name.substr(name.find_first_of("0123456789")), name);
}

std::string GraphBuilder::conv_nobias(const std::string& name, const std::string& input, int64_t outputs,
                                      int64_t kernel, int64_t stride, int64_t pad, int64_t dilation) {
  json layer = {{"name", name},     {"type", "conv"},         {"inputs", {input}},
                {"num_output", outputs}, {"kernel", kernel}, {"stride", stride},
                {"pad", pad},       {"bias", false},          {"weight_init", spec_.weight_init},
                {"lr_mult", 1},     {"decay_mult", 1}};
  if (dilation != 1) layer["dilation"] = dilation;
  add(std::move(layer));
  return name;
}

std::string GraphBuilder::score(const std::string& name, const std::string& input) {
  return conv(name, input, spec_.num_classes, 1, 0, spec_.score_init);
}

std::string GraphBuilder::classifier(const std::string& name, const std::string& input) {
  add({{"name", name}, {"type", "conv"}, {"inputs", {input}}, {"num_output", spec_.num_classes}, {"kernel", 1},
       {"weight_init", spec_.score_init}, {"lr_mult", 1}, {"decay_mult", 1}, {"bias_lr_mult", 1},
       {"bias_decay_mult", 1}});
  return name;
}

std::string GraphBuilder::batch_norm(const std::string& name, const std::string& input) {
  json layer = {{"name", name}, {"type", "batch_norm"}, {"inputs", {input}}, {"mode", spec_.batch_norm}};
  // torchvision's reference SGD decays gamma and beta like every other parameter
  if (spec_.batch_norm == "train") layer.update({{"decay_mult", 1}, {"bias_decay_mult", 1}});
  add(std::move(layer));
  return name;
}

std::string GraphBuilder::relu(const std::string& name, const std::string& input) {
  add({{"name", name}, {"type", "relu"}, {"inputs", {input}}});
  return name;
}

std::string GraphBuilder::dropout(const std::string& name, const std::string& input, double ratio) {
  add({{"name", name}, {"type", "dropout"}, {"inputs", {input}}, {"ratio", ratio}});
  return name;
}

std::string GraphBuilder::max_pool(const std::string& name, const std::string& input, int64_t kernel,
                                   int64_t stride, int64_t pad, bool ceil_mode) {
  json layer = {{"name", name}, {"type", "max_pool"}, {"inputs", {input}}, {"kernel", kernel}, {"stride", stride},
                {"ceil_mode", ceil_mode}};
  if (pad != 0) layer["pad"] = pad;
  add(std::move(layer));
  return name;
}

std::string GraphBuilder::upsample(const std::string& name, const std::string& input, int64_t factor,
                                   int64_t kernel) {
  add({{"name", name}, {"type", "deconv"}, {"inputs", {input}}, {"num_output", spec_.num_classes},
       {"kernel", kernel}, {"stride", factor}, {"bias", false}, {"weight_init", "bilinear"}, {"lr_mult", 0},
       {"decay_mult", 0}});
  return name;
}

std::string GraphBuilder::resize(const std::string& name, const std::string& input, const std::string& reference) {
  add({{"name", name}, {"type", "resize"}, {"inputs", {input, reference}}, {"align_corners", false}});
  return name;
}

std::string GraphBuilder::crop(const std::string& name, const std::string& input, const std::string& reference) {
  add({{"name", name}, {"type", "crop"}, {"inputs", {input, reference}}, {"offset", "auto"}});
  return name;
}

std::string GraphBuilder::sum(const std::string& name, const std::string& a, const std::string& b) {
  add({{"name", name}, {"type", "sum"}, {"inputs", {a, b}}});
  return name;
}

std::string GraphBuilder::scale(const std::string& name, const std::string& input, double value) {
  add({{"name", name}, {"type", "scale"}, {"inputs", {input}}, {"value", value}});
  return name;
}

void GraphBuilder::loss(const std::string& name, const std::string& score_blob, double weight) {
  json layer = {{"name", name},
                {"type", "softmax_loss"},
                {"inputs", {score_blob, "label"}},
                {"ignore_label", spec_.ignore_label},
                {"normalize", spec_.normalize}};
  if (weight != 1.0) layer["loss_weight"] = weight;
  add(std::move(layer));
}

json GraphBuilder::finish() const {
  return {{"inputs", {{"data", {{"channels", 3}}}, {"label", {{"channels", 1}}}}}, {"layers", layers_}};
}

}  // namespace fcn::zoo
