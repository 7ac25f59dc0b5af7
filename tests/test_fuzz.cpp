// Bounded, deterministic fuzz tests of every reader of untrusted input: the
// JSON/config parser, graph-spec validation, the safetensors reader, the
// label PNG reader, the image decoder and the SBD .mat label reader. Each test mutates valid inputs
// (byte flips, truncations, type swaps, key renames, header and chunk edits)
// with a fixed seed, thousands of times, and requires that every input
// either loads or throws fcn::Error: any other exception fails the test, and
// a crash or a sanitizer report fails the process.
//
// FCN_FUZZ_SCALE=F multiplies the iteration counts (e.g. 10 for a longer
// local run); FCN_FUZZ_TRACE=1 prints every input to stderr before it runs,
// so the input that crashed a process is the last one printed;
// FCN_FUZZ_SAVE=FILE writes each input to FILE before it runs (only input
// number FCN_FUZZ_SAVE_INDEX when that is set).
#include <catch2/catch.hpp>
#include <png.h>

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <typeinfo>
#include <vector>

#include "data_fixtures.hpp"
#include "fcn/model/config.hpp"
#include "fcn/data/sbd_mat.hpp"
#include "fcn/core/error.hpp"
#include "fcn/graph/graph.hpp"
#include "fcn/io/image_io.hpp"
#include "fcn/io/safetensors.hpp"
#include "fcn/core/spec_reader.hpp"
#include "fcn/model/weights.hpp"

using namespace fcn;

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr double kSanitizerScale = 0.4;  // ASan runs are slower; keep the suite's time bounded
#else
constexpr double kSanitizerScale = 1.0;
#endif

int iterations(int base) {
  double scale = kSanitizerScale;
  if (const char* env = std::getenv("FCN_FUZZ_SCALE")) scale = std::atof(env);
  return std::max(1, static_cast<int>(base * scale));
}

bool tracing() {
  static const bool on = std::getenv("FCN_FUZZ_TRACE") != nullptr;
  return on;
}

// A deterministic random source with the helpers the mutators need.
class Rng {
 public:
  explicit Rng(uint64_t seed) : engine_(seed) {}
  uint64_t next() { return engine_(); }
  size_t below(size_t n) { return n ? static_cast<size_t>(engine_() % n) : 0; }
  bool chance(int percent) { return below(100) < static_cast<size_t>(percent); }
  template <typename T>
  const T& pick(const std::vector<T>& items) { return items[below(items.size())]; }

 private:
  std::mt19937_64 engine_;
};

