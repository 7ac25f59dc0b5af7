// The zoo's entry points: arch and backbone choices, their checks, the
// shared GraphBuilder, and the assembly of trunk + head + losses.
#include "fcn/model/model_zoo.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "fcn/core/error.hpp"
#include "fcn/model/zoo_heads.hpp"
#include "fcn/model/zoo_resnet.hpp"
#include "fcn/model/zoo_vgg16.hpp"

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

std::string model_title(const ModelSpec& spec) {
  const std::string backbone = model_backbone(spec);
  const bool named = backbone == "vgg16" || is_fcn_resnet(spec.arch);  // the arch's name says it
  return spec.arch + (named ? "" : " on " + backbone) + " (width " + fmt::format("{:g}", spec.width) + ")";
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
