#pragma once
// Internal to the model zoo: the graph-spec builder that the trunks
// (zoo_vgg16.cpp, zoo_resnet.cpp) and the heads (zoo_heads.cpp) share, and
// the Trunk they exchange. Every method appends one layer (or a short fixed
// sequence) and returns the name of its output blob.
#include <string>

#include "fcn/model/model_zoo.hpp"

namespace fcn::zoo {

class GraphBuilder {
 public:
  explicit GraphBuilder(const ModelSpec& spec) : spec_(spec) {}
  const ModelSpec& spec() const { return spec_; }
  // the channel count after the width multiplier
  int64_t ch(int64_t channels) const { return scaled_channels(channels, spec_.width); }

  // The paper's conv: weights 1x lr with decay, biases 2x lr without decay.
  std::string conv(const std::string& name, const std::string& input, int64_t outputs, int64_t kernel, int64_t pad,
                   const json& init);
  // conv + "relu<suffix>" (conv1_1 -> relu1_1)
  std::string conv_relu(const std::string& name, const std::string& input, int64_t outputs, int64_t kernel,
                        int64_t pad);
  // torchvision's conv: bias-free (a batch norm follows), weights 1x lr with decay
  std::string conv_nobias(const std::string& name, const std::string& input, int64_t outputs, int64_t kernel,
                          int64_t stride, int64_t pad, int64_t dilation);
  // A score conv (1x1 to num_classes, model.score_init) with the paper's multipliers.
  std::string score(const std::string& name, const std::string& input);
  // torchvision's last classifier conv: 1x1 to num_classes with a bias,
  // model.score_init, everything 1x lr with decay (its SGD treats all alike)
  std::string classifier(const std::string& name, const std::string& input);
  std::string batch_norm(const std::string& name, const std::string& input);
  std::string relu(const std::string& name, const std::string& input);
  std::string dropout(const std::string& name, const std::string& input, double ratio);
  std::string max_pool(const std::string& name, const std::string& input, int64_t kernel, int64_t stride,
                       int64_t pad, bool ceil_mode);
  // A frozen, bias-free, bilinear deconv upsampling by `factor` with the given kernel.
  std::string upsample(const std::string& name, const std::string& input, int64_t factor, int64_t kernel);
  // bilinear (align_corners false) to the height and width of `reference`
  std::string resize(const std::string& name, const std::string& input, const std::string& reference);
  std::string crop(const std::string& name, const std::string& input, const std::string& reference);
  std::string sum(const std::string& name, const std::string& a, const std::string& b);
  std::string scale(const std::string& name, const std::string& input, double value);
  // softmax_loss against "label"; a weight other than 1 scales the loss and its gradient
  void loss(const std::string& name, const std::string& score_blob, double weight = 1.0);

  // {"inputs": {"data": 3 channels, "label": 1 channel}, "layers": [...]}
  json finish() const;

 private:
  void add(json layer) { layers_.push_back(std::move(layer)); }
  const ModelSpec& spec_;
  json layers_ = json::array();
};

// The features a skip head scores: the stride-8, -16 and -32 blobs of a
// trunk (a dilated ResNet's layer2, layer3 and layer4, all at stride 8), and
// how its grid sits on the image.
struct Trunk {
  std::string stride8, stride16, stride32;
  // false (VGG16, conv1_1 padded by 100): the maps are offset from the
  // image, the deconvs are the paper's kernel 2f, and each skip's scores are
  // cropped to the upsampled map. true (ResNet): feature i of a stride-S map
  // sits at image pixel S*i; the deconvs have kernel 2f - 1 (an integral
  // shift f - 1), and the upsampled map, one pixel larger on each side, is
  // cropped to the skip's scores (see docs/config.md, "ResNet backbones").
  bool aligned = false;
};

// VGG16 up to drop7 (fc6, fc7 as convs, with dropout).
Trunk vgg16_trunk(GraphBuilder& g);
// torchvision's ResNet ("resnet18" ... "resnet101") without avgpool and fc,
// named backbone.*; `dilated`: layer3 and layer4 replace their stride by
// dilation (replace_stride_with_dilation [False, True, True]), output stride 8.
Trunk resnet_trunk(GraphBuilder& g, const std::string& depth, bool dilated);
// the output channels of a ResNet's layer1..layer4 at width 1 (64 .. 2048 for a Bottleneck net)
int64_t resnet_channels(const std::string& depth, int layer);

// The paper's skip head (fcn32s, fcn16s, fcn8s, fcn8s-atonce) on any trunk;
// returns the score blob (the size of data).
std::string fcn_skip_head(GraphBuilder& g, const Trunk& trunk, const std::string& arch);
// torchvision's FCNHead on `input` (`in_channels` channels) named
// `prefix`.0 .. `prefix`.4, resized to data by a layer named `score_name`;
// returns the score blob.
std::string fcn_head(GraphBuilder& g, const std::string& prefix, const std::string& input, int64_t in_channels,
                     const std::string& score_name);

}  // namespace fcn::zoo