std::string printable(const std::string& bytes, size_t limit = 400) {
  std::string out;
  for (size_t i = 0; i < bytes.size() && i < limit; ++i) {
    const unsigned char c = static_cast<unsigned char>(bytes[i]);
    if (c >= 32 && c < 127 && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  if (bytes.size() > limit) out += "... (" + std::to_string(bytes.size()) + " bytes)";
  return out;
}

// Counts outcomes; anything but success or fcn::Error is a failure, kept
// with its input for the report.
class FuzzRun {
 public:
  explicit FuzzRun(std::string name) : name_(std::move(name)), start_(std::chrono::steady_clock::now()) {}

  void run(const std::string& input, const std::function<void()>& body) {
    ++count_;
    if (tracing()) std::fprintf(stderr, "[%s #%d] %s\n", name_.c_str(), count_, printable(input).c_str());
    if (const char* save = std::getenv("FCN_FUZZ_SAVE")) {
      if (std::getenv("FCN_FUZZ_SAVE_INDEX") == nullptr || std::atoi(std::getenv("FCN_FUZZ_SAVE_INDEX")) == count_)
        std::ofstream(save, std::ios::binary).write(input.data(), static_cast<std::streamsize>(input.size()));
    }
    const auto started = std::chrono::steady_clock::now();
    struct Timer {
      FuzzRun& run;
      std::chrono::steady_clock::time_point started;
      const std::string& input;
      ~Timer() {
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        if (s > run.slowest_) {
          run.slowest_ = s;
          run.slowest_input_ = "#" + std::to_string(run.count_) + " " + printable(input, 120);
        }
      }
    } timer{*this, started, input};
    try {
      body();
      ++loaded_;
    } catch (const Error& e) {
      ++rejected_;
      if (std::string(e.what()).empty()) fail(input, "fcn::Error with an empty message");
    } catch (const std::exception& e) {
      fail(input, std::string("non-fcn exception ") + typeid(e).name() + ": " + e.what());
    } catch (...) {
      fail(input, "unknown exception");
    }
  }
  // A property that must hold for an input that loaded.
  void fail(const std::string& input, const std::string& problem) {
    ++failures_;
    if (examples_.size() < 5) examples_.push_back("#" + std::to_string(count_) + ": " + problem + "\n  input: " + printable(input));
  }

  // Prints the counts and checks that nothing failed.
  void report() const {
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    std::printf("fuzz %s: %d inputs, %d loaded, %d rejected with fcn::Error, %d failures, %.2f s (slowest %.3f s: %s)\n",
                name_.c_str(), count_, loaded_, rejected_, failures_, seconds, slowest_, slowest_input_.c_str());
    std::fflush(stdout);
    for (const auto& example : examples_) UNSCOPED_INFO(example);
    CHECK(failures_ == 0);
    // The mutators must reach both outcomes, or the test exercises little.
    CHECK(loaded_ > 0);
    CHECK(rejected_ > 0);
  }

 private:
  std::string name_;
  std::chrono::steady_clock::time_point start_;
  int count_ = 0, loaded_ = 0, rejected_ = 0, failures_ = 0;
  std::vector<std::string> examples_;
  double slowest_ = 0;
  std::string slowest_input_;
};

// ---- byte-level mutators ------------------------------------------------------

void mutate_bytes(std::string& bytes, Rng& rng, int rounds) {
  static const std::string interesting = std::string("{}[]\":,-+0123456789eE.\\ntfu") + '\0' + "\xff\x80\n ";
  for (int r = 0; r < rounds; ++r) {
    const size_t n = bytes.size();
    switch (rng.below(7)) {
      case 0:  // flip a bit
        if (n) bytes[rng.below(n)] ^= static_cast<char>(1u << rng.below(8));
        break;
      case 1:  // overwrite with a syntax character
        if (n) bytes[rng.below(n)] = interesting[rng.below(interesting.size())];
        break;
      case 2:  // truncate
        bytes.resize(rng.below(n + 1));
        break;
      case 3: {  // delete a range
        if (!n) break;
        const size_t at = rng.below(n);
        bytes.erase(at, 1 + rng.below(std::min<size_t>(16, n - at)));
        break;
      }
      case 4: {  // duplicate a range
        if (!n) break;
        const size_t at = rng.below(n);
        const std::string piece = bytes.substr(at, 1 + rng.below(16));
        bytes.insert(rng.below(n + 1), piece);
        break;
      }
      case 5:  // insert random bytes
        bytes.insert(rng.below(n + 1), std::string(1 + rng.below(4), static_cast<char>(rng.below(256))));
        break;
      default:  // set a random byte
        if (n) bytes[rng.below(n)] = static_cast<char>(rng.below(256));
        break;
    }
  }
}

// ---- JSON-level mutators ----------------------------------------------------

json interesting_value(Rng& rng) {
  static const std::vector<json> values = {
      nullptr, true, false, 0, -1, 1, 2, 3, 7, 64, 100,
      // no 2^28..2^33: a num_output that large makes a valid multi-GB zero-filled bias (slow, not a bug)
      json(int64_t{1} << 36), json(-(int64_t{1} << 31)), json(int64_t{1} << 53), json(int64_t{1} << 62),
      json(std::numeric_limits<int64_t>::max()), json(std::numeric_limits<int64_t>::min()),
      json(std::numeric_limits<uint64_t>::max()), 0.5, -0.5, 1.5, 0.0, 1e300, -1e300, 1e-300, 2.0,
      "", "x", "auto", "fcn8s", "valid", "stop", "skip", "conv", "deconv", "data", "label", "voc", "folder",
      "bilinear", "gaussian", json::array(), json::array({1}), json::array({1, 2}), json::array({0, 0}),
      json::array({-1, 2}), json::array({2, 3, 4}), json::array({"a", "b"}), json::array({1.5, 2}),
      json::object(), json{{"type", "gaussian"}, {"std", -1}}, json{{"channels", 0}},
      std::string(300, 'z')};
  return rng.pick(values);
}

// Every node's pointer, containers included (the root is "").
void collect_pointers(const json& node, const json::json_pointer& at, std::vector<json::json_pointer>& out) {
  out.push_back(at);
  if (node.is_object()) {
    for (const auto& item : node.items()) collect_pointers(item.value(), at / item.key(), out);
  } else if (node.is_array()) {
    for (size_t i = 0; i < node.size(); ++i) collect_pointers(node[i], at / i, out);
  }
}

std::string mutate_key(const std::string& key, Rng& rng) {
  static const std::vector<std::string> known = {
      "kernel", "stride", "pad", "dilation", "groups", "num_output", "bias", "weight_init", "bias_init", "lr_mult",
      "decay_mult", "bias_lr_mult", "output_padding", "ceil_mode", "offset", "axis", "coeffs", "value", "learnable",
      "negative_slope", "ratio", "ignore_label", "normalize", "inputs", "name", "type", "layers", "channels",
      "arch", "num_classes", "width", "graph", "root", "format", "augment", "scale", "crop", "flip", "mean_bgr",
      "base_lr", "lr_policy", "stepsize", "stepvalues", "max_iter", "on_nan", "on_error", "threads", "weights",
      "dtype", "shape", "data_offsets", "__metadata__"};
  std::string out = key;
  switch (rng.below(5)) {
    case 0:
      if (!out.empty()) out.erase(rng.below(out.size()), 1);  // drop a letter: "strid"
      break;
    case 1:
      out.insert(rng.below(out.size() + 1), 1, static_cast<char>('a' + rng.below(26)));
      break;
    case 2:
      if (out.size() > 1) {
        const size_t i = rng.below(out.size() - 1);
        std::swap(out[i], out[i + 1]);
      }
      break;
    case 3:
      out = rng.pick(known);
      break;
    default:
      out = out.empty() ? "X" : std::string(1, static_cast<char>(std::toupper(out[0]))) + out.substr(1);
      break;
  }
  return out;
}

void mutate_json(json& doc, Rng& rng, const std::vector<std::string>& strings) {
  std::vector<json::json_pointer> pointers;
  collect_pointers(doc, json::json_pointer(), pointers);
  const json::json_pointer at = rng.pick(pointers);
  json& node = doc[at];
  const bool is_root = at.empty();
  switch (rng.below(8)) {
    case 0:  // replace with a value of any type
      node = interesting_value(rng);
      break;
    case 1:  // rename a key of an object
      if (node.is_object() && !node.empty()) {
        auto it = node.begin();
        std::advance(it, static_cast<std::ptrdiff_t>(rng.below(node.size())));
        const std::string key = it.key();
        json value = it.value();
        node.erase(key);
        node[mutate_key(key, rng)] = std::move(value);
      }
      break;
    case 2:  // delete a member or element
      if (!is_root) {
        json& parent = doc[at.parent_pointer()];
        if (parent.is_object()) {
          parent.erase(at.back());
        } else if (parent.is_array()) {
          parent.erase(static_cast<size_t>(std::stoul(at.back())));
        }
      }
      break;
    case 3:  // duplicate or reorder array elements
      if (node.is_array() && !node.empty()) {
        const size_t i = rng.below(node.size()), j = rng.below(node.size());
        if (rng.chance(50)) {
          node.insert(node.begin() + static_cast<std::ptrdiff_t>(j), json(node[i]));
        } else {
          std::swap(node[i], node[j]);
        }
      }
      break;
    case 4:  // nudge a number
      if (node.is_number_integer()) {
        // wrapping arithmetic: the value may be INT64_MIN or INT64_MAX already
        const uint64_t v = static_cast<uint64_t>(node.get<int64_t>());
        const uint64_t nudged[] = {v + 1, v - 1, 0 - v, v * 2, 0, v + 1000};
        node = static_cast<int64_t>(nudged[rng.below(6)]);
      } else if (node.is_number_float()) {
        const double v = node.get<double>();
        const double nudged[] = {v * 10, -v, 0.0, v / 1e6, v + 0.5};
        node = nudged[rng.below(5)];
      } else {
        node = interesting_value(rng);
      }
      break;
    case 5:  // another string of the document (blob names, types, keys)
      node = rng.pick(strings);
      break;
    case 6:  // an added key, known or not
      if (node.is_object()) node[mutate_key(rng.pick(strings), rng)] = interesting_value(rng);
      break;
    default:  // a type swap keeping the value's spirit: 3 -> "3", 3 -> [3], "x" -> ["x"]
      if (node.is_number()) {
        node = rng.chance(50) ? json(node.dump()) : json::array({node});
      } else if (node.is_string() || node.is_boolean()) {
        node = rng.chance(50) ? json::array({node}) : json(node.is_string() ? json(1) : json(node.dump()));
      } else if (node.is_array() && node.size() == 1) {
        node = json(node[0]);
      } else {
        node = interesting_value(rng);
      }
      break;
  }
}

void collect_strings(const json& node, std::vector<std::string>& out) {
  if (node.is_string()) out.push_back(node.get<std::string>());
  if (node.is_object())
    for (const auto& item : node.items()) {
      out.push_back(item.key());
      collect_strings(item.value(), out);
    }
  if (node.is_array())
    for (const auto& item : node) collect_strings(item, out);
}

// A mutated document as text: JSON-level edits, then sometimes byte edits.
std::string mutated_text(const json& base, Rng& rng, const std::vector<std::string>& strings) {
  json doc = base;
  const int edits = 1 + static_cast<int>(rng.below(3));
  for (int i = 0; i < edits; ++i) mutate_json(doc, rng, strings);
  std::string text = doc.dump(rng.chance(50) ? 1 : -1);
  if (rng.chance(30)) mutate_bytes(text, rng, 1 + static_cast<int>(rng.below(3)));
  return text;
}

// ---- bases -------------------------------------------------------------------

// A small graph using every layer type, skip fusion and both crop forms; it
// runs at 16x16 in well under a millisecond.
const char* const kGraphSpec = R"({
 "inputs": {"data": {"channels": 3}, "label": {"channels": 1}},
 "layers": [
  {"name": "conv1", "type": "conv", "inputs": ["data"], "num_output": 8, "kernel": 3, "pad": 1},
  {"name": "bn1", "type": "batch_norm", "inputs": ["conv1"], "eps": 1e-5, "momentum": 0.1, "mode": "train",
   "affine": true, "bias_lr_mult": 1},
  {"name": "relu1", "type": "relu", "inputs": ["bn1"], "negative_slope": 0.0},
  {"name": "pool1", "type": "max_pool", "inputs": ["relu1"], "kernel": 2, "stride": 2, "ceil_mode": true},
  {"name": "conv2", "type": "conv", "inputs": ["pool1"], "num_output": 8, "kernel": [3, 3], "pad": [1, 1],
   "dilation": 1, "groups": 2, "weight_init": {"type": "gaussian", "std": 0.01}, "bias_lr_mult": 2,
   "bias_decay_mult": 0},
  {"name": "drop2", "type": "dropout", "inputs": ["conv2"], "ratio": 0.5},
  {"name": "avg2", "type": "avg_pool", "inputs": ["drop2"], "kernel": 3, "stride": 1, "pad": 1,
   "count_include_pad": false, "ceil_mode": true},
  {"name": "bn2", "type": "batch_norm", "inputs": ["avg2"], "mode": "frozen", "affine": false},
  {"name": "score", "type": "conv", "inputs": ["bn2"], "num_output": 4, "kernel": 1, "weight_init": "xavier"},
  {"name": "global", "type": "avg_pool", "inputs": ["score"], "global": true},
  {"name": "up", "type": "deconv", "inputs": ["score"], "num_output": 4, "kernel": 4, "stride": 2, "bias": false,
   "weight_init": "bilinear", "lr_mult": 0},
  {"name": "score_c1", "type": "conv", "inputs": ["conv1"], "num_output": 4, "kernel": 1, "weight_init": "zero"},
  {"name": "scaled", "type": "scale", "inputs": ["score_c1"], "value": 0.01, "learnable": false},
  {"name": "crop_up", "type": "crop", "inputs": ["up", "data"], "offset": "auto"},
  {"name": "half", "type": "resize", "inputs": ["scaled"], "scale": 0.5},
  {"name": "back", "type": "resize", "inputs": ["half", "data"], "align_corners": true},
  {"name": "crop_c1", "type": "crop", "inputs": ["back", "data"], "axis": 2, "offset": [0, 0]},
  {"name": "both", "type": "concat", "inputs": ["crop_up", "crop_c1"], "axis": 1},
  {"name": "pick", "type": "crop", "inputs": ["both", "crop_up"], "axis": 1, "offset": [2, 0, 0]},
  {"name": "fuse", "type": "sum", "inputs": ["crop_up", "pick"], "coeffs": [1, 1]},
  {"name": "loss", "type": "softmax_loss", "inputs": ["fuse", "label"], "ignore_label": 255, "normalize": "valid"}
 ]})";

