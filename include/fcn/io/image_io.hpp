#pragma once
// Image and label files. Images decode to 8-bit BGR with OpenCV; label PNGs
// are read with libpng as palette *indices* (OpenCV would expand a palette
// to colours) or as 8-bit grayscale class ids, and written as palette PNGs
// with VOC's colour map. Every unreadable, truncated or unsupported file is
// an Error naming the file. No OpenCV type appears in this header.
#include <cstdint>
#include <string>
#include <vector>

namespace fcn {

// Row-major interleaved 8-bit pixels: 3 channels = BGR, 1 channel = label ids.
struct Image {
  int height = 0;
  int width = 0;
  int channels = 0;
  std::vector<uint8_t> pixels;  // [height, width, channels]

  Image() = default;
  Image(int height, int width, int channels, uint8_t fill = 0);
  bool empty() const { return pixels.empty(); }
  uint8_t* row(int y) { return pixels.data() + static_cast<size_t>(y) * width * channels; }
  const uint8_t* row(int y) const { return pixels.data() + static_cast<size_t>(y) * width * channels; }
  uint8_t& at(int y, int x, int c = 0) { return row(y)[x * channels + c]; }
  uint8_t at(int y, int x, int c = 0) const { return row(y)[x * channels + c]; }
};

struct ImageSize {
  int height = 0;
  int width = 0;
};

// Decodes any image OpenCV reads to 3-channel BGR. A JPEG whose entropy
// data is cut short (which libjpeg only warns about) is rejected too.
Image read_image(const std::string& path);
// Size from the file header only: PNG IHDR (libpng), JPEG SOF marker; other
// formats fall back to a full decode.
ImageSize read_image_size(const std::string& path);

// A label PNG: palette indices, or 8-bit (or 1/2/4-bit) grayscale values,
// as a 1-channel Image. RGB, 16-bit and alpha PNGs are rejected.
Image read_label_png(const std::string& path);
// Width and height from the PNG IHDR chunk.
ImageSize read_png_size(const std::string& path);
// Writes a 1-channel label map as an 8-bit palette PNG with VOC's colours.
void write_label_png(const std::string& path, const Image& label);

// Encodes with OpenCV by extension (.png, .jpg, ...); `jpeg_quality` applies to JPEG.
void write_image(const std::string& path, const Image& image, int jpeg_quality = 95);

// The label map drawn in VOC's colours (BGR).
Image colorize_label(const Image& label);
// `image` blended with the colour mask (void left unblended), with a legend
// panel on the right naming the classes present. `class_names[id]` names id.
Image overlay_label(const Image& image, const Image& label, const std::vector<std::string>& class_names,
                    double alpha = 0.5);

// One row of a sample grid: the image, its ground truth and the prediction.
struct GridRow {
  const Image* image = nullptr;
  const Image* ground_truth = nullptr;  // may be null (drawn blank)
  const Image* prediction = nullptr;
};
// Rows of image | ground truth | prediction side by side, 4 px apart.
Image sample_grid(const std::vector<GridRow>& rows);

}  // namespace fcn
