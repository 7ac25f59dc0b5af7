#include "fcn/explain/explain.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <random>
#include <set>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "fcn/core/error.hpp"
#include "fcn/graph/graph.hpp"
#include "fcn/layers/registry.hpp"
#include "fcn/layers/conv.hpp"
#include "fcn/layers/crop.hpp"
#include "fcn/layers/deconv.hpp"
#include "fcn/model/model_zoo.hpp"

namespace fcn {

// --- Grid -------------------------------------------------------------------

Grid::Grid(int64_t rows_, int64_t cols_, double fill) : rows(rows_), cols(cols_), values(rows_ * cols_, fill) {}

Grid Grid::from_rows(const std::vector<std::vector<double>>& rows) {
  Grid g(static_cast<int64_t>(rows.size()), rows.empty() ? 0 : static_cast<int64_t>(rows[0].size()));
  for (int64_t r = 0; r < g.rows; ++r) {
    if (static_cast<int64_t>(rows[r].size()) != g.cols) throw Error("Grid::from_rows: ragged rows");
    for (int64_t c = 0; c < g.cols; ++c) g(r, c) = rows[r][c];
  }
  return g;
}

Grid transpose(const Grid& m) {
  Grid t(m.cols, m.rows);
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t c = 0; c < m.cols; ++c) t(c, r) = m(r, c);
  return t;
}

Grid matmul(const Grid& a, const Grid& b) {
  if (a.cols != b.rows) throw Error("matmul: inner sizes differ");
  Grid out(a.rows, b.cols);
  for (int64_t r = 0; r < a.rows; ++r)
    for (int64_t k = 0; k < a.cols; ++k)
      for (int64_t c = 0; c < b.cols; ++c) out(r, c) += a(r, k) * b(k, c);
  return out;
}

double dot(const Grid& a, const Grid& b) {
  if (!a.same_shape(b)) throw Error("dot: shapes differ");
  double total = 0;
  for (size_t i = 0; i < a.values.size(); ++i) total += a.values[i] * b.values[i];
  return total;
}

double max_abs_diff(const Grid& a, const Grid& b) {
  if (!a.same_shape(b)) return std::numeric_limits<double>::infinity();
  double worst = 0;
  for (size_t i = 0; i < a.values.size(); ++i) worst = std::max(worst, std::fabs(a.values[i] - b.values[i]));
  return worst;
}

Grid flatten(const Grid& g) {
  Grid column(g.rows * g.cols, 1);
  column.values = g.values;
  return column;
}

Grid unflatten(const Grid& column, int64_t rows, int64_t cols) {
  if (column.values.size() != static_cast<size_t>(rows * cols)) throw Error("unflatten: size mismatch");
  Grid g(rows, cols);
  g.values = column.values;
  return g;
}

// --- the engine's layers on one plane --------------------------------------

namespace {

// A single-channel, bias-free, frozen conv or deconv; the weight is set afterwards.
json plane_layer_spec(const std::string& type, int64_t kernel_rows, int64_t kernel_cols, int64_t stride,
                      int64_t pad) {
  return {{"name", type},        {"type", type},      {"inputs", {"x"}},     {"num_output", 1},
          {"kernel", {kernel_rows, kernel_cols}},     {"stride", stride},    {"pad", pad},
          {"bias", false},       {"weight_init", "zero"}, {"lr_mult", 0}};
}

Tensor to_tensor(const Grid& g) {
  Tensor t({1, 1, g.rows, g.cols});
  for (int64_t i = 0; i < t.numel(); ++i) t[i] = static_cast<float>(g.values[i]);
  return t;
}

Grid to_grid(const Tensor& t) {
  Grid g(t.h(), t.w());
  for (int64_t i = 0; i < t.numel(); ++i) g.values[i] = t[i];
  return g;
}

// A layer built from `spec`, reshaped for x, with `weights` as its [1, 1, kh, kw] weight.
struct PlaneLayer {
  std::unique_ptr<Layer> layer;
  Tensor x, out;
};

PlaneLayer make_plane_layer(const json& spec, const Grid& x, const Grid& weights) {
  PlaneLayer p;
  p.layer = create_layer(spec, "explain." + spec.at("name").get<std::string>());
  p.x = to_tensor(x);
  p.out.reshape(p.layer->reshape({p.x.shape()}));
  Tensor& w = p.layer->params().at(0)->data;  // allocated by reshape
  const Tensor loaded = to_tensor(weights);
  if (w.numel() != loaded.numel()) throw Error("explain: weight size mismatch");
  for (int64_t i = 0; i < w.numel(); ++i) w[i] = loaded[i];
  return p;
}

Grid run_forward(PlaneLayer p) {
  p.layer->forward({&p.x}, p.out, Mode::test);
  return to_grid(p.out);
}

}  // namespace

