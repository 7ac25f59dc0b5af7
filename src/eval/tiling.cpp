#include "fcn/eval/tiling.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "fcn/core/error.hpp"
#include "fcn/eval/inference.hpp"
#include "fcn/model/describe.hpp"

namespace fcn {

TileMargins tile_margins(Graph& graph) {
  const GraphSummary summary = describe_graph(graph);
  const std::string score = score_blob_name(graph);
  double stride = 1, field = 1;
  for (const LayerSummary& layer : summary.layers) {
    stride = std::max({stride, layer.stride[0], layer.stride[1]});
    if (layer.name == score) field = std::max(layer.receptive_field[0], layer.receptive_field[1]);
  }
  TileMargins margins;
  margins.stride = std::max<int64_t>(1, std::llround(stride));
  const auto half_field = static_cast<int64_t>(std::ceil(field / 2));
  margins.margin = (half_field + margins.stride - 1) / margins.stride * margins.stride;
  return margins;
}

std::vector<Tile> plan_tiles(int64_t height, int64_t width, int64_t core, const TileMargins& margins) {
  if (core <= 0 || core % margins.stride != 0)
    throw Error("tiles: the core size " + std::to_string(core) + " must be a positive multiple of the stride " +
                std::to_string(margins.stride));
  std::vector<Tile> tiles;
  for (int64_t y = 0; y < height; y += core)
    for (int64_t x = 0; x < width; x += core) {
      Tile t;
      t.core_top = y;
      t.core_left = x;
      t.core_height = std::min(core, height - y);
      t.core_width = std::min(core, width - x);
      t.top = std::max<int64_t>(0, y - margins.margin);
      t.left = std::max<int64_t>(0, x - margins.margin);
      t.height = std::min(height, y + t.core_height + margins.margin) - t.top;
      t.width = std::min(width, x + t.core_width + margins.margin) - t.left;
      tiles.push_back(t);
    }
  return tiles;
}

Tensor crop_tile(const Tensor& image, const Tile& tile) {
  Tensor out({1, image.c(), tile.height, tile.width});
  for (int64_t c = 0; c < image.c(); ++c)
    for (int64_t y = 0; y < tile.height; ++y)
      std::memcpy(out.data() + (c * tile.height + y) * tile.width,
                  image.data() + (c * image.h() + tile.top + y) * image.w() + tile.left,
                  sizeof(float) * static_cast<size_t>(tile.width));
  return out;
}

}  // namespace fcn