const char* const kZooConfig = R"({
 "model": {"arch": "fcn8s", "num_classes": 21, "width": 1.0, "normalize": "none", "ignore_label": 255,
           "dropout": 0.5, "weight_init": "msra", "score_init": {"type": "gaussian", "std": 0.01}},
 "data": {"format": "voc", "root": "data/VOCdevkit/VOC2012", "train_split": "train", "val_split": "seg11valid",
          "mean_bgr": [104.00698793, 116.66876762, 122.67891434], "augment": {"flip": true, "scale": [0.5, 2.0],
          "crop": [320, 320]}, "seed": 1337, "on_error": "skip", "ignore_label": 255, "prefetch": 4},
 "solver": {"base_lr": 1e-14, "lr_policy": "step", "gamma": 0.1, "stepsize": 1000, "momentum": 0.99,
            "weight_decay": 0.0005, "iter_size": 1, "max_iter": 100000, "snapshot_every": 4000, "test_every": 4000,
            "display_every": 20, "val_limit": 0, "threads": 0, "seed": 1337, "on_nan": "stop"},
 "init": {"weights": "runs/voc-fcn16s/final.safetensors"}
})";

json graph_config() {
  json config = json::parse(R"({
   "data": {"format": "folder", "root": "data/x", "image_dir": "img", "label_dir": "lbl", "image_ext": ".png",
            "class_names": ["bg", "a", "b", "c"]},
   "solver": {"base_lr": 0.001, "lr_policy": "multistep", "stepvalues": [10, 20], "momentum": 0.9,
              "iter_size": 2, "max_iter": 30, "on_nan": "skip"}})");
  config["model"] = {{"graph", json::parse(kGraphSpec)}, {"num_classes", 4}};
  return config;
}

