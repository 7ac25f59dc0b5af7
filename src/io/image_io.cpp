#include "fcn/io/image_io.hpp"

#include <png.h>

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "fcn/core/error.hpp"
#include "fcn/io/palette.hpp"

namespace fcn {

Image::Image(int height, int width, int channels, uint8_t fill)
    : height(height), width(width), channels(channels),
      pixels(static_cast<size_t>(height) * width * channels, fill) {}

namespace {

// ---- OpenCV views -----------------------------------------------------

cv::Mat as_mat(const Image& image) {
  return cv::Mat(image.height, image.width, CV_8UC(image.channels), const_cast<uint8_t*>(image.pixels.data()));
}

Image from_mat(const cv::Mat& mat) {
  Image image(mat.rows, mat.cols, mat.channels());
  mat.copyTo(as_mat(image));
  return image;
}

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open file");
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// ---- libpng -------------------------------------------------------------
// libpng reports errors through a callback that must not return; it leaves
// with png_longjmp back to the setjmp in the calling phase. The phases below
// hold no object with a destructor between setjmp and any libpng call, so
// the jump skips nothing; resources are freed by PngReader's destructor in
// the caller's frame.

struct PngErrorSink {
  char message[256] = "";
};

void on_png_error(png_structp png, png_const_charp message) {
  auto* sink = static_cast<PngErrorSink*>(png_get_error_ptr(png));
  std::snprintf(sink->message, sizeof(sink->message), "%s", message);
  png_longjmp(png, 1);
}

void on_png_warning(png_structp, png_const_charp) {}

struct PngHeader {
  png_uint_32 width = 0, height = 0;
  int bit_depth = 0, color_type = 0;
};

class PngReader {
 public:
  explicit PngReader(const std::string& path) : path_(path) {
    file_ = std::fopen(path.c_str(), "rb");
    if (!file_) throw Error(path + ": cannot open file");
    png_ = png_create_read_struct(PNG_LIBPNG_VER_STRING, &sink_, on_png_error, on_png_warning);
    if (png_) info_ = png_create_info_struct(png_);
    if (!png_ || !info_) throw Error(path + ": out of memory in libpng");
  }
  ~PngReader() {
    png_destroy_read_struct(&png_, &info_, nullptr);
    std::fclose(file_);
  }
  PngReader(const PngReader&) = delete;
  PngReader& operator=(const PngReader&) = delete;

  PngHeader header() {
    PngHeader h;
    if (!read_header(h)) fail();
    return h;
  }
  // Reads the pixels as one byte each (indices or gray values, unscaled).
  void read_bytes(Image& out) {
    std::vector<png_bytep> rows(out.height);
    for (int y = 0; y < out.height; ++y) rows[y] = out.row(y);
    if (!read_rows(rows.data(), out.width)) fail();
  }

 private:
  bool read_header(PngHeader& h) {
    unsigned char signature[8];
    if (std::fread(signature, 1, 8, file_) != 8 || png_sig_cmp(signature, 0, 8) != 0) {
      std::snprintf(sink_.message, sizeof(sink_.message), "not a PNG file");
      return false;
    }
    if (setjmp(png_jmpbuf(png_))) return false;
    png_init_io(png_, file_);
    png_set_sig_bytes(png_, 8);
    png_read_info(png_, info_);
    h.width = png_get_image_width(png_, info_);
    h.height = png_get_image_height(png_, info_);
    h.bit_depth = png_get_bit_depth(png_, info_);
    h.color_type = png_get_color_type(png_, info_);
    return true;
  }
  bool read_rows(png_bytepp rows, int width) {
    if (setjmp(png_jmpbuf(png_))) return false;
    png_set_packing(png_);  // 1/2/4-bit samples -> one byte each, values kept
    png_set_interlace_handling(png_);
    png_read_update_info(png_, info_);
    if (png_get_rowbytes(png_, info_) != static_cast<size_t>(width)) {
      std::snprintf(sink_.message, sizeof(sink_.message), "unexpected row size");
      return false;
    }
    png_read_image(png_, rows);
    png_read_end(png_, nullptr);  // checks the chunks after the pixels: catches truncation
    return true;
  }
  [[noreturn]] void fail() const { throw Error(path_ + ": invalid PNG (" + sink_.message + ")"); }