Grid conv_layer_forward(const Grid& x, const Grid& weights, int64_t stride, int64_t pad) {
  return run_forward(make_plane_layer(plane_layer_spec("conv", weights.rows, weights.cols, stride, pad), x, weights));
}

Grid conv_layer_backward(const Grid& x, const Grid& weights, int64_t stride, int64_t pad, const Grid& dy) {
  PlaneLayer p = make_plane_layer(plane_layer_spec("conv", weights.rows, weights.cols, stride, pad), x, weights);
  const Tensor output_grad = to_tensor(dy);
  if (output_grad.shape() != p.out.shape()) throw Error("conv_layer_backward: dy does not match the conv output");
  Tensor x_grad(p.x.shape());  // zero; backward accumulates into it
  p.layer->backward({&p.x}, p.out, output_grad, {&x_grad});
  return to_grid(x_grad);
}

Grid deconv_layer_forward(const Grid& x, const Grid& weights, int64_t stride, int64_t pad, int64_t output_padding) {
  json spec = plane_layer_spec("deconv", weights.rows, weights.cols, stride, pad);
  spec["output_padding"] = output_padding;
  return run_forward(make_plane_layer(spec, x, weights));
}

Grid bilinear_layer_kernel(int64_t kernel, int64_t stride) {
  json spec = plane_layer_spec("deconv", kernel, kernel, stride, 0);
  spec["weight_init"] = "bilinear";
  auto layer = create_layer(spec, "explain.bilinear");
  std::mt19937_64 rng(1);
  layer->init_params(rng);
  layer->reshape({{1, 1, 1, 1}});  // allocates and initialises the weight
  return to_grid(layer->params().at(0)->data);
}

// --- 1. convolution as a matrix ---------------------------------------------

namespace {

Grid unit_image(int64_t rows, int64_t cols, int64_t index) {
  Grid e(rows, cols);
  e.values[index] = 1.0;
  return e;
}

void set_column(Grid& m, int64_t column, const Grid& values) {
  for (int64_t r = 0; r < m.rows; ++r) m(r, column) = values.values[r];
}

// Values in [-1, 1] with one decimal, so the printed numbers stay short.
Grid random_grid(int64_t rows, int64_t cols, std::mt19937_64& rng) {
  std::uniform_int_distribution<int> tenths(-10, 10);
  Grid g(rows, cols);
  for (double& v : g.values) v = tenths(rng) / 10.0;
  return g;
}

Grid counting_kernel() { return Grid::from_rows({{1, 2, 3}, {4, 5, 6}, {7, 8, 9}}); }

}  // namespace

ConvAsMatrix conv_as_matrix(int64_t stride, int64_t pad, uint64_t seed) {
  ConvAsMatrix r;
  r.stride = stride;
  r.pad = pad;
  r.weights = counting_kernel();
  const int64_t n = r.input_size, k = r.weights.rows;
  r.output_size = conv_output_size(n, k, stride, pad, 1);
  if (r.output_size < 1) throw Error("conv_as_matrix: the kernel does not fit the padded input");
  // the conv maps several input sizes to the same output size; output_padding picks ours back
  r.output_padding = n - deconv_output_size(r.output_size, k, stride, pad, 1, 0);
  const int64_t m = r.output_size;
  r.matrix = Grid(m * m, n * n);
  for (int64_t j = 0; j < n * n; ++j)
    set_column(r.matrix, j, conv_layer_forward(unit_image(n, n, j), r.weights, stride, pad));
  r.deconv_matrix = Grid(n * n, m * m);
  r.conv_backward_matrix = Grid(n * n, m * m);
  const Grid input_side(n, n);
  for (int64_t i = 0; i < m * m; ++i) {
    const Grid e = unit_image(m, m, i);
    set_column(r.deconv_matrix, i, deconv_layer_forward(e, r.weights, stride, pad, r.output_padding));
    set_column(r.conv_backward_matrix, i, conv_layer_backward(input_side, r.weights, stride, pad, e));
  }
  std::mt19937_64 rng(seed);
  r.x = random_grid(n, n, rng);
  r.y = random_grid(m, m, rng);
  r.cx = conv_layer_forward(r.x, r.weights, stride, pad);
  r.cty = deconv_layer_forward(r.y, r.weights, stride, pad, r.output_padding);
  r.cx_dot_y = dot(r.cx, r.y);
  r.x_dot_cty = dot(r.x, r.cty);
  return r;
}

