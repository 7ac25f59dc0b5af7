// fcn explain deconv: what a deconvolution layer does, shown with numbers
// computed by fcn's own layers (src/explain/explain.cpp); this file only prints.
#include <cmath>
#include <cstdio>

#include <fmt/format.h>

#include "cli/commands.hpp"
#include "fcn/core/error.hpp"
#include "fcn/explain/explain.hpp"

namespace fcn::cli {

namespace {

const std::vector<std::string> kTopics = {"deconv"};

struct ExplainArgs {
  std::string topic;
  std::string out_dir;
};

// %g, with float round-off next to zero shown as 0.
std::string num(double v) { return fmt::format("{:g}", std::fabs(v) < 5e-7 ? 0.0 : v); }

void print_grid(const Grid& g, const std::string& indent = "    ") {
  std::vector<std::string> cells;
  size_t width = 0;
  for (double v : g.values) {
    cells.push_back(num(v));
    width = std::max(width, cells.back().size());
  }
  for (int64_t r = 0; r < g.rows; ++r) {
    std::string line = indent;
    for (int64_t c = 0; c < g.cols; ++c) line += fmt::format("{:>{}}", cells[r * g.cols + c], width + (c ? 1 : 0));
    std::printf("%s\n", line.c_str());
  }
}

void print_titled(const std::string& title, const Grid& g) {
  std::printf("  %s\n", title.c_str());
  print_grid(g);
}

std::string row_str(const std::vector<double>& values) {
  std::string out;
  for (double v : values) out += (out.empty() ? "" : " ") + num(v);
  return out;
}

std::string size_str(const Grid& g) { return fmt::format("{}x{}", g.rows, g.cols); }

std::string same(double max_diff) {
  return max_diff < 1e-5 ? fmt::format("equal (max |difference| {})", num(max_diff))
                          : fmt::format("DIFFERENT (max |difference| {})", num(max_diff));
}

// "p/32 + 2.609375": where a data-layer point p lands (one axis; FCN's are square).
std::string map_str(const CoordMap& m) {
  const double a = m.scale[0], b = m.shift[0];
  auto exact = [](double v) { return fmt::format("{:.10g}", v); };
  std::string out = a == 1 ? "p" : a > 1 ? exact(a) + "p" : "p/" + exact(1 / a);
  if (b != 0) out += (b > 0 ? " + " : " - ") + exact(std::fabs(b));
  return out;
}

void print_conv_matrix(const ConvAsMatrix& r, bool show_vectors) {
  std::printf("\n stride %lld, pad %lld: 4x4 -> %lldx%lld, so C is %lldx%lld\n", static_cast<long long>(r.stride),
              static_cast<long long>(r.pad), static_cast<long long>(r.output_size),
              static_cast<long long>(r.output_size), static_cast<long long>(r.matrix.rows),
              static_cast<long long>(r.matrix.cols));
  print_grid(r.matrix);
  const Grid ct = transpose(r.matrix);
  std::printf("  deconv layer, same weights, on the %lld unit images of the %lldx%lld side: C^T, %s\n",
              static_cast<long long>(r.matrix.rows), static_cast<long long>(r.output_size),
              static_cast<long long>(r.output_size), same(max_abs_diff(r.deconv_matrix, ct)).c_str());
  std::printf("  conv layer's backward pass on the same unit gradients:        C^T, %s\n",
              same(max_abs_diff(r.conv_backward_matrix, ct)).c_str());
  if (r.output_padding > 0)
    std::printf("  (the deconv needs output_padding %lld: this conv maps a %lldx%lld input to the same size)\n",
                static_cast<long long>(r.output_padding), static_cast<long long>(r.input_size - r.output_padding),
                static_cast<long long>(r.input_size - r.output_padding));
  if (show_vectors) {
    std::printf("  x   = %s\n  Cx  = %s   (conv layer)\n", row_str(r.x.values).c_str(), row_str(r.cx.values).c_str());
    std::printf("  y   = %s\n  C^Ty= %s   (deconv layer)\n", row_str(r.y.values).c_str(),
                row_str(r.cty.values).c_str());
  }
  std::printf("  adjoint identity, random x and y: <Cx, y> = %s, <x, C^T y> = %s\n", num(r.cx_dot_y).c_str(),
              num(r.x_dot_cty).c_str());
}

void print_section1() {
  std::printf(
      "1. Convolution is a matrix; deconvolution multiplies by its transpose\n"
      "The conv layer is linear, so on a 4x4 image it is a matrix C: column j of C is the\n"
      "layer's output for the unit image e_j (1 at pixel j, row by row, 0 elsewhere).\n");
  print_titled("kernel w (both layers):", conv_as_matrix(1, 0).weights);
  print_conv_matrix(conv_as_matrix(1, 0), true);
  print_conv_matrix(conv_as_matrix(2, 0), false);
  print_conv_matrix(conv_as_matrix(2, 1), false);
}

void print_views(const TransposedViews& v, bool show_steps) {
  if (show_steps) {
    print_titled("input x:", v.input);
    print_titled("(a) scatter: each input pixel adds the kernel times its value at (i*s - p, j*s - p):", v.scatter);
    print_titled(fmt::format("(b) zero-insertion: s-1 = {} zero(s) between neighbours, k-1-p = {} around the border:",
                             v.stride - 1, v.weights.rows - 1 - v.pad),
                 v.zero_inserted);
    print_titled("    then the conv layer, stride 1, with the kernel rotated 180 degrees:", v.flipped);
    print_titled("    gives:", v.gathered);
  }
  std::printf("  stride %lld, pad %lld: scatter vs zero-insertion+conv: %s\n", static_cast<long long>(v.stride),
              static_cast<long long>(v.pad), same(max_abs_diff(v.scatter, v.gathered)).c_str());
  std::printf("  stride %lld, pad %lld: scatter vs the deconv layer:      %s\n", static_cast<long long>(v.stride),
              static_cast<long long>(v.pad), same(max_abs_diff(v.scatter, v.layer)).c_str());
}

void print_section2() {
  std::printf(
      "\n2. Two views of transposed convolution, both equal to the deconv layer\n"
      "Kernel w as above (it is not symmetric, so the flip matters).\n");
  const Grid w = conv_as_matrix(1, 0).weights;
  const Grid x = Grid::from_rows({{1, 2}, {3, 4}});
  print_views(transposed_views(x, w, 2, 0), true);
  print_views(transposed_views(x, w, 2, 1), false);
  print_views(transposed_views(x, w, 3, 2), false);
}

void print_section3() {
  const WorkedExample r = worked_example();
  std::printf("\n3. Worked example: x = [[1,2],[3,4]], 3x3 kernel of ones, stride 2\n");
  print_titled("the deconv layer, pad 0: the full 5x5 result (overlaps add: 1+2 = 3, 1+2+3+4 = 10):", r.full);
  print_titled("a \"same\"-padded framework returns 2*2 = 4x4 and keeps the top-left (the crop layer, offset 0):",
               r.top_left);
  print_titled("PyTorch's padding=1, output_padding=1 also gives 4x4, but drops the first row and column:", r.padded);
}

void print_section4() {
  const BilinearUpsampling r = bilinear_upsampling();
  std::printf(
      "\n4. Bilinear upsampling is a deconv with a fixed kernel\n"
      "FCN initialises every upsampling deconv as bilinear (weight_init \"bilinear\", surgery.upsample_filt):\n"
      "factor = (k+1)/2 = %s, center = factor - 0.5 = %s (k even; factor - 1 when odd),\n"
      "f(i,j) = (1 - |i-center|/factor) * (1 - |j-center|/factor).\n",
      num(r.factor).c_str(), num(r.center).c_str());
  print_titled(fmt::format("the deconv layer's weight, kernel {}, stride {}:", r.kernel, r.stride), r.layer_kernel);
  std::printf("  the formula: %s\n", same(max_abs_diff(r.layer_kernel, r.formula_kernel)).c_str());
  std::printf(
      "It upsamples by zero-insertion (not by repeating pixels) followed by a convolution with that kernel.\n");
  print_titled("a ramp x (4x4), x[i][j] = 10i + j:", r.views.input);
  print_titled(fmt::format("the deconv layer, pad {} ({}):", r.pad, size_str(r.views.layer)), r.views.layer);
  std::printf("  zero-insertion + conv layer with the kernel: %s\n",
              same(max_abs_diff(r.views.gathered, r.views.layer)).c_str());
  std::printf("  output o sits at input coordinate (the layer's coord map): %s\n", row_str(r.positions).c_str());
  print_titled("bilinear interpolation at those half-pixel positions (align_corners=False, edges clamped):",
               r.interpolated);
  std::printf(
      "  rows/cols %lld..%lld (positions inside the input): %s; at the border the deconv\n"
      "  sees zeros beyond the edge where interpolation clamps. FCN crops those borders away.\n",
      static_cast<long long>(r.interior_begin), static_cast<long long>(r.interior_end - 1),
      same(r.interior_max_diff).c_str());
}

void print_section5(const std::string& out_dir) {
  const Checkerboard board = checkerboard();
  std::printf(
      "\n5. Checkerboard artifacts: how many kernel taps reach each output pixel\n"
      "The deconv layer with all-ones weights on a %lldx%lld all-ones input counts them.\n",
      static_cast<long long>(board.input_size), static_cast<long long>(board.input_size));
  for (const OverlapCase& c : board.cases) {
    const bool even = c.kernel % c.stride == 0;
    std::printf("\n kernel %lld, stride %lld (%s): one row: %s\n", static_cast<long long>(c.kernel),
                static_cast<long long>(c.stride),
                even ? "k divisible by s: even overlap away from the borders" : "uneven: 1 and 2 alternate",
                row_str(c.axis_counts).c_str());
    print_titled("counts (the 2-D map is the product of the rows' and columns' counts):", c.counts);
    print_titled("a random smooth (learned-looking) kernel on the same constant input, one output per phase:",
                 c.learned_phases);
  }
  std::printf(
      "  each phase (output index mod stride) sums a different subset of the taps, so a learned kernel\n"
      "  checkers even when the overlap is even.\n");
  print_titled("the bilinear k4s2 kernel on the constant input, same block (each phase's taps sum to 1):",
               board.bilinear_phases);
  std::printf(
      "FCN avoids the artifacts: every upsampling deconv has kernel = 2 x stride (4/2, 32/16, 16/8, 64/32),\n"
      "so overlaps are even, and is bilinear and frozen (lr_mult 0), so all phases weigh the same.\n");
  if (out_dir.empty()) {
    std::printf("(--out DIR draws these maps as PNGs)\n");
    return;
  }
  for (const std::string& path : write_checkerboard_pictures(board, out_dir)) std::printf("wrote %s\n", path.c_str());
}

void print_pad_trials() {
  std::printf(
      "\n6. The FCN numbers\n"
      "Why conv1_1 pads 100: fc6 is a 7x7 convolution without padding on pool5 (1/32 of the input),\n"
      "so it needs pool5 >= 7, and it shrinks the map by 6 cells = 192 input pixels. FCN-32s through the\n"
      "zoo graph (heights; 0 = the engine rejects the input before that layer):\n");
  std::printf("  %-8s %6s %6s %5s %8s  %s\n", "conv1_1", "input", "pool5", "fc6", "upscore", "whole net");
  for (const PadTrial& t : pad_trials({1, 32, 224, 500}, {100, 1})) {
    std::string verdict = t.fits ? "ok (crop to the input)" : "fails";
    if (!t.fits && t.fc6 > 0) verdict += ": upscore " + std::to_string(t.upscore) + " < input, nothing to crop";
    if (!t.fits && t.fc6 == 0) verdict += ": fc6's 7x7 kernel does not fit pool5";
    std::printf("  pad %-4lld %6lld %6lld %5lld %8lld  %s\n", static_cast<long long>(t.conv1_pad),
                static_cast<long long>(t.input), static_cast<long long>(t.pool5), static_cast<long long>(t.fc6),
                static_cast<long long>(t.upscore), verdict.c_str());
  }
  std::printf("With 100 pixels on each side every input size works; the final crop removes the excess.\n");
}

void print_crop_geometry() {
  std::printf(
      "\nThe crop offsets follow from the layer geometry. Each layer maps a point p of its input to\n"
      "a*p + b of its output (conv, pool: a = 1/s, b = (pad - (k-1)/2)/s; deconv: a = s, b = (k-1)/2 - pad;\n"
      "the pad-1 3x3 convs and 1x1 convs are identity). Composed from the data layer, as crop \"auto\" does:\n");
  for (const VariantGeometry& v : crop_geometry()) {
    std::printf(" %s\n", v.arch.c_str());
    for (const GeometryStep& s : v.steps)
      std::printf("  %-14s %-8s %-16s data -> %s\n", s.layer.c_str(), s.type.c_str(), map_str(s.own).c_str(),
                  map_str(s.composed).c_str());
    for (const CropDerivation& c : v.crops)
      std::printf("  crop %-13s %s (%s) - %s (%s) = offset %lld\n", c.layer.c_str(), c.x.c_str(),
                  map_str(c.x_map).c_str(), c.ref.c_str(), map_str(c.ref_map).c_str(),
                  static_cast<long long>(c.offset));
  }
}

void run_explain(const ExplainArgs& args) {
  std::string topics;
  for (const auto& t : kTopics) topics += (topics.empty() ? "" : ", ") + t;
  if (args.topic.empty()) throw Error("explain: name a topic (topics: " + topics + ")");
  if (args.topic != "deconv") throw Error("explain: unknown topic '" + args.topic + "' (topics: " + topics + ")");
  std::printf(
      "fcn explain deconv: what a deconvolution layer does (FCN paper, section 3.3: \"upsampling is\n"
      "backwards strided convolution\"). Every number below is computed by fcn's own conv, deconv and\n"
      "crop layers and model zoo graphs.\n\n");
  print_section1();
  print_section2();
  print_section3();
  print_section4();
  print_section5(args.out_dir);
  print_pad_trials();
  print_crop_geometry();
}

}  // namespace

void add_explain_command(CLI::App& app) {
  auto args = std::make_shared<ExplainArgs>();
  auto* cmd = app.add_subcommand("explain",
                                 "Explain a building block with numbers computed by fcn's own layers.\n"
                                 "Topics: deconv (transposed convolution, bilinear upsampling, checkerboard\n"
                                 "artifacts, FCN's pad 100 and crop offsets).");
  cmd->add_option("topic", args->topic, "what to explain: deconv");
  cmd->add_option("--out", args->out_dir, "also draw pictures (PNG) into this directory");
  cmd->callback([args] { run_explain(*args); });
}

}  // namespace fcn::cli
