// fcn import-caffe against .caffemodel files written by tools/make_caffemodel.py
// from Caffe's own field numbers: both layouts, shape and legacy dims, packed,
// unpacked and double data; the weights must come back bit for bit and the
// imported graph must score as the model zoo's net with those weights.
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include "fcn/core/error.hpp"
#include "fcn/graph/graph.hpp"
#include "fcn/io/safetensors.hpp"
#include "fcn/layers/registry.hpp"
#include "fcn/model/caffe_import.hpp"
#include "fcn/model/model_zoo.hpp"
#include "fcn/model/weights.hpp"
#include "gradcheck.hpp"

using namespace fcn;
namespace fs = std::filesystem;

namespace {

constexpr double kWidth = 0.25;
constexpr int64_t kClasses = 5;

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("fcn_test_caffe_import_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

// Runs tools/make_caffemodel.py; returns the caffemodel path (reference weights beside it).
std::string make_caffemodel(const TempDir& dir, const std::string& name, const std::string& options) {
  const std::string out = dir / (name + ".caffemodel");
  const std::string command = "/usr/bin/python3 " + std::string(FCN_SOURCE_DIR) + "/tools/make_caffemodel.py " +
                              options + " --out " + out + " --reference " + (dir / (name + ".safetensors"));
  INFO(command);
  REQUIRE(std::system(command.c_str()) == 0);
  return out;
}

void check_weights_equal(const CaffeImport& imported, const std::string& reference_file) {
  const SafetensorsFile reference = read_safetensors(reference_file);
  REQUIRE(imported.weights.size() == reference.tensors.size());
  for (const auto& item : reference.tensors) {
    INFO(item.first);
    auto it = imported.weights.find(item.first);
    REQUIRE(it != imported.weights.end());
    REQUIRE(it->second.shape() == item.second.shape());
    CHECK(std::equal(item.second.data(), item.second.data() + item.second.numel(), it->second.data()));
  }
}

// Test-mode scores of a graph for one image (label all class 0).
Tensor scores(Graph& graph, const Tensor& image) {
  std::map<std::string, Shape> shapes;
  for (const auto& name : graph.input_names())
    shapes[name] = name == "data" ? image.shape() : Shape{1, 1, image.h(), image.w()};
  graph.reshape(shapes);
  for (const auto& name : graph.input_names()) {
    Tensor& blob = graph.blob(name);
    if (name == "data") {
      std::copy(image.data(), image.data() + image.numel(), blob.data());
    } else {
      blob.fill(0.f);
    }
  }
  graph.forward(Mode::test);
  return graph.blob(score_blob_name(graph));
}

double relative_difference(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  double diff = 0, scale = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    diff = std::max(diff, static_cast<double>(std::abs(a.data()[i] - b.data()[i])));
    scale = std::max(scale, static_cast<double>(std::abs(b.data()[i])));
  }
  REQUIRE(scale > 0);
  return diff / scale;
}

std::string error_of(const std::string& file) {
  try {
    import_caffe(file);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("the reference's VOC nets import with the written weights and score as the model zoo") {
  TempDir dir;
  // every arch once, across the blob encodings Caffe files use
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"fcn32s", "--dims shape --floats packed"},
      {"fcn16s", "--dims legacy --floats unpacked"},
      {"fcn8s", "--dims shape --floats double"},
      {"fcn8s-atonce", "--dims legacy --floats packed"},
  };
  const Tensor image = testing::random_image(67, 91, 7);
  for (const auto& item : cases) {
    const std::string arch = item.first;
    INFO(arch << " " << item.second);
    const std::string file = make_caffemodel(
        dir, arch, "--arch " + arch + " --width 0.25 --classes 5 --layout layer --seed 3 " + item.second);
    const CaffeImport imported = import_caffe(file);
    check_weights_equal(imported, dir / (arch + ".safetensors"));
    CHECK(imported.num_classes == kClasses);
    CHECK(imported.dropped == std::vector<std::string>{"data (Python)"});

    Graph caffe_graph(imported.graph, "imported");
    ModelSpec spec;
    spec.arch = arch;
    spec.width = kWidth;
    spec.num_classes = kClasses;
    Graph zoo(build_fcn_graph(spec), "zoo");
    // same param names and shapes: a strict load leaves nothing out
    zoo.reshape({{"data", image.shape()}, {"label", {1, 1, image.h(), image.w()}}});
    SafetensorsFile file_weights;
    for (const auto& w : imported.weights) file_weights.tensors[w.first] = w.second;
    const LoadReport report = load_params(zoo, file_weights, "imported", LoadMode::strict);
    CHECK(report.missing.empty());
    CHECK(report.unused.empty());
    caffe_graph.reshape({{"data", image.shape()}, {"label", {1, 1, image.h(), image.w()}}});
    load_params(caffe_graph, file_weights, "imported", LoadMode::strict);

    const Tensor expected = scores(zoo, image);
    const Tensor got = scores(caffe_graph, image);
    CHECK(got.shape() == Shape{1, kClasses, 67, 91});
    CHECK(relative_difference(got, expected) <= 1e-6);
  }
}

TEST_CASE("VGG16 in Caffe's V1 layout: InnerProduct becomes a 7x7 conv and initialises FCN-32s") {
  TempDir dir;
  const std::string v1 = make_caffemodel(dir, "vgg_v1", "--arch vgg16 --width 0.25 --layout v1 --dims legacy --seed 5");
  const CaffeImport imported = import_caffe(v1);
  check_weights_equal(imported, dir / "vgg_v1.safetensors");
  CHECK(imported.weights.at("fc6.weight").shape() == Shape{1024, 128, 7, 7});
  CHECK(imported.weights.at("fc7.weight").shape() == Shape{1024, 1024, 1, 1});
  CHECK(imported.weights.at("fc8.weight").shape() == Shape{1000, 1024, 1, 1});
  CHECK(imported.num_classes == 0);  // 1000 classes: more than a label map holds
  CHECK(imported.dropped == std::vector<std::string>{"prob (Softmax)"});
  CHECK(imported.graph["inputs"].size() == 1);  // no loss: no label input

  // the same net in the current layout with double data imports identically
  const std::string current =
      make_caffemodel(dir, "vgg_layer", "--arch vgg16 --width 0.25 --layout layer --dims shape --floats double --seed 5");
  const CaffeImport again = import_caffe(current);
  CHECK(again.graph == imported.graph);
  check_weights_equal(again, dir / "vgg_v1.safetensors");
  const Tensor image = testing::random_image(224, 224, 3);
  Graph a(imported.graph), b(again.graph);
  SafetensorsFile weights;
  for (const auto& w : imported.weights) weights.tensors[w.first] = w.second;
  a.reshape({{"data", image.shape()}});
  b.reshape({{"data", image.shape()}});
  load_params(a, weights, "v1", LoadMode::strict);
  load_params(b, weights, "layer", LoadMode::strict);
  CHECK(scores(a, image).shape() == Shape{1, 1000, 1, 1});
  CHECK(relative_difference(scores(a, image), scores(b, image)) == 0);

  // init.weights of voc-fcn32s: the trunk and fc6/fc7 load, fc8 is reported
  ModelSpec spec;
  spec.arch = "fcn32s";
  spec.width = kWidth;
  Graph fcn32s(build_fcn_graph(spec));
  fcn32s.reshape({{"data", {1, 3, 64, 64}}, {"label", {1, 1, 64, 64}}});
  const LoadReport report = load_params(fcn32s, weights, "vgg16", LoadMode::lenient);
  CHECK(report.loaded.size() == 30);  // 13 convs + fc6 + fc7, weight and bias
  CHECK(report.unused == std::vector<std::string>{"fc8.bias", "fc8.weight"});
  const Tensor& fc6 = fcn32s.find_param("fc6.weight")->data;
  CHECK(std::equal(fc6.data(), fc6.data() + fc6.numel(), imported.weights.at("fc6.weight").data()));
}

TEST_CASE("a deploy prototxt gives the structure, the caffemodel the blobs") {
  TempDir dir;
  const std::string full = make_caffemodel(dir, "full", "--arch fcn16s --width 0.25 --classes 5 --seed 9");
  const std::string deploy = dir / "net.prototxt";
  const std::string split = dir / "split.caffemodel";
  const std::string command = "/usr/bin/python3 " + std::string(FCN_SOURCE_DIR) +
                              "/tools/make_caffemodel.py --arch fcn16s --width 0.25 --classes 5 --seed 9 --out " +
                              split + " --deploy " + deploy;
  REQUIRE(std::system(command.c_str()) == 0);
  const CaffeImport expected = import_caffe(full);
  const CaffeImport imported = import_caffe(split, deploy);
  CHECK(imported.graph == expected.graph);
  check_weights_equal(imported, dir / "full.safetensors");
  // without the deploy net the names-and-blobs file has no structure to import
  CHECK_THROWS_AS(import_caffe(split), Error);

  // VGG16's deploy net declares its input the legacy way (NetParameter.input)
  const std::string vgg = make_caffemodel(dir, "vgg", "--arch vgg16 --width 0.125 --seed 2");
  const std::string vgg_deploy = dir / "vgg.prototxt", vgg_split = dir / "vgg_split.caffemodel";
  const std::string vgg_command = "/usr/bin/python3 " + std::string(FCN_SOURCE_DIR) +
                                  "/tools/make_caffemodel.py --arch vgg16 --width 0.125 --seed 2 --out " + vgg_split +
                                  " --deploy " + vgg_deploy;
  REQUIRE(std::system(vgg_command.c_str()) == 0);
  const CaffeImport vgg_imported = import_caffe(vgg_split, vgg_deploy);
  CHECK(vgg_imported.graph == import_caffe(vgg).graph);
  check_weights_equal(vgg_imported, dir / "vgg.safetensors");
}

TEST_CASE("import writes config.json and weights.safetensors and never overwrites them") {
  TempDir dir;
  const std::string file = make_caffemodel(dir, "m", "--arch fcn32s --width 0.25 --classes 5");
  const CaffeImport imported = import_caffe(file);
  const std::string out = dir / "out";
  write_caffe_import(imported, out);
  const json config = read_json_file(out + "/config.json");
  CHECK(config["model"]["graph"] == imported.graph);
  CHECK(config["model"]["num_classes"] == kClasses);
  CHECK(config["data"]["channel_order"] == "bgr");
  CHECK(config["data"]["mean"] == json({104.00698793, 116.66876762, 122.67891434}));
  const SafetensorsFile written = read_safetensors(out + "/weights.safetensors");
  CHECK(written.tensors.size() == imported.weights.size());
  try {
    write_caffe_import(imported, out);
    FAIL("a second import into the same directory must be refused");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("exists; choose another --out or delete it") != std::string::npos);
  }
}