// --- 2. the two views of transposed convolution -----------------------------

Grid scatter_add(const Grid& input, const Grid& weights, int64_t stride, int64_t pad) {
  Grid out((input.rows - 1) * stride - 2 * pad + weights.rows, (input.cols - 1) * stride - 2 * pad + weights.cols);
  for (int64_t i = 0; i < input.rows; ++i)
    for (int64_t j = 0; j < input.cols; ++j)
      for (int64_t a = 0; a < weights.rows; ++a)
        for (int64_t b = 0; b < weights.cols; ++b) {
          const int64_t y = i * stride - pad + a, x = j * stride - pad + b;
          if (y >= 0 && y < out.rows && x >= 0 && x < out.cols) out(y, x) += input(i, j) * weights(a, b);
        }
  return out;
}

Grid zero_insert(const Grid& input, int64_t stride, int64_t border) {
  Grid out((input.rows - 1) * stride + 1 + 2 * border, (input.cols - 1) * stride + 1 + 2 * border);
  for (int64_t i = 0; i < input.rows; ++i)
    for (int64_t j = 0; j < input.cols; ++j) out(border + i * stride, border + j * stride) = input(i, j);
  return out;
}

Grid flip(const Grid& weights) {
  Grid out(weights.rows, weights.cols);
  for (int64_t a = 0; a < weights.rows; ++a)
    for (int64_t b = 0; b < weights.cols; ++b) out(a, b) = weights(weights.rows - 1 - a, weights.cols - 1 - b);
  return out;
}

TransposedViews transposed_views(const Grid& input, const Grid& weights, int64_t stride, int64_t pad) {
  const int64_t k = weights.rows;
  if (weights.cols != k) throw Error("transposed_views: the kernel must be square");
  if (pad > k - 1) throw Error("transposed_views: pad must be at most kernel - 1");
  TransposedViews v;
  v.stride = stride;
  v.pad = pad;
  v.input = input;
  v.weights = weights;
  v.scatter = scatter_add(input, weights, stride, pad);
  // an output pixel o gathers x[i] * w[o + p - i*s]; over the zero-inserted
  // input that is a plain correlation with the flipped kernel
  v.zero_inserted = zero_insert(input, stride, k - 1 - pad);
  v.flipped = flip(weights);
  v.gathered = conv_layer_forward(v.zero_inserted, v.flipped, 1, 0);
  v.layer = deconv_layer_forward(input, weights, stride, pad);
  return v;
}

// --- 3. worked example --------------------------------------------------------

WorkedExample worked_example() {
  WorkedExample r;
  r.input = Grid::from_rows({{1, 2}, {3, 4}});
  r.weights = Grid(3, 3, 1.0);
  r.full = deconv_layer_forward(r.input, r.weights, r.stride, 0);
  // the top-left 4x4, kept by the crop layer in a two-layer graph
  json deconv = plane_layer_spec("deconv", 3, 3, r.stride, 0);
  deconv["weight_init"] = {{"type", "constant"}, {"value", 1.0}};
  const json spec = {
      {"inputs", {{"x", {{"channels", 1}}}, {"ref", {{"channels", 1}}}}},
      {"layers", json::array({deconv, json{{"name", "top_left"}, {"type", "crop"}, {"inputs", {"deconv", "ref"}},
                                           {"offset", 0}}})}};
  Graph graph(spec, "explain.worked_example");
  graph.reshape({{"x", {1, 1, 2, 2}}, {"ref", {1, 1, 4, 4}}});
  graph.init_params(1);
  graph.blob("x") = to_tensor(r.input);
  graph.forward(Mode::test);
  r.top_left = to_grid(graph.blob("top_left"));
  r.padded = deconv_layer_forward(r.input, r.weights, r.stride, 1, 1);
  return r;
}

