#include "fcn/model/model_zoo.hpp"

#include <cmath>

#include "fcn/core/error.hpp"

namespace fcn {

const std::vector<std::string>& model_archs() {
  static const std::vector<std::string> archs = {"fcn32s", "fcn16s", "fcn8s", "fcn8s-atonce"};
  return archs;
}

int64_t scaled_channels(int64_t channels, double width) {
  return std::max<int64_t>(1, static_cast<int64_t>(std::floor(channels * width + 1e-9)));
}

namespace {

class GraphBuilder {
 public:
  explicit GraphBuilder(const ModelSpec& spec) : spec_(spec) {}

  // conv (+ ReLU): weights 1x lr with decay, biases 2x lr without decay.
  std::string conv(const std::string& name, const std::string& input, int64_t outputs, int64_t kernel, int64_t pad,
                   const json& init) {
    add({{"name", name}, {"type", "conv"}, {"inputs", {input}}, {"num_output", outputs}, {"kernel", kernel},
         {"pad", pad}, {"weight_init", init}, {"lr_mult", 1}, {"decay_mult", 1}, {"bias_lr_mult", 2},
         {"bias_decay_mult", 0}});
    return name;
  }
  std::string conv_relu(const std::string& name, const std::string& input, int64_t outputs, int64_t kernel,
                        int64_t pad) {
    conv(name, input, outputs, kernel, pad, spec_.weight_init);
    const std::string relu = "relu" + name.substr(name.find_first_of("0123456789"));
    add({{"name", relu}, {"type", "relu"}, {"inputs", {name}}});
    return relu;
  }
  std::string pool(const std::string& name, const std::string& input) {
    add({{"name", name}, {"type", "max_pool"}, {"inputs", {input}}, {"kernel", 2}, {"stride", 2},
         {"ceil_mode", true}});
    return name;
  }
  std::string dropout(const std::string& name, const std::string& input) {
    add({{"name", name}, {"type", "dropout"}, {"inputs", {input}}, {"ratio", spec_.dropout}});
    return name;
  }
  // A frozen, bias-free, bilinear upsampling deconv (kernel 2*factor).
  std::string upsample(const std::string& name, const std::string& input, int64_t factor) {
    add({{"name", name}, {"type", "deconv"}, {"inputs", {input}}, {"num_output", spec_.num_classes},
         {"kernel", 2 * factor}, {"stride", factor}, {"bias", false}, {"weight_init", "bilinear"},
         {"lr_mult", 0}, {"decay_mult", 0}});
    return name;
  }
  std::string score(const std::string& name, const std::string& input) {
    return conv(name, input, spec_.num_classes, 1, 0, spec_.score_init);
  }
  std::string crop(const std::string& name, const std::string& input, const std::string& reference) {
    add({{"name", name}, {"type", "crop"}, {"inputs", {input, reference}}, {"offset", "auto"}});
    return name;
  }
  std::string sum(const std::string& name, const std::string& a, const std::string& b) {
    add({{"name", name}, {"type", "sum"}, {"inputs", {a, b}}});
    return name;
  }
  std::string scale(const std::string& name, const std::string& input, double value) {
    add({{"name", name}, {"type", "scale"}, {"inputs", {input}}, {"value", value}});
    return name;
  }
  void loss(const std::string& score_blob) {
    add({{"name", "loss"}, {"type", "softmax_loss"}, {"inputs", {score_blob, "label"}},
         {"ignore_label", spec_.ignore_label}, {"normalize", spec_.normalize}});
  }
  int64_t ch(int64_t channels) const { return scaled_channels(channels, spec_.width); }

  json finish() const {
    return {{"inputs", {{"data", {{"channels", 3}}}, {"label", {{"channels", 1}}}}}, {"layers", layers_}};
  }

 private:
  void add(json layer) { layers_.push_back(std::move(layer)); }
  const ModelSpec& spec_;
  json layers_ = json::array();
};

struct Trunk {
  std::string pool3, pool4, score_fr;
};

// VGG16 with conv1_1 padded by 100 (so the final crop always fits), ceil-mode
// pools, fc6 as a 7x7 conv and fc7 as a 1x1 conv, each with dropout.
Trunk vgg16_trunk(GraphBuilder& g) {
  const int64_t block_channels[5] = {64, 128, 256, 512, 512};
  const int block_convs[5] = {2, 2, 3, 3, 3};
  std::string top = "data";
  Trunk trunk;
  for (int b = 0; b < 5; ++b) {
    for (int i = 0; i < block_convs[b]; ++i) {
      const std::string name = "conv" + std::to_string(b + 1) + "_" + std::to_string(i + 1);
      top = g.conv_relu(name, top, g.ch(block_channels[b]), 3, b == 0 && i == 0 ? 100 : 1);
    }
    top = g.pool("pool" + std::to_string(b + 1), top);
    if (b == 2) trunk.pool3 = top;
    if (b == 3) trunk.pool4 = top;
  }
  top = g.dropout("drop6", g.conv_relu("fc6", top, g.ch(4096), 7, 0));
  top = g.dropout("drop7", g.conv_relu("fc7", top, g.ch(4096), 1, 0));
  trunk.score_fr = g.score("score_fr", top);
  return trunk;
}

}  // namespace

json build_fcn_graph(const ModelSpec& spec) {
  if (spec.num_classes < 1) throw Error("model.num_classes: must be positive");
  GraphBuilder g(spec);
  const Trunk trunk = vgg16_trunk(g);
  const bool at_once = spec.arch == "fcn8s-atonce";
  std::string score;
  if (spec.arch == "fcn32s") {
    score = g.crop("score", g.upsample("upscore", trunk.score_fr, 32), "data");
  } else if (spec.arch == "fcn16s" || spec.arch == "fcn8s" || at_once) {
    const std::string upscore2 = g.upsample("upscore2", trunk.score_fr, 2);
    // the at-once net scales the skip features so they start out small
    const std::string pool4 = at_once ? g.scale("scale_pool4", trunk.pool4, 0.01) : trunk.pool4;
    const std::string pool4c = g.crop("score_pool4c", g.score("score_pool4", pool4), upscore2);
    const std::string fuse_pool4 = g.sum("fuse_pool4", upscore2, pool4c);
    if (spec.arch == "fcn16s") {
      score = g.crop("score", g.upsample("upscore16", fuse_pool4, 16), "data");
    } else {
      const std::string upscore_pool4 = g.upsample("upscore_pool4", fuse_pool4, 2);
      const std::string pool3 = at_once ? g.scale("scale_pool3", trunk.pool3, 0.0001) : trunk.pool3;
      const std::string pool3c = g.crop("score_pool3c", g.score("score_pool3", pool3), upscore_pool4);
      const std::string fuse_pool3 = g.sum("fuse_pool3", upscore_pool4, pool3c);
      score = g.crop("score", g.upsample("upscore8", fuse_pool3, 8), "data");
    }
  } else {
    throw Error("model.arch: unknown architecture \"" + spec.arch + "\"");
  }
  g.loss(score);
  return g.finish();
}

}  // namespace fcn
