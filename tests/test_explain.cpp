// fcn explain deconv: every printed fact, checked against hand-computed
// values or a naive computation here.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <opencv2/imgcodecs.hpp>

#include "fcn/explain/explain.hpp"
#include "reference_conv.hpp"

using namespace fcn;

namespace {

Grid random_grid(int64_t rows, int64_t cols, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  Grid g(rows, cols);
  for (double& v : g.values) v = uniform(rng);
  return g;
}

void check_close(const Grid& actual, const Grid& expected, double tolerance = 1e-5) {
  REQUIRE(actual.rows == expected.rows);
  REQUIRE(actual.cols == expected.cols);
  for (size_t i = 0; i < actual.values.size(); ++i) {
    INFO("element " << i << " (row " << i / actual.cols << ", col " << i % actual.cols << ")");
    CHECK(actual.values[i] == Approx(expected.values[i]).margin(tolerance));
  }
}

// C[o, j]: the weight that input pixel j gets in output pixel o, from the
// tests' reference convolution (one channel, a square n x n image).
Grid naive_conv_matrix(const Grid& w, int64_t n, int64_t stride, int64_t pad) {
  cpu::ConvGeometry g;
  g.channels = g.out_channels = 1;
  g.height = g.width = n;
  g.kernel_h = w.rows, g.kernel_w = w.cols;
  g.stride_h = g.stride_w = stride;
  g.pad_h = g.pad_w = pad;
  g.out_h = g.out_w = (n + 2 * pad - w.rows) / stride + 1;
  Grid c(g.out_area(), n * n);
  testing::for_each_conv_term(g, [&](int64_t output, int64_t weight, int64_t input) {
    c(output, input) += w.values[weight];
  });
  return c;
}

// Bilinear interpolation with PyTorch's align_corners=False coordinates:
// output o samples the input at (o + 0.5) / 2 - 0.5 (only used inside the input).
double interpolate_x2(const Grid& x, int64_t oy, int64_t ox) {
  const double py = (oy + 0.5) / 2 - 0.5, px = (ox + 0.5) / 2 - 0.5;
  const int64_t y0 = static_cast<int64_t>(std::floor(py)), x0 = static_cast<int64_t>(std::floor(px));
  const double fy = py - y0, fx = px - x0;
  auto at = [&](int64_t y, int64_t c) { return x(std::min(y, x.rows - 1), std::min(c, x.cols - 1)); };
  return (1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x0 + 1)) + fy * ((1 - fx) * at(y0 + 1, x0) + fx * at(y0 + 1, x0 + 1));
}

std::string temp_dir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("fcn_test_explain_" + std::to_string(getpid()) + "_" + name);
  std::filesystem::remove_all(dir);
  return dir.string();
}

// Runs the fcn binary; returns the exit status and fills `output` with stdout + stderr.
int run_fcn(const std::string& args, std::string& output) {
  const std::string log = temp_dir("log.txt");
  const int status = std::system((std::string(FCN_BINARY) + " " + args + " >" + log + " 2>&1").c_str());
  std::ifstream in(log);
  std::stringstream text;
  text << in.rdbuf();
  output = text.str();
  std::filesystem::remove(log);
  return status;
}

}  // namespace

TEST_CASE("1. the conv layer is the matrix C, the deconv layer and conv's backward are C^T") {
  const Grid w = Grid::from_rows({{1, 2, 3}, {4, 5, 6}, {7, 8, 9}});
  struct Case {
    int64_t stride, pad, output_size, output_padding;
  };
  for (const Case& c : {Case{1, 0, 2, 0}, Case{2, 0, 1, 1}, Case{2, 1, 2, 1}, Case{1, 1, 4, 0}}) {
    INFO("stride " << c.stride << ", pad " << c.pad);
    const ConvAsMatrix r = conv_as_matrix(c.stride, c.pad);
    CHECK(r.output_size == c.output_size);
    CHECK(r.output_padding == c.output_padding);
    const Grid expected = naive_conv_matrix(w, 4, c.stride, c.pad);
    check_close(r.matrix, expected);
    check_close(r.deconv_matrix, transpose(expected));
    check_close(r.conv_backward_matrix, transpose(expected));
    // the random vectors through the layers match the matrix products
    check_close(flatten(r.cx), matmul(expected, flatten(r.x)), 1e-4);
    check_close(flatten(r.cty), matmul(transpose(expected), flatten(r.y)), 1e-4);
    CHECK(std::fabs(r.cx_dot_y - r.x_dot_cty) < 1e-5);
    CHECK(r.cx_dot_y == Approx(dot(matmul(expected, flatten(r.x)), flatten(r.y))).margin(1e-5));
  }
  // by hand: the first output pixel of the 4x4, stride-1 conv reads the top-left 3x3 window
  const ConvAsMatrix r = conv_as_matrix(1, 0);
  const std::vector<double> first_row = {1, 2, 3, 0, 4, 5, 6, 0, 7, 8, 9, 0, 0, 0, 0, 0};
  for (int64_t j = 0; j < 16; ++j) CHECK(r.matrix(0, j) == first_row[j]);
}