// --- 4. bilinear upsampling ---------------------------------------------------

namespace {

// Linear interpolation weights along one axis at `pos`, clamped into [0, n-1].
struct Lerp {
  int64_t i0 = 0, i1 = 0;
  double w1 = 0;
};

Lerp lerp_at(double pos, int64_t n) {
  const double p = std::clamp(pos, 0.0, static_cast<double>(n - 1));
  Lerp l;
  l.i0 = std::min<int64_t>(static_cast<int64_t>(std::floor(p)), std::max<int64_t>(n - 2, 0));
  l.i1 = std::min<int64_t>(l.i0 + 1, n - 1);
  l.w1 = p - static_cast<double>(l.i0);
  return l;
}

Grid bilinear_interpolate(const Grid& input, const std::vector<double>& positions) {
  const int64_t size = static_cast<int64_t>(positions.size());
  Grid out(size, size);
  for (int64_t r = 0; r < size; ++r) {
    const Lerp y = lerp_at(positions[r], input.rows);
    for (int64_t c = 0; c < size; ++c) {
      const Lerp x = lerp_at(positions[c], input.cols);
      const double top = (1 - x.w1) * input(y.i0, x.i0) + x.w1 * input(y.i0, x.i1);
      const double bottom = (1 - x.w1) * input(y.i1, x.i0) + x.w1 * input(y.i1, x.i1);
      out(r, c) = (1 - y.w1) * top + y.w1 * bottom;
    }
  }
  return out;
}

}  // namespace

BilinearUpsampling bilinear_upsampling() {
  BilinearUpsampling r;
  const int64_t k = r.kernel;
  r.layer_kernel = bilinear_layer_kernel(k, r.stride);
  // FCN's surgery.upsample_filt (integer division, as the Python)
  r.factor = static_cast<double>((k + 1) / 2);
  r.center = k % 2 == 1 ? r.factor - 1 : r.factor - 0.5;
  r.formula_kernel = Grid(k, k);
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < k; ++j)
      r.formula_kernel(i, j) = (1 - std::fabs(i - r.center) / r.factor) * (1 - std::fabs(j - r.center) / r.factor);

  const int64_t n = 4;
  Grid ramp(n, n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) ramp(i, j) = 10.0 * i + j;
  r.views = transposed_views(ramp, r.layer_kernel, r.stride, r.pad);

  // output o sits at input coordinate (o - shift) / scale (the deconv's coord map)
  const CoordMap map = create_layer(plane_layer_spec("deconv", k, k, r.stride, r.pad), "explain.bilinear")->coord_map();
  const int64_t out = r.views.layer.rows;
  r.interior_begin = out;
  for (int64_t o = 0; o < out; ++o) {
    const double pos = (static_cast<double>(o) - map.shift[0]) / map.scale[0];
    r.positions.push_back(pos);
    if (pos >= 0 && pos <= n - 1) {
      r.interior_begin = std::min(r.interior_begin, o);
      r.interior_end = o + 1;
    }
  }
  r.interpolated = bilinear_interpolate(ramp, r.positions);
  for (int64_t y = r.interior_begin; y < r.interior_end; ++y)
    for (int64_t x = r.interior_begin; x < r.interior_end; ++x)
      r.interior_max_diff = std::max(r.interior_max_diff, std::fabs(r.views.layer(y, x) - r.interpolated(y, x)));
  return r;
}

// --- 5. checkerboard artifacts ------------------------------------------------