// ---- graph target -------------------------------------------------------------

int64_t total_numel(Graph& graph) {
  int64_t total = 0;
  for (const auto& name : graph.blob_names()) total += graph.blob(name).numel();
  for (Param* p : graph.params()) total += p->data.numel();
  return total;
}

// Builds, reshapes at HxW and, when small enough, runs forward and backward.
void exercise_graph(const json& spec, int64_t height, int64_t width, bool grad_all_blobs, uint64_t seed) {
  GraphOptions options;
  options.grad_all_blobs = grad_all_blobs;
  Graph graph(spec, "graph", options);
  std::map<std::string, Shape> shapes;
  for (const auto& name : graph.input_names()) shapes[name] = {1, graph.input_channels(name), height, width};
  graph.reshape(shapes);
  graph.init_params(seed);
  if (total_numel(graph) > (int64_t{1} << 22)) return;  // valid but too big to run in a fuzz loop
  Rng rng(seed);
  for (const auto& name : graph.input_names()) {
    Tensor& blob = graph.blob(name);
    for (int64_t i = 0; i < blob.numel(); ++i)
      blob[i] = name == "label" ? static_cast<float>(rng.chance(10) ? 255 : rng.below(4))
                                : static_cast<float>(rng.below(2001)) / 100.f - 10.f;
  }
  graph.forward(Mode::train);
  graph.zero_param_grads();
  graph.backward();
  graph.forward(Mode::test);
  if (!std::isfinite(graph.loss()) && graph.loss() == graph.loss()) throw Error("infinite loss");  // allowed outcome
}