TEST_CASE("2. scatter-add and zero-insertion + flipped conv both equal the deconv layer") {
  std::mt19937_64 rng(11);
  for (int64_t k : {2, 3, 4})
    for (int64_t stride : {1, 2, 3})
      for (int64_t pad = 0; pad < k; ++pad) {
        const int64_t out = 2 * stride - 2 * pad + k;  // (3-1)*s - 2p + k
        if (out < 1) continue;                         // the padding removes everything
        INFO("kernel " << k << ", stride " << stride << ", pad " << pad);
        const TransposedViews v = transposed_views(random_grid(3, 3, rng), random_grid(k, k, rng), stride, pad);
        REQUIRE(v.layer.rows == out);
        check_close(v.scatter, v.layer, 1e-5);
        check_close(v.gathered, v.layer, 1e-5);
      }
  // by hand for x = [[1,2],[3,4]], w = 1..9, stride 2: the centre gets every input once,
  // x00*w22 + x01*w20 + x10*w02 + x11*w00 = 9 + 14 + 9 + 4
  const TransposedViews v = transposed_views(Grid::from_rows({{1, 2}, {3, 4}}),
                                             Grid::from_rows({{1, 2, 3}, {4, 5, 6}, {7, 8, 9}}), 2, 0);
  CHECK(v.layer(2, 2) == Approx(36));
  CHECK(v.layer(0, 0) == Approx(1));
  CHECK(v.layer(4, 4) == Approx(36));  // x11 * w22
  REQUIRE(v.zero_inserted.rows == 7);  // 3 (1 zero between the 2 pixels) + 2 * (3-1-0)
  CHECK(v.zero_inserted(2, 2) == 1);
  CHECK(v.zero_inserted(2, 4) == 2);
  CHECK(v.zero_inserted(4, 2) == 3);
  CHECK(v.zero_inserted(4, 4) == 4);
  CHECK(v.zero_inserted(3, 3) == 0);
  CHECK(v.flipped(0, 0) == 9);
  CHECK(v.flipped(0, 2) == 7);
  CHECK_THROWS(transposed_views(v.input, v.weights, 2, 3));  // pad > k - 1
}

TEST_CASE("3. worked example: [[1,2],[3,4]], 3x3 ones, stride 2") {
  const WorkedExample r = worked_example();
  check_close(r.full, Grid::from_rows({{1, 1, 3, 2, 2},
                                       {1, 1, 3, 2, 2},
                                       {4, 4, 10, 6, 6},
                                       {3, 3, 7, 4, 4},
                                       {3, 3, 7, 4, 4}}));
  check_close(r.top_left, Grid::from_rows({{1, 1, 3, 2}, {1, 1, 3, 2}, {4, 4, 10, 6}, {3, 3, 7, 4}}));
  check_close(r.padded, Grid::from_rows({{1, 3, 2, 2}, {4, 10, 6, 6}, {3, 7, 4, 4}, {3, 7, 4, 4}}));
}

