#pragma once
// The model zoo as graph specs:
// * the paper's FCN-32s, FCN-16s, FCN-8s and FCN-8s at-once on a VGG16
//   trunk, with the reference layer names (shelhamer/fcn.berkeleyvision.org
//   voc-fcn*/net.py), so weights map one to one onto the reference;
// * FCN-32s/16s/8s on a ResNet-18/34/50/101 trunk (model.backbone);
// * torchvision 0.14's fcn_resnet50 and fcn_resnet101 (dilated ResNet,
//   FCNHead, bilinear resize, optional auxiliary head on layer3).
// ResNet layers are named by torchvision's module paths (backbone.layer1.0.
// conv1, classifier.0, aux_classifier.4, ...), so a param name is the
// torchvision state-dict key.
#include <optional>
#include <string>
#include <vector>

#include "fcn/core/spec_reader.hpp"

namespace fcn {

struct ModelSpec {
  std::string arch = "fcn8s";  // model_archs()
  // fcn32s/16s/8s: model_backbones(); fcn8s-atonce: vgg16 only; fcn_resnetNN:
  // its own resnetNN. Empty: the arch's (vgg16, or fcn_resnetNN's).
  std::string backbone;
  int64_t num_classes = 21;
  double width = 1.0;  // channel multiplier; 1 = the paper / torchvision
  std::string normalize = "none";  // softmax_loss normalization (the reference sums)
  int64_t ignore_label = 255;
  json weight_init = {{"type", "msra"}};  // trunk convs (fc6, fc7 too)
  json score_init = {{"type", "zero"}};   // score_fr, score_pool4, score_pool3, classifier.4 (the paper zero-inits them)
  std::optional<double> dropout;     // unset: model_dropout's default for the arch
  std::optional<double> aux_weight;  // fcn_resnet*: the aux loss's weight (unset: 0.5; 0: no aux head)
  std::string batch_norm = "train";  // ResNet nets: batch_norm's mode, "train" or "frozen"
};

const std::vector<std::string>& model_archs();
const std::vector<std::string>& model_backbones();  // vgg16, resnet18, resnet34, resnet50, resnet101
// The backbone the net is built on (ModelSpec::backbone or the arch's).
std::string model_backbone(const ModelSpec& spec);
// The dropout ratio: given, else 0.5 (VGG16's fc6, fc7), 0.1 (fcn_resnet*'s
// FCNHead) or 0 (the ResNet skip nets have no dropout).
double model_dropout(const ModelSpec& spec);
// The aux loss weight: fcn_resnet*: given, else 0.5; other archs: 0.
double model_aux_weight(const ModelSpec& spec);
// Throws an Error naming the model.* key for a combination no net has
// (fcn8s-atonce on a ResNet, a backbone for fcn_resnet*, dropout on a ResNet
// skip net, an aux weight or batch-norm mode for a VGG16 net).
void check_model_spec(const ModelSpec& spec);
// {"inputs": {"data": 3 channels, "label": 1 channel}, "layers": [...]}.
json build_fcn_graph(const ModelSpec& spec);
// channel count after the width multiplier (at least 1).
int64_t scaled_channels(int64_t channels, double width);

}  // namespace fcn
