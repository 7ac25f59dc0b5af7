// torchvision 0.14's ResNet (models/resnet.py) as a trunk: the module paths
// of its state dict are the layer names, so its weights map one to one.
#include <array>

#include "fcn/core/error.hpp"
#include "graph_builder.hpp"

namespace fcn::zoo {

namespace {

struct ResnetLayout {
  bool bottleneck;  // Bottleneck (expansion 4) or BasicBlock (expansion 1)
  std::array<int, 4> blocks;
};

ResnetLayout resnet_layout(const std::string& depth) {
  if (depth == "resnet18") return {false, {2, 2, 2, 2}};
  if (depth == "resnet34") return {false, {3, 4, 6, 3}};
  if (depth == "resnet50") return {true, {3, 4, 6, 3}};
  if (depth == "resnet101") return {true, {3, 4, 23, 3}};
  throw Error("model.backbone: unknown ResNet \"" + depth + "\"");
}

// Where one block sits: its name, input, and the torchvision arguments
// (unscaled channels decide the structure; g.ch() scales the convs).
struct Block {
  std::string name, input;
  int64_t planes = 0, stride = 1, dilation = 1;
  bool downsample = false;
};

std::string conv_bn(GraphBuilder& g, const std::string& block, int index, const std::string& input,
                    int64_t outputs, int64_t kernel, int64_t stride, int64_t dilation) {
  const std::string i = std::to_string(index);
  // 3x3 convs pad by their dilation (torchvision's conv3x3), 1x1 convs not at all
  const int64_t pad = kernel == 3 ? dilation : 0;
  g.conv_nobias(block + ".conv" + i, input, g.ch(outputs), kernel, stride, pad, dilation);
  return g.batch_norm(block + ".bn" + i, block + ".conv" + i);
}

// identity + residual, then ReLU; the identity is downsample's conv1x1(stride) + BN where the shape changes
std::string residual(GraphBuilder& g, const Block& b, const std::string& residual_branch, int64_t outputs) {
  std::string identity = b.input;
  if (b.downsample) {
    g.conv_nobias(b.name + ".downsample.0", b.input, g.ch(outputs), 1, b.stride, 0, 1);
    identity = g.batch_norm(b.name + ".downsample.1", b.name + ".downsample.0");
  }
  return g.relu(b.name + ".relu", g.sum(b.name + ".add", residual_branch, identity));
}

// BasicBlock: conv3x3(stride) BN ReLU conv3x3 BN (torchvision refuses dilation > 1 here)
std::string basic_block(GraphBuilder& g, const Block& b) {
  if (b.dilation > 1) throw Error("model.backbone: BasicBlock ResNets (resnet18, resnet34) have no dilated form");
  std::string top = g.relu(b.name + ".relu1", conv_bn(g, b.name, 1, b.input, b.planes, 3, b.stride, 1));
  top = conv_bn(g, b.name, 2, top, b.planes, 3, 1, 1);
  return residual(g, b, top, b.planes);
}

// Bottleneck V1.5: conv1x1 BN ReLU conv3x3(stride, dilation) BN ReLU conv1x1(4 planes) BN
std::string bottleneck(GraphBuilder& g, const Block& b) {
  std::string top = g.relu(b.name + ".relu1", conv_bn(g, b.name, 1, b.input, b.planes, 1, 1, 1));
  top = g.relu(b.name + ".relu2", conv_bn(g, b.name, 2, top, b.planes, 3, b.stride, b.dilation));
  top = conv_bn(g, b.name, 3, top, 4 * b.planes, 1, 1, 1);
  return residual(g, b, top, 4 * b.planes);
}

}  // namespace

// _make_layer's bookkeeping: a dilated layer multiplies the running
// dilation by its stride and runs at stride 1; its first block keeps the
// previous dilation, the others take the new one.
Trunk resnet_trunk(GraphBuilder& g, const std::string& depth, bool dilated) {
  const ResnetLayout layout = resnet_layout(depth);
  const int64_t expansion = layout.bottleneck ? 4 : 1;
  g.conv_nobias("backbone.conv1", "data", g.ch(64), 7, 2, 3, 1);
  std::string top = g.relu("backbone.relu", g.batch_norm("backbone.bn1", "backbone.conv1"));
  top = g.max_pool("backbone.maxpool", top, 3, 2, 1, false);
  int64_t inplanes = 64, dilation = 1;
  std::array<std::string, 4> outputs;
  for (int l = 0; l < 4; ++l) {
    const int64_t planes = int64_t{64} << l;
    int64_t stride = l == 0 ? 1 : 2;
    const int64_t previous_dilation = dilation;
    if (dilated && l >= 2) {
      dilation *= stride;
      stride = 1;
    }
    for (int k = 0; k < layout.blocks[l]; ++k) {
      Block b;
      b.name = "backbone.layer" + std::to_string(l + 1) + "." + std::to_string(k);
      b.input = top;
      b.planes = planes;
      b.stride = k == 0 ? stride : 1;
      b.dilation = k == 0 ? previous_dilation : dilation;
      b.downsample = k == 0 && (stride != 1 || inplanes != planes * expansion);
      top = layout.bottleneck ? bottleneck(g, b) : basic_block(g, b);
      inplanes = planes * expansion;
    }
    outputs[l] = top;
  }
  Trunk trunk;
  trunk.stride8 = outputs[1];
  trunk.stride16 = outputs[2];
  trunk.stride32 = outputs[3];
  trunk.aligned = true;
  return trunk;
}

int64_t resnet_channels(const std::string& depth, int layer) {
  return (int64_t{64} << (layer - 1)) * (resnet_layout(depth).bottleneck ? 4 : 1);
}

}  // namespace fcn::zoo