namespace {

// A smooth bump with random gains, as trained upsampling kernels tend to look.
Grid learned_looking_kernel(int64_t k, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> gain(0.5, 1.5);
  const double c = (k - 1) / 2.0, sigma = k / 3.0;
  Grid w(k, k);
  for (int64_t a = 0; a < k; ++a)
    for (int64_t b = 0; b < k; ++b)
      w(a, b) = std::exp(-((a - c) * (a - c) + (b - c) * (b - c)) / (2 * sigma * sigma)) * gain(rng);
  return w;
}

// The stride x stride block starting at an even row/col in the middle: one
// output of each phase (output index mod stride), far from the borders.
Grid interior_block(const Grid& g, int64_t stride, int64_t input_size) {
  const int64_t start = stride * (input_size / 2);
  Grid block(stride, stride);
  for (int64_t r = 0; r < stride; ++r)
    for (int64_t c = 0; c < stride; ++c) block(r, c) = g(start + r, start + c);
  return block;
}

}  // namespace

Checkerboard checkerboard(uint64_t seed) {
  Checkerboard board;
  const int64_t n = board.input_size, stride = 2;
  const Grid ones(n, n, 1.0);
  std::mt19937_64 rng(seed);
  for (int64_t k : {3, 4}) {
    OverlapCase c;
    c.kernel = k;
    c.stride = stride;
    c.axis_counts = deconv_layer_forward(Grid(1, n, 1.0), Grid(1, k, 1.0), stride, 0).values;
    c.counts = deconv_layer_forward(ones, Grid(k, k, 1.0), stride, 0);
    c.learned_kernel = learned_looking_kernel(k, rng);
    c.learned_output = deconv_layer_forward(ones, c.learned_kernel, stride, 0);
    c.learned_phases = interior_block(c.learned_output, stride, n);
    board.cases.push_back(std::move(c));
  }
  board.bilinear_output = deconv_layer_forward(ones, bilinear_layer_kernel(4, stride), stride, 0);
  board.bilinear_phases = interior_block(board.bilinear_output, stride, n);
  return board;
}

namespace {

// Nearest-neighbour magnified, colour-mapped (viridis, 0 .. max), with cell
// lines; integer maps get their numbers written in the cells.
cv::Mat draw_grid(const Grid& g, bool write_numbers) {
  const int cell = 24;
  const double hi = *std::max_element(g.values.begin(), g.values.end());
  const double lo = std::min(0.0, *std::min_element(g.values.begin(), g.values.end()));
  cv::Mat levels(static_cast<int>(g.rows), static_cast<int>(g.cols), CV_8U);
  for (int64_t r = 0; r < g.rows; ++r)
    for (int64_t c = 0; c < g.cols; ++c)
      levels.at<uint8_t>(static_cast<int>(r), static_cast<int>(c)) =
          hi > lo ? cv::saturate_cast<uint8_t>(255.0 * (g(r, c) - lo) / (hi - lo)) : 128;
  cv::Mat big, image;
  cv::resize(levels, big, cv::Size(levels.cols * cell, levels.rows * cell), 0, 0, cv::INTER_NEAREST);
  cv::applyColorMap(big, image, cv::COLORMAP_VIRIDIS);
  for (int i = 0; i <= levels.rows; ++i) cv::line(image, {0, i * cell}, {image.cols, i * cell}, {40, 40, 40});
  for (int i = 0; i <= levels.cols; ++i) cv::line(image, {i * cell, 0}, {i * cell, image.rows}, {40, 40, 40});
  if (!write_numbers) return image;
  for (int r = 0; r < levels.rows; ++r)
    for (int c = 0; c < levels.cols; ++c) {
      const cv::Scalar ink = levels.at<uint8_t>(r, c) > 160 ? cv::Scalar(0, 0, 0) : cv::Scalar(255, 255, 255);
      cv::putText(image, std::to_string(static_cast<int64_t>(std::llround(g(r, c)))),
                  {c * cell + 8, r * cell + 17}, cv::FONT_HERSHEY_SIMPLEX, 0.4, ink, 1, cv::LINE_8);
    }
  return image;
}

std::string write_picture(const std::string& dir, const std::string& name, const cv::Mat& image) {
  const std::string path = (std::filesystem::path(dir) / name).string();
  if (!cv::imwrite(path, image, {cv::IMWRITE_PNG_COMPRESSION, 9})) throw Error(path + ": could not write the PNG");
  return path;
}

}  // namespace