TEST_CASE("empty, random, truncated and missing files are one-line errors naming the file and the offset") {
  TempDir dir;
  const std::string good = make_caffemodel(dir, "good", "--arch fcn32s --width 0.25 --classes 5");
  std::ifstream in(good, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto write = [&](const std::string& name, const std::string& content) {
    std::ofstream(dir / name, std::ios::binary) << content;
    return dir / name;
  };
  std::string random(4096, '\0');
  std::mt19937 rng(1);
  for (auto& c : random) c = static_cast<char>(rng());
  const std::vector<std::string> files = {
      write("empty.caffemodel", ""),
      write("random.caffemodel", random),
      write("truncated.caffemodel", bytes.substr(0, bytes.size() / 2)),
      write("cut_in_header.caffemodel", bytes.substr(0, 3)),
      write("text.caffemodel", "name: \"not binary\"\nlayer { name: \"x\" }\n"),
  };
  for (const auto& file : files) {
    INFO(file);
    const std::string message = error_of(file);
    CHECK(message.find(file) == 0);
    CHECK(message.find("byte offset") != std::string::npos);
    CHECK(message.find('\n') == std::string::npos);
  }
  CHECK(error_of(dir / "truncated.caffemodel").find("truncated") != std::string::npos);
  CHECK(error_of(dir / "missing.caffemodel").find("cannot open") != std::string::npos);
}

namespace {

// Runs tools/make_caffemodel.py with `options` (no --reference).
void run_make_caffemodel(const std::string& options) {
  const std::string command = "/usr/bin/python3 " + std::string(FCN_SOURCE_DIR) + "/tools/make_caffemodel.py " + options;
  INFO(command);
  REQUIRE(std::system(command.c_str()) == 0);
}

// `text` (a deploy prototxt) with its first `from` replaced by `to`, written
// to DIR/changed.prototxt; returns that path.
std::string changed_prototxt(const TempDir& dir, const std::string& text, const std::string& from,
                             const std::string& to) {
  const auto at = text.find(from);
  REQUIRE(at != std::string::npos);
  std::string changed = text;
  changed.replace(at, from.size(), to);
  const std::string path = dir / "changed.prototxt";
  std::ofstream(path) << changed;
  return path;
}

double relative_l2(const Tensor& got, const Tensor& expected) {
  REQUIRE(got.numel() == expected.numel());
  double diff = 0, norm = 0;
  for (int64_t i = 0; i < got.numel(); ++i) {
    const double d = static_cast<double>(got.data()[i]) - expected.data()[i];
    diff += d * d;
    norm += static_cast<double>(expected.data()[i]) * expected.data()[i];
  }
  REQUIRE(norm > 0);
  return std::sqrt(diff / norm);
}

// The imported net's output for the file's input, against Caffe's (float64) output.
void check_imported_output(const CaffeImport& imported, const std::string& expected_file, int64_t channels) {
  CHECK(imported.graph["inputs"]["data"]["channels"] == channels);
  const SafetensorsFile expected = read_safetensors(expected_file);
  const Tensor& x = expected.tensors.at("data");
  Graph graph(imported.graph, "imported");
  graph.reshape({{"data", x.shape()}});
  SafetensorsFile weights;
  for (const auto& w : imported.weights) weights.tensors[w.first] = w.second;
  const LoadReport report = load_params(graph, weights, "imported", LoadMode::strict);
  CHECK(report.missing.empty());
  graph.blob("data") = x;
  graph.forward(Mode::test);
  const Tensor& got = graph.blob(score_blob_name(graph));
  const double error = relative_l2(got, expected.tensors.at("expected"));
  INFO("relative L2 " << error);
  CHECK(error <= 1e-5);
}

}  // namespace

TEST_CASE("nets of 1, 3 and 6 channels with grouped rectangular convolutions, AVE pooling, BatchNorm + Scale, Crop, "
          "Concat, leaky ReLU and InnerProduct give Caffe's outputs, in both layouts") {
  TempDir dir;
  for (const int channels : {1, 3, 6}) {
    for (const std::string layout : {"layer", "v1"}) {
      INFO(channels << " channels, layout " << layout);
      const std::string name = "mixed" + std::to_string(channels) + layout;
      const std::string file = dir / (name + ".caffemodel"), expected = dir / (name + "_expected.safetensors");
      run_make_caffemodel("--arch mixed --channels " + std::to_string(channels) + " --layout " + layout +
                          " --seed " + std::to_string(channels) + " --out " + file + " --expected " + expected +
                          " --reference " + (dir / (name + ".safetensors")));
      const CaffeImport imported = import_caffe(file);
      check_weights_equal(imported, dir / (name + ".safetensors"));
      CHECK(imported.weights.at("fc.weight").shape() == (layout == "layer" ? Shape{5, 12, 7, 5} : Shape{5, 12, 10, 5}));
      CHECK(imported.weights.at("fc2.weight").shape() == Shape{3, 5, 1, 1});
      check_imported_output(imported, expected, channels);
      if (layout == "layer") {  // V1 has no BatchNorm
        const json& layers = imported.graph["layers"];
        auto spec = [&](const std::string& name) {
          const auto it = std::find_if(layers.begin(), layers.end(), [&](const json& l) { return l["name"] == name; });
          REQUIRE(it != layers.end());
          return *it;
        };
        // the Scales are folded: gamma and beta of the batch norms
        CHECK(spec("bn1")["mode"] == "train");  // use_global_stats unset
        CHECK(spec("bn2")["mode"] == "frozen");
        CHECK(spec("bn1")["affine"] == true);
        CHECK(std::abs(spec("bn2")["momentum"].get<double>() - 0.01) < 1e-6);
        CHECK(std::none_of(layers.begin(), layers.end(), [](const json& l) { return l["type"] == "scale"; }));
        CHECK(spec("pool1")["type"] == "avg_pool");
      }
    }
  }
  // a deploy prototxt with fillers and engines gives the structure, quietly
  const std::string split = dir / "split.caffemodel", deploy = dir / "deploy.prototxt";
  run_make_caffemodel("--arch mixed --channels 3 --seed 4 --out " + split + " --deploy " + deploy + " --expected " +
                      (dir / "split_expected.safetensors"));
  check_imported_output(import_caffe(split, deploy), dir / "split_expected.safetensors", 3);
}

TEST_CASE("a field that changes Caffe's result and has no fcn equivalent is refused in one line naming layer and "
          "field") {
  TempDir dir;
  const std::string model = dir / "m.caffemodel", deploy = dir / "deploy.prototxt";
  run_make_caffemodel("--arch mixed --channels 3 --out " + model + " --deploy " + deploy);
  std::ifstream in(deploy);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto refusal = [&](const std::string& from, const std::string& to) {
    const std::string path = changed_prototxt(dir, text, from, to);
    try {
      import_caffe(model, path);
    } catch (const Error& e) {
      CHECK(std::string(e.what()).find('\n') == std::string::npos);
      return std::string(e.what());
    }
    FAIL("imported with " << to);
    return std::string();
  };
  const std::vector<std::pair<std::pair<std::string, std::string>, std::string>> cases = {
      {{"axis: -3", "axis: 0"}, "layer 'cat' (Concat): "},
      {{"pool: AVE", "pool: STOCHASTIC"}, "layer 'pool1' (Pooling): pooling_param.pool: is STOCHASTIC"},
      {{"engine: CAFFE", "axis: 2"}, "layer 'conv1' (Convolution): convolution_param.axis: "},
      {{"operation: SUM", "operation: PROD"}, "layer 'fuse' (Eltwise): eltwise_param.operation: is PROD"},
      {{"operation: SUM", "operation: MAX"}, "layer 'fuse' (Eltwise): eltwise_param.operation: is MAX"},
      {{"transpose: true", "transpose: true axis: 2"}, "layer 'fc2' (InnerProduct): inner_product_param.axis: "},
      {{"  axis: 2\n", "  axis: -7\n"}, "layer 'crop' (Crop): crop_param.axis: is -7"},
      {{"pool: MAX", "pool: MAX global_pooling: true"}, "(Pooling): pooling_param.global_pooling: with MAX"},
      {{"negative_slope: 0.1", "negative_slope: 0.1 slope_h: 2"}, "no field named \"slope_h\""},
      {{"use_global_stats: true", "use_global_stats: false"},
       "layer 'bn2' (BatchNorm): batch_norm_param.use_global_stats: is false"},
  };
  for (const auto& item : cases) {
    INFO(item.first.second);
    const std::string message = refusal(item.first.first, item.first.second);
    INFO(message);
    CHECK(message.find(item.second) != std::string::npos);
  }
  CHECK(refusal("negative_slope: 0.1", "negative_slope: 0.1 slope_h: 2").rfind(dir / "changed.prototxt:", 0) == 0);

  // a binary file with a field BVLC's schema lacks in a layer's parameters
  const std::string fork = dir / "fork.caffemodel";
  run_make_caffemodel("--arch mixed --channels 3 --fork-field --out " + fork);
  const std::string message = error_of(fork);
  CHECK(message.find("layer 'conv1' (Convolution): convolution_param has field number 19") != std::string::npos);

  // a BatchNorm without its moving-average normaliser s: the statistics cannot be recovered
  const std::string two_blobs = dir / "two_blobs.caffemodel";
  run_make_caffemodel("--arch mixed --channels 3 --drop-last-blob bn1 --out " + two_blobs);
  const std::string bn_message = error_of(two_blobs);
  CHECK(bn_message.find("layer 'bn1' (BatchNorm): has 2 blobs, expected 3") != std::string::npos);
  CHECK(bn_message.find('\n') == std::string::npos);
}

TEST_CASE("Caffe's loss_weight becomes the loss's loss_weight and is refused on a layer that is no loss") {
  TempDir dir;
  const std::string model = dir / "m.caffemodel", deploy = dir / "deploy.prototxt";
  run_make_caffemodel("--arch fcn8s --width 0.25 --classes 5 --out " + model + " --deploy " + deploy);
  std::ifstream in(deploy);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // the prototxt with `insert` after the first `after`
  auto with = [&](const std::string& after, const std::string& insert) {
    return changed_prototxt(dir, text, after, after + insert);
  };
  auto loss_spec = [](const CaffeImport& imported) {
    for (const json& layer : imported.graph["layers"])
      if (layer["type"] == "softmax_loss") return layer;
    FAIL("no softmax_loss in the imported graph");
    return json();
  };
  CHECK_FALSE(loss_spec(import_caffe(model, deploy)).contains("loss_weight"));  // unset: 1
  const json weighted = loss_spec(import_caffe(model, with("type: \"SoftmaxWithLoss\"\n", "  loss_weight: 0.5\n")));
  CHECK(weighted.value("loss_weight", 1.0) == 0.5);
  try {
    import_caffe(model, with("name: \"score_fr\"\n  type: \"Convolution\"\n", "  loss_weight: 1\n"));
    FAIL("a conv with a loss_weight imported");
  } catch (const Error& e) {
    INFO(e.what());
    CHECK(std::string(e.what()).find("layer 'score_fr' (Convolution): loss_weight: is set on a layer that is no loss") !=
          std::string::npos);
  }
}