// ---- safetensors target ------------------------------------------------------

void append_le(std::string& out, uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out += static_cast<char>((value >> (8 * i)) & 0xff);
}

std::string safetensors_bytes(const json& header, const std::string& data) {
  const std::string text = header.dump();
  std::string out;
  append_le(out, text.size(), 8);
  return out + text + data;
}

// A valid file in every dtype the reader converts, with params of the small
// graph so that loading exercises the shape checks too.
struct SafetensorsBase {
  json header;
  std::string data;
};

SafetensorsBase safetensors_base() {
  SafetensorsBase base;
  base.header = json::object();
  base.header["__metadata__"] = {{"format", "fcn-checkpoint"}, {"iter", "12"}, {"lr", "0.001"}};
  auto add = [&](const std::string& name, const std::string& dtype, const Shape& shape, size_t element_size) {
    const size_t count = static_cast<size_t>(shape_numel(shape));
    const size_t begin = base.data.size();
    for (size_t i = 0; i < count * element_size; ++i) base.data += static_cast<char>((i * 37 + 11) & 0x3f);
    base.header[name] = {{"dtype", dtype}, {"shape", shape}, {"data_offsets", {begin, base.data.size()}}};
  };
  add("conv1.weight", "F32", {8, 3, 3, 3}, 4);
  add("conv1.bias", "F32", {8}, 4);
  add("conv1.weight.momentum", "F32", {8, 3, 3, 3}, 4);
  add("score.bias", "F64", {4}, 8);
  add("steps", "I64", {3}, 8);
  add("counts", "I32", {2, 2}, 4);
  add("mask", "U8", {5}, 1);
  add("signed", "I8", {2}, 1);
  add("flag", "BOOL", {1}, 1);
  add("scalar", "F32", {}, 4);
  add("empty", "F32", {0, 3}, 4);
  return base;
}

json interesting_offset(Rng& rng, size_t data_size) {
  const std::vector<json> values = {0, 1, 4, json(data_size), json(data_size + 1), json(data_size - 1),
                                    json(uint64_t{1} << 32), json(uint64_t{1} << 63),
                                    json(std::numeric_limits<uint64_t>::max()), -1, 1.5, "8"};
  return rng.pick(values);
}

std::string mutated_safetensors(const SafetensorsBase& base, Rng& rng) {
  json header = base.header;
  std::string data = base.data;
  const size_t kind = rng.below(6);
  if (kind <= 1) {  // edit the header's fields (offsets, shapes, dtypes), keep it valid JSON
    std::vector<std::string> names;
    for (const auto& item : header.items())
      if (item.key() != "__metadata__") names.push_back(item.key());
    json& entry = header[rng.pick(names)];
    switch (rng.below(7)) {
      case 0:
        entry["data_offsets"][rng.below(2)] = interesting_offset(rng, data.size());
        break;
      case 1: {
        static const std::vector<json> dtypes = {"F16", "BF16", "U16", "F8_E4M3", "f32", "", 7, "I64", "U8", "F64"};
        entry["dtype"] = rng.pick(dtypes);
        break;
      }
      case 2: {
        static const std::vector<json> shapes = {
            json::array(), json::array({0}), json::array({-1}), json::array({1.5}), json::array({"3"}),
            json::array({uint64_t{1} << 40, uint64_t{1} << 40}), json::array({uint64_t{1} << 62}),
            json::array({std::numeric_limits<uint64_t>::max(), 0}), json::array({2, 2, 2, 2, 2, 2, 2, 2}),
            json(std::vector<int>(100, 1)), json::array({8, 3, 3, 4}), json::array({4}), 7, nullptr};
        entry["shape"] = rng.pick(shapes);
        break;
      }
      case 3:
        entry["data_offsets"] = rng.chance(50) ? json::array({0}) : json::array({0, 4, 8});
        break;
      case 4:
        entry.erase(rng.chance(33) ? "dtype" : rng.chance(50) ? "shape" : "data_offsets");
        break;
      case 5:
        header["__metadata__"][rng.chance(50) ? "iter" : "new"] = interesting_value(rng);
        break;
      default:
        entry = interesting_value(rng);
        break;
    }
  } else if (kind == 2) {  // JSON-level edits anywhere in the header
    static const std::vector<std::string> strings = {"F32", "I64", "dtype", "shape", "data_offsets", "__metadata__",
                                                     "conv1.weight", "iter"};
    mutate_json(header, rng, strings);
  } else if (kind == 3) {  // the data section resized
    data.resize(rng.below(data.size() + 16), '\x7f');
  }
  std::string bytes = safetensors_bytes(header, data);
  if (kind == 4) {  // the 8-byte header length
    const uint64_t header_size = bytes.size() - 8 - data.size();
    const std::vector<uint64_t> lengths = {0, 1, 2, header_size - 1, header_size + 1, bytes.size() - 8,
                                           bytes.size() - 7, uint64_t{1} << 32, uint64_t{1} << 63,
                                           std::numeric_limits<uint64_t>::max(), rng.next()};
    std::string length;
    append_le(length, rng.pick(lengths), 8);
    bytes.replace(0, 8, length);
  }
  if (kind == 5 || rng.chance(20)) mutate_bytes(bytes, rng, 1 + static_cast<int>(rng.below(3)));
  return bytes;
}