  std::string path_;
  std::FILE* file_ = nullptr;
  png_structp png_ = nullptr;
  png_infop info_ = nullptr;
  PngErrorSink sink_;
};

class PngWriter {
 public:
  explicit PngWriter(const std::string& path) : path_(path) {
    file_ = std::fopen(path.c_str(), "wb");
    if (!file_) throw Error(path + ": cannot create file");
    png_ = png_create_write_struct(PNG_LIBPNG_VER_STRING, &sink_, on_png_error, on_png_warning);
    if (png_) info_ = png_create_info_struct(png_);
    if (!png_ || !info_) throw Error(path + ": out of memory in libpng");
  }
  ~PngWriter() {
    png_destroy_write_struct(&png_, &info_);
    if (file_) std::fclose(file_);
  }
  PngWriter(const PngWriter&) = delete;
  PngWriter& operator=(const PngWriter&) = delete;

  void write_palette_image(const Image& label, const std::vector<png_color>& palette) {
    std::vector<png_bytep> rows(label.height);
    for (int y = 0; y < label.height; ++y) rows[y] = const_cast<png_bytep>(label.row(y));
    if (!write(label.width, label.height, rows.data(), palette)) throw Error(path_ + ": " + sink_.message);
    const int closed = std::fclose(file_);
    file_ = nullptr;
    if (closed != 0) throw Error(path_ + ": write failed");
  }