std::vector<std::string> write_checkerboard_pictures(const Checkerboard& board, const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error(dir + ": cannot create directory (" + ec.message() + ")");
  std::vector<std::string> paths;
  for (const OverlapCase& c : board.cases) {
    const std::string tag = "k" + std::to_string(c.kernel) + "s" + std::to_string(c.stride) + ".png";
    paths.push_back(write_picture(dir, "overlap_" + tag, draw_grid(c.counts, true)));
    paths.push_back(write_picture(dir, "learned_" + tag, draw_grid(c.learned_output, false)));
  }
  paths.push_back(write_picture(dir, "bilinear_k4s2.png", draw_grid(board.bilinear_output, false)));
  return paths;
}

// --- 6. the FCN numbers --------------------------------------------------------

namespace {

json fcn_graph(const std::string& arch, int64_t conv1_pad) {
  ModelSpec spec;
  spec.arch = arch;
  spec.num_classes = 2;
  spec.width = 1.0 / 64;  // channel counts do not change the geometry
  json graph = build_fcn_graph(spec);
  for (json& layer : graph["layers"])
    if (layer["name"] == "conv1_1") layer["pad"] = conv1_pad;
  return graph;
}

std::map<std::string, Shape> square_inputs(int64_t size) {
  return {{"data", {1, 3, size, size}}, {"label", {1, 1, size, size}}};
}

// Height of `blob` in the graph cut after the layer that makes it; 0 when a
// layer up to there rejects its input.
int64_t blob_height(const json& graph_spec, const std::string& blob, int64_t size) {
  json cut = graph_spec;
  json layers = json::array();
  for (const json& layer : graph_spec["layers"]) {
    layers.push_back(layer);
    if (layer["name"] == blob) break;
  }
  cut["layers"] = layers;
  try {
    Graph graph(cut, "explain.pad_trial");
    graph.reshape(square_inputs(size));
    return graph.blob_shape(blob)[2];
  } catch (const Error&) {
    return 0;
  }
}

bool is_identity(const CoordMap& m) {
  return m.scale[0] == 1 && m.scale[1] == 1 && m.shift[0] == 0 && m.shift[1] == 0;
}

}  // namespace

std::vector<PadTrial> pad_trials(const std::vector<int64_t>& sizes, const std::vector<int64_t>& pads) {
  std::vector<PadTrial> trials;
  for (int64_t pad : pads) {
    const json spec = fcn_graph("fcn32s", pad);
    for (int64_t size : sizes) {
      PadTrial t;
      t.conv1_pad = pad;
      t.input = size;
      t.pool5 = blob_height(spec, "pool5", size);
      t.fc6 = blob_height(spec, "fc6", size);
      t.upscore = blob_height(spec, "upscore", size);
      try {
        Graph graph(spec, "fcn32s");
        graph.reshape(square_inputs(size));
        t.fits = true;
      } catch (const Error& e) {
        t.failure = e.what();
      }
      trials.push_back(std::move(t));
    }
  }
  return trials;
}

std::vector<VariantGeometry> crop_geometry(int64_t size) {
  std::vector<VariantGeometry> variants;
  std::set<std::string> listed;
  for (const std::string arch : {"fcn32s", "fcn16s", "fcn8s"}) {
    Graph graph(fcn_graph(arch, 100), arch);
    graph.reshape(square_inputs(size));
    VariantGeometry v;
    v.arch = arch;
    for (const auto& layer : graph.layers()) {
      if (const auto* crop = dynamic_cast<const CropLayer*>(layer.get())) {
        const std::string& x = layer->inputs()[0];
        const std::string& ref = layer->inputs()[1];
        v.crops.push_back({layer->name(), x, ref, graph.blob_coord_map(x), graph.blob_coord_map(ref),
                           crop->offsets()[2]});
      } else if (!is_identity(layer->coord_map()) && listed.insert(layer->name()).second) {
        v.steps.push_back({layer->name(), layer->type(), layer->coord_map(), graph.blob_coord_map(layer->name())});
      }
    }
    variants.push_back(std::move(v));
  }
  return variants;
}

}  // namespace fcn
