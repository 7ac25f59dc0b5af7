// The VGG16 trunk of the paper's nets (voc-fcn*/net.py).
#include "graph_builder.hpp"

namespace fcn::zoo {

// VGG16 with conv1_1 padded by 100 (so the final crop always fits), ceil-mode
// 2x2 pools, fc6 as a 7x7 conv and fc7 as a 1x1 conv, each with dropout.
Trunk vgg16_trunk(GraphBuilder& g) {
  const int64_t block_channels[5] = {64, 128, 256, 512, 512};
  const int block_convs[5] = {2, 2, 3, 3, 3};
  const double dropout = model_dropout(g.spec());
  std::string top = "data";
  Trunk trunk;
  for (int b = 0; b < 5; ++b) {
    for (int i = 0; i < block_convs[b]; ++i) {
      const std::string name = "conv" + std::to_string(b + 1) + "_" + std::to_string(i + 1);
      top = g.conv_relu(name, top, g.ch(block_channels[b]), 3, b == 0 && i == 0 ? 100 : 1);
    }
    top = g.max_pool("pool" + std::to_string(b + 1), top, 2, 2, 0, true);
    if (b == 2) trunk.stride8 = top;
    if (b == 3) trunk.stride16 = top;
  }
  top = g.dropout("drop6", g.conv_relu("fc6", top, g.ch(4096), 7, 0), dropout);
  trunk.stride32 = g.dropout("drop7", g.conv_relu("fc7", top, g.ch(4096), 1, 0), dropout);
  trunk.aligned = false;
  return trunk;
}

}  // namespace fcn::zoo