 private:
  bool write(int width, int height, png_bytepp rows, const std::vector<png_color>& palette) {
    if (setjmp(png_jmpbuf(png_))) return false;
    png_init_io(png_, file_);
    png_set_IHDR(png_, info_, width, height, 8, PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_PLTE(png_, info_, palette.data(), static_cast<int>(palette.size()));
    png_write_info(png_, info_);
    png_write_image(png_, rows);
    png_write_end(png_, nullptr);
    return true;
  }

  std::string path_;
  std::FILE* file_ = nullptr;
  png_structp png_ = nullptr;
  png_infop info_ = nullptr;
  PngErrorSink sink_;
};

// ---- JPEG markers ---------------------------------------------------------
// OpenCV has no header-only size query, so the JPEG SOF segment is found by
// walking the marker segments (ITU T.81 B.1.1): FF xx, then a 2-byte
// big-endian length for all markers but SOI/EOI/RSTn/TEM.

bool is_jpeg(const std::vector<uint8_t>& head) { return head.size() >= 2 && head[0] == 0xFF && head[1] == 0xD8; }

bool is_sof_marker(int m) { return m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC; }

ImageSize read_jpeg_size(const std::string& path, std::ifstream& in) {
  auto byte = [&]() {
    const int c = in.get();
    if (c == EOF) throw Error(path + ": truncated JPEG header");
    return c;
  };
  in.seekg(2);
  for (;;) {
    if (byte() != 0xFF) throw Error(path + ": invalid JPEG marker");
    int marker = byte();
    while (marker == 0xFF) marker = byte();  // fill bytes
    if (marker == 0xD8 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;
    if (marker == 0xDA || marker == 0xD9) throw Error(path + ": JPEG has no frame header");
    const int length = (byte() << 8) | byte();
    if (length < 2) throw Error(path + ": invalid JPEG segment length");
    if (is_sof_marker(marker)) {
      byte();  // sample precision
      ImageSize size;
      size.height = (byte() << 8) | byte();
      size.width = (byte() << 8) | byte();
      if (size.height == 0 || size.width == 0) throw Error(path + ": JPEG frame header has zero size");
      return size;
    }
    in.seekg(length - 2, std::ios::cur);
  }
}

// In entropy-coded data FF is always followed by 00 or RSTn, so a complete
// JPEG has an EOI (FF D9) after its last start-of-scan (FF DA); a thumbnail's
// EOI inside APP1 comes before the main scan and does not count.
bool jpeg_is_complete(const std::vector<uint8_t>& bytes) {
  size_t last_sos = 0, last_eoi = 0;
  for (size_t i = 0; i + 1 < bytes.size(); ++i) {
    if (bytes[i] != 0xFF) continue;
    if (bytes[i + 1] == 0xDA) last_sos = i;
    if (bytes[i + 1] == 0xD9) last_eoi = i;
  }
  return last_eoi > last_sos;
}

}  // namespace

// ---- images -----------------------------------------------------------------

Image read_image(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  if (bytes.empty()) throw Error(path + ": empty file");
  if (is_jpeg(bytes) && !jpeg_is_complete(bytes)) throw Error(path + ": truncated JPEG (no end-of-image marker)");
  cv::Mat mat;
  try {
    // labels are not rotated, so neither are images: ignore EXIF orientation
    mat = cv::imdecode(bytes, cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
  } catch (const cv::Exception& e) {
    throw Error(path + ": cannot decode image (" + e.msg + ")");
  }
  if (mat.empty()) throw Error(path + ": cannot decode image (corrupt or unsupported format)");
  return from_mat(mat);
}

ImageSize read_image_size(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open file");
  std::vector<uint8_t> head(8, 0);
  in.read(reinterpret_cast<char*>(head.data()), 8);
  head.resize(static_cast<size_t>(in.gcount()));
  if (head.size() == 8 && png_sig_cmp(head.data(), 0, 8) == 0) return read_png_size(path);
  if (is_jpeg(head)) {
    in.clear();
    return read_jpeg_size(path, in);
  }
  const Image image = read_image(path);
  return {image.height, image.width};
}

void write_image(const std::string& path, const Image& image, int jpeg_quality) {
  std::vector<uint8_t> bytes;
  try {
    const std::string ext = path.substr(std::min(path.size(), path.rfind('.')));
    if (ext.empty()) throw Error(path + ": no file extension to choose an image format");
    if (!cv::imencode(ext, as_mat(image), bytes, {cv::IMWRITE_JPEG_QUALITY, jpeg_quality}))
      throw Error(path + ": cannot encode image");
  } catch (const cv::Exception& e) {
    throw Error(path + ": cannot encode image (" + e.msg + ")");
  }
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) throw Error(path + ": write failed");
}

// ---- labels -----------------------------------------------------------------

ImageSize read_png_size(const std::string& path) {
  PngReader reader(path);
  const PngHeader h = reader.header();
  return {static_cast<int>(h.height), static_cast<int>(h.width)};
}

Image read_label_png(const std::string& path) {
  PngReader reader(path);
  const PngHeader h = reader.header();
  const bool indexed = h.color_type == PNG_COLOR_TYPE_PALETTE;
  const bool gray = h.color_type == PNG_COLOR_TYPE_GRAY && h.bit_depth <= 8;
  if (!indexed && !gray)
    throw Error(path + ": label PNG must be indexed (palette) or 8-bit grayscale, got " +
                (h.color_type == PNG_COLOR_TYPE_GRAY ? std::to_string(h.bit_depth) + "-bit grayscale"
                 : h.color_type == PNG_COLOR_TYPE_RGB ? std::string("RGB")
                                                      : std::string("a colour type with alpha")));
  if (h.width > 1u << 15 || h.height > 1u << 15) throw Error(path + ": label PNG larger than 32768 pixels");
  Image label(static_cast<int>(h.height), static_cast<int>(h.width), 1);
  reader.read_bytes(label);
  return label;
}

void write_label_png(const std::string& path, const Image& label) {
  if (label.channels != 1) throw Error(path + ": a label map has 1 channel, got " + std::to_string(label.channels));
  std::vector<png_color> palette;
  for (const Rgb& c : voc_palette()) palette.push_back({c[0], c[1], c[2]});
  PngWriter(path).write_palette_image(label, palette);
}

// ---- drawing ----------------------------------------------------------------

Image colorize_label(const Image& label) {
  Image out(label.height, label.width, 3);
  const auto& palette = voc_palette();
  for (size_t i = 0; i < label.pixels.size(); ++i) {
    const Rgb& c = palette[label.pixels[i]];
    out.pixels[3 * i + 0] = c[2];
    out.pixels[3 * i + 1] = c[1];
    out.pixels[3 * i + 2] = c[0];
  }
  return out;
}

namespace {

constexpr int kLegendRow = 16;
constexpr int kSwatch = 12;
constexpr double kFontScale = 0.4;

cv::Mat legend_panel(const std::vector<int>& ids, const std::vector<std::string>& class_names, int min_height) {
  std::vector<std::string> names;
  int text_width = 0;
  for (int id : ids) {
    names.push_back(id < static_cast<int>(class_names.size()) ? class_names[id] : "class " + std::to_string(id));
    int baseline = 0;
    text_width = std::max(text_width, cv::getTextSize(names.back(), cv::FONT_HERSHEY_SIMPLEX, kFontScale, 1,
                                                      &baseline).width);
  }
  const int height = std::max(min_height, static_cast<int>(ids.size()) * kLegendRow + 4);
  cv::Mat panel(height, text_width + kSwatch + 12, CV_8UC3, cv::Scalar(255, 255, 255));
  for (size_t i = 0; i < ids.size(); ++i) {
    const Rgb& c = voc_palette()[ids[i]];
    const int top = 4 + static_cast<int>(i) * kLegendRow;
    cv::rectangle(panel, cv::Rect(4, top, kSwatch, kSwatch), cv::Scalar(c[2], c[1], c[0]), cv::FILLED);
    cv::putText(panel, names[i], cv::Point(kSwatch + 8, top + kSwatch - 2), cv::FONT_HERSHEY_SIMPLEX, kFontScale,
                cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
  }
  return panel;
}

}  // namespace

Image overlay_label(const Image& image, const Image& label, const std::vector<std::string>& class_names,
                    double alpha) {
  if (image.channels != 3 || label.channels != 1) throw Error("overlay: expected a BGR image and a 1-channel label map");
  if (image.height != label.height || image.width != label.width)
    throw Error("overlay: label is " + std::to_string(label.width) + "x" + std::to_string(label.height) +
                " but its image is " + std::to_string(image.width) + "x" + std::to_string(image.height));
  const Image colours = colorize_label(label);
  Image blended = image;
  std::vector<bool> present(256, false);
  for (size_t i = 0; i < label.pixels.size(); ++i) {
    const uint8_t id = label.pixels[i];
    if (id == 255) continue;  // void stays as the image
    present[id] = true;
    for (int c = 0; c < 3; ++c) {
      const double v = (1 - alpha) * image.pixels[3 * i + c] + alpha * colours.pixels[3 * i + c];
      blended.pixels[3 * i + c] = static_cast<uint8_t>(std::lround(v));
    }
  }
  std::vector<int> ids;
  for (int id = 0; id < 255; ++id)
    if (present[id]) ids.push_back(id);
  const cv::Mat panel = legend_panel(ids, class_names, image.height);
  cv::Mat canvas(panel.rows, image.width + panel.cols, CV_8UC3, cv::Scalar(255, 255, 255));
  as_mat(blended).copyTo(canvas(cv::Rect(0, 0, image.width, image.height)));
  panel.copyTo(canvas(cv::Rect(image.width, 0, panel.cols, panel.rows)));
  return from_mat(canvas);
}

Image sample_grid(const std::vector<GridRow>& rows) {
  constexpr int gap = 4;
  int cell_width = 1, total_height = gap;
  for (const GridRow& r : rows) {
    if (!r.image || r.image->channels != 3) throw Error("sample grid: a row has no BGR image");
    for (const Image* label : {r.ground_truth, r.prediction})
      if (label && (label->channels != 1 || label->height != r.image->height || label->width != r.image->width))
        throw Error("sample grid: a label map does not match its image's size");
    cell_width = std::max(cell_width, r.image->width);
    total_height += r.image->height + gap;
  }
  cv::Mat canvas(total_height, gap + 3 * (cell_width + gap), CV_8UC3, cv::Scalar(255, 255, 255));
  int top = gap;
  for (const GridRow& r : rows) {
    const Image* labels[2] = {r.ground_truth, r.prediction};
    as_mat(*r.image).copyTo(canvas(cv::Rect(gap, top, r.image->width, r.image->height)));
    for (int k = 0; k < 2; ++k) {
      if (!labels[k]) continue;
      const Image colours = colorize_label(*labels[k]);
      const int left = gap + (k + 1) * (cell_width + gap);
      as_mat(colours).copyTo(canvas(cv::Rect(left, top, colours.width, colours.height)));
    }
    top += r.image->height + gap;
  }
  return from_mat(canvas);
}

}  // namespace fcn
