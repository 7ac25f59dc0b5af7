// The heads on a trunk: the paper's skip architecture and torchvision's FCNHead.
#include "fcn/core/error.hpp"
#include "graph_builder.hpp"

namespace fcn::zoo {

namespace {

// A VGG trunk's deconv has the paper's kernel 2f (shift f - 1/2, which pad
// 100 and the crops absorb); an aligned trunk's has kernel 2f - 1, whose
// shift f - 1 is integral (fcn's bilinear filter is then exact linear
// interpolation on the stride-S grid).
std::string upsample(GraphBuilder& g, const Trunk& trunk, const std::string& name, const std::string& input,
                     int64_t factor) {
  return g.upsample(name, input, factor, trunk.aligned ? 2 * factor - 1 : 2 * factor);
}

// upscored + skip, one cropped to the other (offset "auto"): on VGG the
// skip's scores (crop "<skip>c") to the upsampled map, on an aligned trunk
// the upsampled map (crop "<upscored>c"), which overhangs the skip's grid by
// f - 1 pixels before and at least as many after, to the skip's scores.
std::string fuse(GraphBuilder& g, const Trunk& trunk, const std::string& name, const std::string& upscored,
                 const std::string& skip) {
  if (trunk.aligned) return g.sum(name, g.crop(upscored + "c", upscored, skip), skip);
  return g.sum(name, upscored, g.crop(skip + "c", skip, upscored));
}

}  // namespace

std::string fcn_skip_head(GraphBuilder& g, const Trunk& trunk, const std::string& arch) {
  const bool at_once = arch == "fcn8s-atonce";
  const std::string score_fr = g.score("score_fr", trunk.stride32);
  if (arch == "fcn32s") return g.crop("score", upsample(g, trunk, "upscore", score_fr, 32), "data");
  const std::string upscore2 = upsample(g, trunk, "upscore2", score_fr, 2);
  // the at-once net scales the skip features so they start out small
  const std::string pool4 = at_once ? g.scale("scale_pool4", trunk.stride16, 0.01) : trunk.stride16;
  const std::string fuse_pool4 = fuse(g, trunk, "fuse_pool4", upscore2, g.score("score_pool4", pool4));
  if (arch == "fcn16s") return g.crop("score", upsample(g, trunk, "upscore16", fuse_pool4, 16), "data");
  if (arch != "fcn8s" && !at_once) throw Error("model.arch: \"" + arch + "\" has no skip head");
  const std::string upscore_pool4 = upsample(g, trunk, "upscore_pool4", fuse_pool4, 2);
  const std::string pool3 = at_once ? g.scale("scale_pool3", trunk.stride8, 0.0001) : trunk.stride8;
  const std::string fuse_pool3 = fuse(g, trunk, "fuse_pool3", upscore_pool4, g.score("score_pool3", pool3));
  return g.crop("score", upsample(g, trunk, "upscore8", fuse_pool3, 8), "data");
}

// conv3x3 (no bias) BN ReLU dropout conv1x1 to the classes, in_channels / 4 wide
std::string fcn_head(GraphBuilder& g, const std::string& prefix, const std::string& input, int64_t in_channels,
                     const std::string& score_name) {
  const std::string p = prefix + ".";
  g.conv_nobias(p + "0", input, std::max<int64_t>(1, in_channels / 4), 3, 1, 1, 1);
  std::string top = g.relu(p + "2", g.batch_norm(p + "1", p + "0"));
  top = g.dropout(p + "3", top, model_dropout(g.spec()));
  top = g.classifier(p + "4", top);
  return g.resize(score_name, top, "data");
}

}  // namespace fcn::zoo