TEST_CASE("4. the bilinear kernel, and upsampling with it is interpolation away from the borders") {
  const BilinearUpsampling r = bilinear_upsampling();
  CHECK(r.factor == 2);
  CHECK(r.center == 1.5);
  // k=4: 1-D taps 0.25 0.75 0.75 0.25; the 2-D kernel is their outer product
  const double taps[4] = {0.25, 0.75, 0.75, 0.25};
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) CHECK(r.layer_kernel(i, j) == Approx(taps[i] * taps[j]));
  CHECK(r.layer_kernel(0, 0) == Approx(0.0625));
  CHECK(r.layer_kernel(0, 1) == Approx(0.1875));
  CHECK(r.layer_kernel(1, 1) == Approx(0.5625));
  check_close(r.formula_kernel, r.layer_kernel);
  // k=3 (odd: center = factor - 1 = 1): taps 0.5 1 0.5
  const Grid k3 = bilinear_layer_kernel(3, 2);
  CHECK(k3(0, 0) == Approx(0.25));
  CHECK(k3(1, 1) == Approx(1.0));
  CHECK(k3(0, 1) == Approx(0.5));

  // zero-insertion then the bilinear conv is the transposed conv
  check_close(r.views.gathered, r.views.layer);
  REQUIRE(r.views.layer.rows == 8);
  // output o sits at (o - 0.5) / 2; rows 1..6 lie inside the 4x4 input
  for (int64_t o = 0; o < 8; ++o) CHECK(r.positions[o] == Approx((o - 0.5) / 2));
  CHECK(r.interior_begin == 1);
  CHECK(r.interior_end == 7);
  // on the ramp 10i + j bilinear interpolation is exact: the value at (py, px) is 10py + px
  for (int64_t y = 1; y < 7; ++y)
    for (int64_t x = 1; x < 7; ++x) CHECK(r.views.layer(y, x) == Approx(10 * r.positions[y] + r.positions[x]));
  CHECK(r.interior_max_diff < 1e-5);
  CHECK(r.views.layer(7, 7) != Approx(r.interpolated(7, 7)));  // the border differs (zeros beyond the edge)

  // and on a random image, against a naive align_corners=False interpolation
  std::mt19937_64 rng(5);
  const Grid x = random_grid(5, 5, rng);
  const Grid up = deconv_layer_forward(x, r.layer_kernel, 2, 1);
  REQUIRE(up.rows == 10);
  for (int64_t oy = 1; oy < 9; ++oy)
    for (int64_t ox = 1; ox < 9; ++ox) CHECK(up(oy, ox) == Approx(interpolate_x2(x, oy, ox)).margin(1e-5));
}

TEST_CASE("5. overlap counts: kernel 3 stride 2 is uneven, kernel 4 stride 2 even") {
  const Checkerboard board = checkerboard();
  REQUIRE(board.cases.size() == 2);
  const std::vector<double> k3 = {1, 1, 2, 1, 2, 1, 2, 1, 2, 1, 1};
  const std::vector<double> k4 = {1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1};
  for (const OverlapCase& c : board.cases) {
    INFO("kernel " << c.kernel);
    const std::vector<double>& axis = c.kernel == 3 ? k3 : k4;
    CHECK(c.axis_counts == axis);
    REQUIRE(c.counts.rows == static_cast<int64_t>(axis.size()));
    for (int64_t r = 0; r < c.counts.rows; ++r)
      for (int64_t col = 0; col < c.counts.cols; ++col) CHECK(c.counts(r, col) == axis[r] * axis[col]);
    // deep inside, a constant input gives each phase the sum of the taps a = o (mod 2)
    const int64_t start = 4;  // stride * (input_size / 2)
    for (int py = 0; py < 2; ++py)
      for (int px = 0; px < 2; ++px) {
        double sum = 0;
        for (int64_t a = 0; a < c.kernel; ++a)
          for (int64_t b = 0; b < c.kernel; ++b)
            if (a % 2 == (start + py) % 2 && b % 2 == (start + px) % 2) sum += c.learned_kernel(a, b);
        CHECK(c.learned_phases(py, px) == Approx(sum).margin(1e-5));
      }
  }
  // a learned k4s2 kernel still checkers; the bilinear one does not
  const Grid& phases = board.cases[1].learned_phases;
  const auto [lo, hi] = std::minmax_element(phases.values.begin(), phases.values.end());
  CHECK(*hi - *lo > 0.01);
  for (double v : board.bilinear_phases.values) CHECK(v == Approx(1.0));
}