// ---- PNG target -----------------------------------------------------------------

uint32_t crc32(const std::string& bytes, size_t begin, size_t end) {
  static const std::vector<uint32_t> table = [] {
    std::vector<uint32_t> t(256);
    for (uint32_t n = 0; n < 256; ++n) {
      uint32_t c = n;
      for (int k = 0; k < 8; ++k) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
      t[n] = c;
    }
    return t;
  }();
  uint32_t c = 0xffffffffu;
  for (size_t i = begin; i < end; ++i) c = table[(c ^ static_cast<unsigned char>(bytes[i])) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

uint32_t read_be32(const std::string& bytes, size_t at) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(bytes[at + i]);
  return v;
}

void write_be32(std::string& bytes, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) bytes[at + i] = static_cast<char>((v >> (24 - 8 * i)) & 0xff);
}

struct PngChunk {
  std::string type;
  std::string data;
};

std::vector<PngChunk> png_chunks(const std::string& png) {
  std::vector<PngChunk> chunks;
  for (size_t at = 8; at + 12 <= png.size();) {
    const uint32_t length = read_be32(png, at);
    chunks.push_back({png.substr(at + 4, 4), png.substr(at + 8, length)});
    at += 12 + length;
  }
  return chunks;
}

std::string png_from_chunks(const std::vector<PngChunk>& chunks) {
  std::string out("\x89PNG\r\n\x1a\n", 8);
  for (const PngChunk& c : chunks) {
    const size_t at = out.size();
    out += std::string(4, '\0') + c.type + c.data + std::string(4, '\0');
    write_be32(out, at, static_cast<uint32_t>(c.data.size()));
    write_be32(out, out.size() - 4, crc32(out, at + 4, out.size() - 4));
  }
  return out;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Removes the old file first: truncating one in place makes ext4 flush it on
// close (auto_da_alloc), a thousand times slower in a loop.
void write_file(const std::string& path, const std::string& bytes) {
  std::remove(path.c_str());
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Chunk-aware edits keep the CRCs right so that libpng looks past them.
std::string mutated_png(const std::string& base, Rng& rng) {
  std::vector<PngChunk> chunks = png_chunks(base);
  const size_t kind = rng.below(6);
  if (kind == 0) {  // IHDR fields
    std::string& ihdr = chunks[0].data;
    switch (rng.below(5)) {
      case 0:
      case 1: {
        static const std::vector<uint32_t> sizes = {0, 1, 7, 33, 1000, 32768, 32769, 0x7fffffffu, 0x80000000u,
                                                    0xffffffffu};
        write_be32(ihdr, rng.chance(50) ? 0 : 4, rng.pick(sizes));
        break;
      }
      case 2:
        ihdr[8] = static_cast<char>(rng.pick(std::vector<int>{0, 1, 2, 3, 4, 8, 16, 255}));  // bit depth
        break;
      case 3:
        ihdr[9] = static_cast<char>(rng.pick(std::vector<int>{0, 2, 3, 4, 6, 7}));  // colour type
        break;
      default:
        ihdr[10 + rng.below(3)] = static_cast<char>(rng.below(3));  // compression, filter, interlace
        break;
    }
  } else if (kind == 1) {  // a chunk's data edited
    PngChunk& chunk = chunks[rng.below(chunks.size())];
    if (!chunk.data.empty()) mutate_bytes(chunk.data, rng, 1 + static_cast<int>(rng.below(2)));
  } else if (kind == 2) {  // chunks dropped, duplicated, reordered or added
    const size_t i = rng.below(chunks.size());
    switch (rng.below(4)) {
      case 0:
        chunks.erase(chunks.begin() + static_cast<std::ptrdiff_t>(i));
        break;
      case 1:
        chunks.insert(chunks.begin() + static_cast<std::ptrdiff_t>(rng.below(chunks.size() + 1)), chunks[i]);
        break;
      case 2:
        std::swap(chunks[i], chunks[rng.below(chunks.size())]);
        break;
      default: {
        static const std::vector<PngChunk> extra = {{"tRNS", std::string(300, '\x10')}, {"tRNS", "\x01\x02"},
                                                    {"PLTE", std::string(3, '\0')}, {"PLTE", std::string(800, 'a')},
                                                    {"IEND", ""}, {"gAMA", "\0\0\0\0"}, {"sBIT", "\x09"},
                                                    {"zzzz", "private"}, {"IDAT", "\x78\x9c"}};
        chunks.insert(chunks.begin() + static_cast<std::ptrdiff_t>(rng.below(chunks.size() + 1)), rng.pick(extra));
        break;
      }
    }
  }
  std::string png = png_from_chunks(chunks);
  if (kind >= 3) mutate_bytes(png, rng, 1 + static_cast<int>(rng.below(3)));  // CRCs broken, truncations
  if (kind == 5 && png.size() > 8) png.resize(8 + rng.below(png.size() - 8));
  return png;
}

}  // namespace

TEST_CASE("fuzz: config parser") {
  Rng rng(20240601);
  FuzzRun run("config");
  const std::vector<json> bases = {json::parse(kZooConfig), graph_config()};
  std::vector<std::string> strings;
  for (const json& base : bases) collect_strings(base, strings);
  const int n = iterations(6000);
  for (int i = 0; i < n; ++i) {
    const json& base = bases[rng.below(bases.size())];
    std::string text = mutated_text(base, rng, strings);
    std::vector<std::string> overrides;
    if (rng.chance(15)) {
      static const std::vector<std::string> sets = {
          "solver.max_iter=500", "model.width=0.25", "data.root=/tmp/x", "model.arch", "=3", "a..b=1",
          "model.num_classes=[1]", "solver=3", "solver.max_iter.x=1", "model.graph.layers=7", "data.augment.crop=0",
          "x.y.z={\"a\": }", "solver.base_lr=-1", "model=null"};
      overrides.push_back(rng.pick(sets));
    }
    run.run(text, [&] {
      json doc = parse_json_text(text, "fuzz.json");
      apply_overrides(doc, overrides);
      ModelConfig model;
      bool full = true;
      try {
        const Config config = parse_config(doc, "fuzz.json");
        model = config.model;
        // DIR/config.json (the resolved config) must itself be a valid config with the same meaning
        const json resolved = config.to_json();
        Config again;
        try {
          again = parse_config(json::parse(resolved.dump()), "config.json");
        } catch (const Error& e) {
          run.fail(text, std::string("the resolved config does not parse: ") + e.what() + "\n  resolved: " +
                             resolved.dump());
          return;
        }
        if (again.to_json() != resolved)
          run.fail(text, "the resolved config changes when parsed again: " + resolved.dump() + " vs " +
                             again.to_json().dump());
      } catch (const Error&) {
        full = false;
      }
      // forward/describe/bench read only the model section
      try {
        model = parse_model_config(doc, "fuzz.json");
      } catch (const Error&) {
        if (full) run.fail(text, "parse_config accepted what parse_model_config rejects");
        throw;
      }
      Graph graph(model_graph_spec(model), "model");  // cheap: weights are sized at reshape
      if (!full) throw Error("rejected by parse_config");
    });
  }
  run.report();
}

TEST_CASE("fuzz: graph spec validation, reshape, forward and backward") {
  Rng rng(777);
  FuzzRun run("graph");
  const json base = json::parse(kGraphSpec);
  std::vector<std::string> strings;
  collect_strings(base, strings);
  // sanity: the base runs
  REQUIRE_NOTHROW(exercise_graph(base, 16, 16, false, 1));
  const int n = iterations(6000);
  for (int i = 0; i < n; ++i) {
    const std::string text = mutated_text(base, rng, strings);
    static const std::vector<int64_t> sizes = {16, 16, 16, 17, 24, 1, 2, 5};
    const int64_t h = rng.pick(sizes), w = rng.chance(80) ? h : rng.pick(sizes);
    const bool grad_all = rng.chance(30);
    const uint64_t seed = rng.next();
    run.run(text, [&] { exercise_graph(parse_json_text(text, "spec.json"), h, w, grad_all, seed); });
  }
  run.report();
}

TEST_CASE("fuzz: safetensors reader and param loading") {
  Rng rng(31337);
  FuzzRun run("safetensors");
  const SafetensorsBase base = safetensors_base();
  const std::string valid = safetensors_bytes(base.header, base.data);
  REQUIRE(parse_safetensors(valid, "base").tensors.size() == 11);
  Graph graph(json::parse(kGraphSpec), "graph");
  graph.reshape({{"data", {1, 3, 16, 16}}, {"label", {1, 1, 16, 16}}});
  const int n = iterations(10000);
  for (int i = 0; i < n; ++i) {
    const std::string bytes = mutated_safetensors(base, rng);
    const bool strict = rng.chance(50);
    run.run(bytes, [&] {
      const SafetensorsFile file = parse_safetensors(bytes, "fuzz.safetensors");
      for (const auto& item : file.tensors)
        if (item.second.numel() != shape_numel(item.second.shape())) throw std::logic_error("numel mismatch");
      load_params(graph, file, "fuzz.safetensors", strict ? LoadMode::strict : LoadMode::lenient);
    });
  }
  run.report();
}

namespace {

// An 8-bit grayscale PNG of `label`, optionally Adam7-interlaced (fcn's own
// writer makes palette PNGs only).
void write_gray_png(const std::string& path, const Image& label, int interlace) {
  FILE* file = std::fopen(path.c_str(), "wb");
  REQUIRE(file != nullptr);
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  REQUIRE((png && info));
  if (setjmp(png_jmpbuf(png))) FAIL("libpng failed writing " << path);
  png_init_io(png, file);
  png_set_IHDR(png, info, label.width, label.height, 8, PNG_COLOR_TYPE_GRAY, interlace, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  std::vector<png_bytep> rows(label.height);
  for (int y = 0; y < label.height; ++y)
    rows[y] = const_cast<png_bytep>(label.pixels.data() + static_cast<size_t>(y) * label.width);
  png_write_image(png, rows.data());  // writes every Adam7 pass when interlaced
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  std::fclose(file);
}

}  // namespace

TEST_CASE("fuzz: label PNG reader") {
  Rng rng(4242);
  FuzzRun run("label png");
  testing::ScratchDir dir("fuzz_png");
  // bases: an 8-bit palette label map (fcn's writer), 8-bit grayscale and
  // interlaced grayscale (libpng, below), a 4-bit palette one (fixture)
  std::vector<std::string> bases;
  Image label(24, 19, 1);
  for (int y = 0; y < label.height; ++y)
    for (int x = 0; x < label.width; ++x) label.at(y, x) = static_cast<uint8_t>((x + 2 * y) % 21);
  label.at(0, 0) = 255;
  write_label_png(dir.file("base.png"), label);
  write_gray_png(dir.file("gray8.png"), label, PNG_INTERLACE_NONE);
  write_gray_png(dir.file("interlaced.png"), label, PNG_INTERLACE_ADAM7);
  for (const std::string& path :
       {dir.file("base.png"), dir.file("gray8.png"), dir.file("interlaced.png"), testing::data_fixture("labels/palette4.png")}) {
    INFO(path << ": a fuzz base must exist");
    REQUIRE(std::ifstream(path).good());
    bases.push_back(read_file(path));
    REQUIRE_NOTHROW(read_label_png(path));  // each base is a valid label map before mutation
  }
  const std::string path = dir.file("fuzz.png");
  const int n = iterations(6000);
  for (int i = 0; i < n; ++i) {
    const std::string bytes = mutated_png(bases[rng.below(bases.size())], rng);
    write_file(path, bytes);
    run.run(bytes, [&] {
      const ImageSize size = read_png_size(path);
      const Image label = read_label_png(path);
      if (label.height != size.height || label.width != size.width || label.channels != 1 ||
          label.pixels.size() != static_cast<size_t>(label.height) * label.width)
        throw std::logic_error("label size disagrees with the header");
    });
  }
  run.report();
}

TEST_CASE("fuzz: image decoder and header size reader") {
  Rng rng(99);
  FuzzRun run("image");
  testing::ScratchDir dir("fuzz_image");
  Image image(20, 28, 3);
  for (size_t i = 0; i < image.pixels.size(); ++i) image.pixels[i] = static_cast<uint8_t>(i * 7);
  write_image(dir.file("base.jpg"), image);
  write_image(dir.file("base.png"), image);
  const std::vector<std::pair<std::string, std::string>> bases = {{".jpg", read_file(dir.file("base.jpg"))},
                                                                  {".png", read_file(dir.file("base.png"))}};
  const int n = iterations(3000);
  for (int i = 0; i < n; ++i) {
    const auto& base = bases[rng.below(bases.size())];
    std::string bytes = base.first == ".png" && rng.chance(50) ? mutated_png(base.second, rng) : base.second;
    if (bytes == base.second) mutate_bytes(bytes, rng, 1 + static_cast<int>(rng.below(3)));
    const std::string path = dir.file("fuzz" + base.first);
    write_file(path, bytes);
    run.run(bytes, [&] {
      const ImageSize size = read_image_size(path);
      const Image decoded = read_image(path);
      if (decoded.channels != 3 || decoded.pixels.size() != static_cast<size_t>(decoded.height) * decoded.width * 3)
        throw std::logic_error("decoded image has the wrong layout");
      (void)size;  // the header may claim another size than the decoder finds; the loader checks labels against both
    });
  }
  run.report();
}

TEST_CASE("fuzz: SBD .mat label reader") {
  Rng rng(5150);
  FuzzRun run("sbd mat");
  testing::ScratchDir dir("fuzz_mat");
  std::vector<std::string> bases;
  for (const char* name : {"sbd/cls/s1.mat", "sbd/cls/s2.mat"}) bases.push_back(read_file(testing::data_fixture(name)));
  REQUIRE_NOTHROW(read_sbd_label(testing::data_fixture("sbd/cls/s1.mat")));
  const std::string path = dir.file("fuzz.mat");
  // 500, not more: with this seed inputs #580 and #2679 are one-byte edits
  // of s1.mat that make libmatio 1.5.23 spend 3 s and 30 s (and ~800 MB)
  // parsing a corrupt struct header. Slow, not a crash (reported); raise
  // the count with FCN_FUZZ_SCALE for a longer run.
  const int n = iterations(500);
  for (int i = 0; i < n; ++i) {
    std::string bytes = bases[rng.below(bases.size())];
    // MATLAB v5: a 128-byte text header, then tagged data elements; edits past the header reach matio's parser
    if (rng.chance(70) && bytes.size() > 136) {
      const size_t at = 128 + rng.below(bytes.size() - 128);
      for (int k = 0; k < 1 + static_cast<int>(rng.below(4)); ++k) bytes[std::min(bytes.size() - 1, at + k)] = static_cast<char>(rng.below(256));
    } else {
      mutate_bytes(bytes, rng, 1 + static_cast<int>(rng.below(3)));
    }
    write_file(path, bytes);
    run.run(bytes, [&] {
      const Image label = read_sbd_label(path);
      if (label.channels != 1 || label.pixels.size() != static_cast<size_t>(label.height) * label.width)
        throw std::logic_error("label layout");
    });
  }
  run.report();
}
