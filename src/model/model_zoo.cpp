// The zoo's entry points: arch and backbone choices, their checks, the
// shared GraphBuilder, and the assembly of trunk + head + losses.
#include "fcn/model/model_zoo.hpp"

#include <algorithm>
#include <cmath>

#include "fcn/core/error.hpp"
#include "graph_builder.hpp"

namespace fcn {

namespace {

bool is_fcn_resnet(const std::string& arch) { return arch == "fcn_resnet50" || arch == "fcn_resnet101"; }

std::string quoted(const std::string& text) { return "\"" + text + "\""; }

}  // namespace

const std::vector<std::string>& model_archs() {
  static const std::vector<std::string> archs = {"fcn32s", "fcn16s", "fcn8s", "fcn8s-atonce", "fcn_resnet50",
                                                 "fcn_resnet101"};
  return archs;
}

const std::vector<std::string>& model_backbones() {
  static const std::vector<std::string> backbones = {"vgg16", "resnet18", "resnet34", "resnet50", "resnet101"};
  return backbones;
}

std::string model_backbone(const ModelSpec& spec) {
  if (is_fcn_resnet(spec.arch)) return spec.arch.substr(4);  // fcn_resnet50 -> resnet50
  return spec.backbone.empty() ? "vgg16" : spec.backbone;
}

double model_dropout(const ModelSpec& spec) {
  if (spec.dropout) return *spec.dropout;
  if (is_fcn_resnet(spec.arch)) return 0.1;
  return model_backbone(spec) == "vgg16" ? 0.5 : 0.0;
}

double model_aux_weight(const ModelSpec& spec) {
  if (!is_fcn_resnet(spec.arch)) return 0.0;
  return spec.aux_weight.value_or(0.5);
}

void check_model_spec(const ModelSpec& spec) {
  if (std::find(model_archs().begin(), model_archs().end(), spec.arch) == model_archs().end())
    throw Error("model.arch: unknown architecture " + quoted(spec.arch));
  if (spec.num_classes < 1) throw Error("model.num_classes: must be positive");
  const std::string backbone = model_backbone(spec);
  if (is_fcn_resnet(spec.arch)) {
    if (!spec.backbone.empty() && spec.backbone != backbone)
      throw Error("model.backbone: " + spec.arch + " is built on " + backbone + "; remove model.backbone (or give " +
                  quoted(backbone) + ")");
  } else if (std::find(model_backbones().begin(), model_backbones().end(), backbone) == model_backbones().end()) {
    throw Error("model.backbone: unknown backbone " + quoted(backbone));
  } else if (spec.arch == "fcn8s-atonce" && backbone != "vgg16") {
    throw Error("model.backbone: fcn8s-atonce is the paper's VGG16 net only; use fcn8s on " + backbone);
  }
  if (!is_fcn_resnet(spec.arch) && spec.aux_weight && *spec.aux_weight != 0)
    throw Error("model.aux_weight: only fcn_resnet50 and fcn_resnet101 have an auxiliary head");
  if (spec.aux_weight && !(*spec.aux_weight >= 0)) throw Error("model.aux_weight: must be >= 0");
  if (backbone == "vgg16" && spec.batch_norm != "train")
    throw Error("model.batch_norm: VGG16 has no batch norm; the key applies to ResNet nets");
  if (spec.batch_norm != "train" && spec.batch_norm != "frozen")
    throw Error("model.batch_norm: expected \"train\" or \"frozen\", got " + quoted(spec.batch_norm));
  if (!is_fcn_resnet(spec.arch) && backbone != "vgg16" && model_dropout(spec) != 0)
    throw Error("model.dropout: the ResNet FCN-32s/16s/8s have no dropout layer; leave model.dropout unset (or 0)");
}

int64_t scaled_channels(int64_t channels, double width) {
  return std::max<int64_t>(1, static_cast<int64_t>(std::floor(channels * width + 1e-9)));
}

namespace zoo {

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

}  // namespace zoo

json build_fcn_graph(const ModelSpec& spec) {
  check_model_spec(spec);
  zoo::GraphBuilder g(spec);
  const std::string backbone = model_backbone(spec);
  if (is_fcn_resnet(spec.arch)) {
    const zoo::Trunk trunk = zoo::resnet_trunk(g, backbone, true);
    g.loss("loss", zoo::fcn_head(g, "classifier", trunk.stride32, g.ch(zoo::resnet_channels(backbone, 4)), "score"));
    const double aux_weight = model_aux_weight(spec);
    if (aux_weight > 0) {
      const int64_t channels = g.ch(zoo::resnet_channels(backbone, 3));
      g.loss("aux_loss", zoo::fcn_head(g, "aux_classifier", trunk.stride16, channels, "aux_score"), aux_weight);
    }
    return g.finish();
  }
  const zoo::Trunk trunk = backbone == "vgg16" ? zoo::vgg16_trunk(g) : zoo::resnet_trunk(g, backbone, false);
  g.loss("loss", zoo::fcn_skip_head(g, trunk, spec.arch));
  return g.finish();
}

}  // namespace fcn
