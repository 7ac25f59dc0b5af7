#include "fcn/cpu/phase_grid.hpp"

#include <algorithm>
#include <vector>

#include "fcn/core/tensor.hpp"

namespace fcn::cpu {

namespace {

// Below this many grid entries an OpenMP team costs more than it saves.
constexpr int64_t kParallelMinEntries = 1 << 16;

// One axis of the grid, over `images` images laid one after another: pixel
// i of image n sits at grid position offset[n][i mod d] + i / d, with the
// offsets counting each earlier phase image's length + 1 separator; an
// image takes length + d positions, the grid images * (length + d) - 1.
struct GridAxis {
  int64_t length;
  std::vector<int64_t> position;  // [n * length + i]: grid position of pixel i of image n
  std::vector<int64_t> source;    // n * length + i of each grid position, -1 on a separator

  GridAxis(int64_t length, int64_t dilation, int64_t images)
      : length(length), position(images * length), source(images * (length + dilation) - 1, -1) {
    int64_t offset = 0;
    for (int64_t n = 0; n < images; ++n)
      for (int64_t phase = 0; phase < dilation; ++phase) {
        const int64_t phase_length = (length - phase + dilation - 1) / dilation;  // ceil((length - phase) / d)
        for (int64_t k = 0; k < phase_length; ++k) {
          const int64_t pixel = n * length + phase + k * dilation;
          position[pixel] = offset + k;
          source[offset + k] = pixel;
        }
        offset += phase_length + 1;
      }
  }
  int64_t grid_length() const { return static_cast<int64_t>(source.size()); }
};

// The images stacked down the rows (each image's phase rows, then the next
// image's), their phase columns across.
struct GridLayout {
  GridAxis rows, cols;
  int64_t images, height, width;  // of the image (or output) planes
  int64_t grid_h, grid_w;
  GridLayout(const ConvGeometry& g, int64_t batch)
      : rows(g.height, g.dilation_h, batch), cols(g.width, g.dilation_w, 1), images(batch), height(g.height),
        width(g.width), grid_h(rows.grid_length()), grid_w(cols.grid_length()) {}
  int64_t plane() const { return grid_h * grid_w; }
};

// grid[c] = channel c of every image laid out as phase images, zeros on the
// separators (planes: [images, channels, H, W]; grid: [channels, grid H, grid W]).
void to_grid(const GridLayout& layout, int64_t channels, const float* planes, float* grid) {
#pragma omp parallel for schedule(static) if (channels * layout.plane() >= kParallelMinEntries)
  for (int64_t c = 0; c < channels; ++c) {
    for (int64_t r = 0; r < layout.grid_h; ++r) {
      float* dst = grid + (c * layout.grid_h + r) * layout.grid_w;
      const int64_t row = layout.rows.source[r];  // n * H + y
      if (row < 0) {
        std::fill_n(dst, layout.grid_w, 0.f);
        continue;
      }
      const int64_t n = row / layout.height, y = row % layout.height;
      const float* src = planes + ((n * channels + c) * layout.height + y) * layout.width;
      for (int64_t q = 0; q < layout.grid_w; ++q) {
        const int64_t x = layout.cols.source[q];
        dst[q] = x < 0 ? 0.f : src[x];
      }
    }
  }
}

// planes = the phase images of the grid put back in place (separators dropped).
void from_grid(const GridLayout& layout, int64_t channels, const float* grid, float* planes) {
#pragma omp parallel for schedule(static) if (channels * layout.plane() >= kParallelMinEntries)
  for (int64_t c = 0; c < channels; ++c) {
    for (int64_t n = 0; n < layout.images; ++n)
      for (int64_t y = 0; y < layout.height; ++y) {
        const float* src = grid + (c * layout.grid_h + layout.rows.position[n * layout.height + y]) * layout.grid_w;
        float* dst = planes + ((n * channels + c) * layout.height + y) * layout.width;
        for (int64_t x = 0; x < layout.width; ++x) dst[x] = src[layout.cols.position[x]];
      }
  }
}

// The grids of this thread: slot 0 on the image side, slot 1 on the output side.
float* grid_workspace(int slot, int64_t numel) {
  thread_local Tensor buffers[2];
  Tensor& t = buffers[slot];
  if (t.numel() < numel) t.reshape({numel});
  return t.data();
}

}  // namespace

bool phase_grid_applies(const ConvGeometry& g, int64_t batch) {
  return g.kernel_h == 3 && g.kernel_w == 3 && g.stride_h == 1 && g.stride_w == 1 && g.groups == 1 &&
         (g.dilation_h > 1 || g.dilation_w > 1 || batch > 1) && g.pad_h == g.dilation_h &&
         g.pad_w == g.dilation_w && g.out_h == g.height && g.out_w == g.width;
}

ConvGeometry phase_grid_geometry(const ConvGeometry& g, int64_t batch) {
  ConvGeometry grid = g;
  grid.height = grid.out_h = batch * (g.height + g.dilation_h) - 1;
  grid.width = grid.out_w = g.width + g.dilation_w - 1;
  grid.dilation_h = grid.dilation_w = 1;
  grid.pad_h = grid.pad_w = 1;
  return grid;
}

bool phase_grid_pays(const ConvGeometry& g, int tile, int64_t batch) {
  return phase_grid_applies(g, batch) && winograd_pays(phase_grid_geometry(g, batch), tile);
}

int64_t phase_grid_scratch_floats(const ConvGeometry& g, int64_t batch) {
  const ConvGeometry grid = phase_grid_geometry(g, batch);
  return grid.image_numel() + grid.output_numel() + winograd_scratch_floats(grid);
}

void phase_grid_forward(const ConvGeometry& g, int64_t batch, const float* weight, const float* images, float beta,
                        float* outputs, const float* bias, bool rectify, int tile) {
  const ConvGeometry grid = phase_grid_geometry(g, batch);
  const GridLayout layout(g, batch);
  float* image_grid = grid_workspace(0, grid.image_numel());
  float* output_grid = grid_workspace(1, grid.output_numel());
  to_grid(layout, g.channels, images, image_grid);
  if (beta != 0.f) to_grid(layout, g.out_channels, outputs, output_grid);
  winograd_forward(grid, weight, image_grid, beta, output_grid, bias, rectify, tile);
  from_grid(layout, g.out_channels, output_grid, outputs);
}

void phase_grid_backward_data(const ConvGeometry& g, int64_t batch, const float* weight, const float* output_grads,
                              float* image_grads, int tile) {
  const ConvGeometry grid = phase_grid_geometry(g, batch);
  const GridLayout layout(g, batch);
  float* image_grid = grid_workspace(0, grid.image_numel());
  float* output_grid = grid_workspace(1, grid.output_numel());
  to_grid(layout, g.out_channels, output_grads, output_grid);
  to_grid(layout, g.channels, image_grads, image_grid);  // accumulates into what is there
  winograd_backward_data(grid, weight, output_grid, image_grid, tile);
  from_grid(layout, g.channels, image_grid, image_grads);
}

void phase_grid_backward_weight(const ConvGeometry& g, int64_t batch, const float* images, const float* output_grads,
                                float* weight_grad, int tile) {
  const ConvGeometry grid = phase_grid_geometry(g, batch);
  const GridLayout layout(g, batch);
  float* image_grid = grid_workspace(0, grid.image_numel());
  float* output_grid = grid_workspace(1, grid.output_numel());
  to_grid(layout, g.channels, images, image_grid);
  to_grid(layout, g.out_channels, output_grads, output_grid);  // zero on the separators: they add nothing
  winograd_backward_weight(grid, image_grid, output_grid, weight_grad, tile);
}

}  // namespace fcn::cpu
