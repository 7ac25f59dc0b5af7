#pragma once
// Inference on overlapping tiles, for images whose whole-image pass would not
// fit in memory. The cores of the tiles partition the image; each tile is its
// core grown by a margin of at least half the score's receptive field, so
// every score pixel is computed from the same input pixels as in a
// whole-image pass (and, with tile corners on multiples of the net's coarsest
// stride, on the same sampling grid): each output pixel comes from the tile
// where it lies at least `margin` from a tile edge.
#include <cstdint>
#include <vector>

#include "fcn/core/tensor.hpp"
#include "fcn/graph/graph.hpp"

namespace fcn {

struct TileMargins {
  int64_t stride = 1;  // the coarsest stride of any blob: tile corners lie on its multiples
  int64_t margin = 0;  // half the score blob's receptive field, rounded up to the stride
};

// From a reshaped graph (describe_graph's strides and receptive fields).
TileMargins tile_margins(Graph& graph);

struct Tile {
  int64_t top = 0, left = 0, height = 0, width = 0;                     // the input the net runs on
  int64_t core_top = 0, core_left = 0, core_height = 0, core_width = 0;  // the output taken from it
};

// Cores of core x core pixels (a multiple of margins.stride, the last row and
// column smaller) cover height x width; tiles are the cores grown by the
// margin, clipped to the image.
std::vector<Tile> plan_tiles(int64_t height, int64_t width, int64_t core, const TileMargins& margins);

// The tile's input rectangle of an image [1, C, H, W].
Tensor crop_tile(const Tensor& image, const Tile& tile);

}  // namespace fcn