TEST_CASE("5. the pictures are written and decode") {
  const std::string dir = temp_dir("pictures");
  const auto paths = write_checkerboard_pictures(checkerboard(), dir);
  REQUIRE(paths.size() == 5);
  for (const auto& path : paths) {
    const cv::Mat image = cv::imread(path, cv::IMREAD_COLOR);
    INFO(path);
    CHECK(!image.empty());
    CHECK(image.rows >= 11 * 24);  // one 24-pixel cell per output pixel
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("6. conv1_1's pad 100 lets every input size reach fc6 and the final crop") {
  const auto trials = pad_trials({1, 32, 224}, {100, 1});
  REQUIRE(trials.size() == 6);
  auto find = [&](int64_t pad, int64_t size) {
    for (const auto& t : trials)
      if (t.conv1_pad == pad && t.input == size) return t;
    FAIL("no trial");
    return PadTrial{};
  };
  // 32 + 2*99 = 230 after conv1_1 (3x3, pad 100); ceil pools 115, 58, 29, 15, 8; fc6 8 - 6 = 2;
  // upscore (2-1)*32 + 64 = 96
  const PadTrial p100 = find(100, 32);
  CHECK(p100.pool5 == 8);
  CHECK(p100.fc6 == 2);
  CHECK(p100.upscore == 96);
  CHECK(p100.fits);
  CHECK(find(100, 1).fits);
  CHECK(find(100, 1).fc6 == 1);
  // pad 1: pool5 = 32/32 = 1 < 7, fc6 cannot run
  const PadTrial p1 = find(1, 32);
  CHECK(p1.pool5 == 1);
  CHECK(p1.fc6 == 0);
  CHECK_FALSE(p1.fits);
  CHECK(p1.failure.find("fc6") != std::string::npos);
  // pad 1 at 224: fc6 runs (1x1) but upscore is only 64 pixels: nothing to crop back to 224
  const PadTrial p224 = find(1, 224);
  CHECK(p224.fc6 == 1);
  CHECK(p224.upscore == 64);
  CHECK_FALSE(p224.fits);
  CHECK(p224.failure.find("score") != std::string::npos);
}

TEST_CASE("6. crop offsets [19], [5, 27], [5, 9, 31] from the composed coordinate maps") {
  const auto variants = crop_geometry();
  REQUIRE(variants.size() == 3);
  const std::vector<std::vector<int64_t>> expected = {{19}, {5, 27}, {5, 9, 31}};
  for (size_t v = 0; v < variants.size(); ++v) {
    INFO(variants[v].arch);
    std::vector<int64_t> offsets;
    for (const CropDerivation& c : variants[v].crops) {
      offsets.push_back(c.offset);
      CHECK(c.x_map.scale[0] == c.ref_map.scale[0]);
      CHECK(c.x_map.shift[0] - c.ref_map.shift[0] == Approx(static_cast<double>(c.offset)));
    }
    CHECK(offsets == expected[v]);
  }
  // by hand: conv1_1 shifts by 99, each pool halves and subtracts 1/4: after pool5
  // ((((99/2 - 1/4)/2 - 1/4)/2 - 1/4)/2 - 1/4)/2 - 1/4 = 2.609375
  std::vector<std::string> names;
  for (const GeometryStep& s : variants[0].steps) {
    names.push_back(s.layer);
    if (s.layer == "pool5") {
      CHECK(s.composed.scale[0] == Approx(1.0 / 32));
      CHECK(s.composed.shift[0] == Approx(2.609375));
    }
  }
  CHECK(names == std::vector<std::string>{"conv1_1", "pool1", "pool2", "pool3", "pool4", "pool5", "fc6", "upscore"});
}

TEST_CASE("fcn explain deconv prints the facts and --out writes PNGs, other topics are errors") {
  const std::string dir = temp_dir("cli");
  std::string output;
  REQUIRE(run_fcn("explain deconv --out " + dir, output) == 0);
  for (const char* fact : {"offset 19", "offset 27", "offset 31", "0.0625 0.1875 0.1875 0.0625",
                           "1 1 2 1 2 1 2 1 2 1 1", "equal (max |difference| 0)"})
    CHECK(output.find(fact) != std::string::npos);
  CHECK(output.find("DIFFERENT") == std::string::npos);
  for (const char* name : {"overlap_k3s2.png", "overlap_k4s2.png", "learned_k3s2.png", "learned_k4s2.png",
                           "bilinear_k4s2.png"}) {
    const cv::Mat image = cv::imread((std::filesystem::path(dir) / name).string());
    INFO(name);
    CHECK(image.rows > 0);
    CHECK(image.cols > 0);
  }
  std::filesystem::remove_all(dir);

  CHECK(run_fcn("explain pooling", output) != 0);
  CHECK(output.find("unknown topic 'pooling' (topics: deconv)") != std::string::npos);
  CHECK(run_fcn("explain", output) != 0);
  CHECK(output.find("topics: deconv") != std::string::npos);
}
