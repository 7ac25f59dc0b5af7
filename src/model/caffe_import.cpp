// fcn import-caffe: Caffe's binary NetParameter -> an fcn graph and weights.
// The messages come from proto/caffe_subset.proto (Caffe's field numbers);
// the top level of the file is walked by hand with CodedInputStream so that
// one layer at a time is in memory as a message.
#include "fcn/model/caffe_import.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstring>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/io/zero_copy_stream_impl.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/wire_format_lite.h>

#include "caffe_subset.pb.h"
#include "fcn/core/error.hpp"
#include "fcn/io/safetensors.hpp"
#include "fcn/layers/registry.hpp"

namespace fcn {

namespace {

namespace pb = google::protobuf;
using pb::internal::WireFormatLite;

// NetParameter's field numbers for the two layer layouts (caffe.proto).
constexpr int kLayerField = 100;   // repeated LayerParameter layer
constexpr int kLayersField = 2;    // repeated V1LayerParameter layers (legacy)

// One Caffe layer, either layout, as a current LayerParameter whose blobs
// were already converted to tensors (and removed from the message).
struct RawLayer {
  caffe::LayerParameter param;
  std::vector<Tensor> blobs;
};

std::string v1_type_name(caffe::V1LayerParameter::LayerType type) {
  using V1 = caffe::V1LayerParameter;
  switch (type) {
    case V1::CONVOLUTION: return "Convolution";
    case V1::DECONVOLUTION: return "Deconvolution";
    case V1::POOLING: return "Pooling";
    case V1::RELU: return "ReLU";
    case V1::DROPOUT: return "Dropout";
    case V1::ELTWISE: return "Eltwise";
    case V1::CONCAT: return "Concat";
    case V1::INNER_PRODUCT: return "InnerProduct";
    case V1::SOFTMAX: return "Softmax";
    case V1::SOFTMAX_LOSS: return "SoftmaxWithLoss";
    case V1::ACCURACY: return "Accuracy";
    case V1::SPLIT: return "Split";
    case V1::SILENCE: return "Silence";
    case V1::DATA: return "Data";
    case V1::IMAGE_DATA: return "ImageData";
    case V1::MEMORY_DATA: return "MemoryData";
    case V1::HDF5_DATA: return "HDF5Data";
    case V1::WINDOW_DATA: return "WindowData";
    case V1::DUMMY_DATA: return "DummyData";
    case V1::EUCLIDEAN_LOSS: return "EuclideanLoss";
    case V1::HINGE_LOSS: return "HingeLoss";
    case V1::INFOGAIN_LOSS: return "InfogainLoss";
    case V1::MULTINOMIAL_LOGISTIC_LOSS: return "MultinomialLogisticLoss";
    case V1::SIGMOID_CROSS_ENTROPY_LOSS: return "SigmoidCrossEntropyLoss";
    case V1::CONTRASTIVE_LOSS: return "ContrastiveLoss";
    default: return "V1:" + V1::LayerType_Name(type);
  }
}

// A V1 layer in the current layout (blob multipliers become ParamSpecs;
// each parameter message moves to the LayerParameter field of its name).
caffe::LayerParameter upgrade_v1(caffe::V1LayerParameter& v1) {
  caffe::LayerParameter layer;
  layer.set_name(v1.name());
  layer.set_type(v1_type_name(v1.type()));
  for (const auto& b : v1.bottom()) layer.add_bottom(b);
  for (const auto& t : v1.top()) layer.add_top(t);
  const int specs = std::max(v1.blobs_lr_size(), v1.weight_decay_size());
  for (int i = 0; i < specs; ++i) {
    caffe::ParamSpec* spec = layer.add_param();
    if (i < v1.blobs_lr_size()) spec->set_lr_mult(v1.blobs_lr(i));
    if (i < v1.weight_decay_size()) spec->set_decay_mult(v1.weight_decay(i));
  }
  for (const float w : v1.loss_weight()) layer.add_loss_weight(w);
  layer.mutable_include()->Swap(v1.mutable_include());
  layer.mutable_exclude()->Swap(v1.mutable_exclude());
  layer.mutable_blobs()->Swap(v1.mutable_blobs());
  const pb::Reflection* from = v1.GetReflection();
  const pb::Reflection* to = layer.GetReflection();
  std::vector<const pb::FieldDescriptor*> fields;
  from->ListFields(v1, &fields);
  for (const pb::FieldDescriptor* field : fields) {
    if (field->type() != pb::FieldDescriptor::TYPE_MESSAGE || field->is_repeated()) continue;
    const pb::FieldDescriptor* target = layer.GetDescriptor()->FindFieldByName(field->name());
    if (target && target->message_type() == field->message_type())
      to->MutableMessage(&layer, target)->CopyFrom(from->GetMessage(v1, field));
  }
  return layer;
}

std::string layer_where(const std::string& source, const caffe::LayerParameter& layer) {
  return source + ": layer '" + layer.name() + "' (" + layer.type() + ")";
}

// A blob's values as read: a packed `data` run is read straight into its
// final tensor (fc6 alone is 400 MB: no second copy, no growing buffer);
// unpacked floats, double_data (converted) and any further run go to `loose`.
struct BlobValues {
  Tensor packed;
  std::vector<float> loose;
  int64_t count() const { return packed.numel() + static_cast<int64_t>(loose.size()); }
};

// A blob as a tensor: its `shape`, or the legacy num/channels/height/width.
Tensor blob_tensor(const caffe::BlobProto& blob, BlobValues values, const std::string& where) {
  Shape shape;
  if (blob.has_shape()) {
    for (int64_t d : blob.shape().dim()) shape.push_back(d);
  } else {
    shape = {blob.num(), blob.channels(), blob.height(), blob.width()};
    if (blob.num() == 0 && blob.channels() == 0 && blob.height() == 0 && blob.width() == 0) shape = {values.count()};
  }
  int64_t count = 1;
  for (int64_t d : shape) {
    if (d < 0 || (d > 0 && count > INT64_MAX / d)) throw Error(where + ": invalid blob shape " + shape_str(shape));
    count *= d;
  }
  if (values.count() != count)
    throw Error(where + ": blob of shape " + shape_str(shape) + " holds " + std::to_string(values.count()) + " values");
  if (values.loose.empty()) {
    values.packed.reshape(shape);  // same count: keeps the allocation and the values
    return std::move(values.packed);
  }
  Tensor out(shape);
  std::copy(values.packed.data(), values.packed.data() + values.packed.numel(), out.data());
  std::copy(values.loose.begin(), values.loose.end(), out.data() + values.packed.numel());
  return out;
}

// A parsed BlobProto message (the text form of a deploy net).
Tensor blob_tensor(const caffe::BlobProto& blob, const std::string& where) {
  BlobValues values;
  values.loose.assign(blob.data().begin(), blob.data().end());
  for (double v : blob.double_data()) values.loose.push_back(static_cast<float>(v));
  return blob_tensor(blob, std::move(values), where);
}

RawLayer take_layer(caffe::LayerParameter layer, const std::string& source) {
  RawLayer raw;
  for (int i = 0; i < layer.blobs_size(); ++i)
    raw.blobs.push_back(blob_tensor(layer.blobs(i), layer_where(source, layer) + " blob " + std::to_string(i)));
  layer.clear_blobs();
  raw.param = std::move(layer);
  return raw;
}

// BlobProto's value fields (caffe.proto): float data = 5, double double_data = 8.
constexpr int kBlobData = 5;
constexpr int kBlobDoubleData = 8;
static_assert(sizeof(float) == 4 && sizeof(double) == 8, "IEEE floats");

// Reads one BlobProto up to the current limit. The value fields are read
// here, with CodedInputStream's little-endian readers; every other field is
// kept and parsed by the generated class. Returns false on malformed bytes.
bool read_blob(pb::io::CodedInputStream& in, caffe::BlobProto& header, BlobValues& values) {
  std::string rest;
  {
    pb::io::StringOutputStream sink(&rest);
    pb::io::CodedOutputStream out(&sink);
    while (const uint32_t tag = in.ReadTag()) {
      const int field = WireFormatLite::GetTagFieldNumber(tag);
      const auto wire = WireFormatLite::GetTagWireType(tag);
      if (field == kBlobData && wire == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
        uint32_t bytes = 0;
        if (!in.ReadVarint32(&bytes) || bytes % 4 != 0 || static_cast<int>(bytes) > in.BytesUntilLimit()) return false;
        float* target = nullptr;
        if (values.count() == 0) {
          values.packed = Tensor({static_cast<int64_t>(bytes / 4)});
          target = values.packed.data();
        } else {
          values.loose.resize(values.loose.size() + bytes / 4);
          target = values.loose.data() + values.loose.size() - bytes / 4;
        }
        // Caffe's files and this machine are little-endian (x86-64, aarch64)
        if (!in.ReadRaw(target, static_cast<int>(bytes))) return false;
      } else if (field == kBlobData && wire == WireFormatLite::WIRETYPE_FIXED32) {
        uint32_t bits = 0;
        if (!in.ReadLittleEndian32(&bits)) return false;
        float v;
        std::memcpy(&v, &bits, 4);
        values.loose.push_back(v);
      } else if (field == kBlobDoubleData && (wire == WireFormatLite::WIRETYPE_LENGTH_DELIMITED ||
                                              wire == WireFormatLite::WIRETYPE_FIXED64)) {
        uint32_t bytes = 8;
        if (wire == WireFormatLite::WIRETYPE_LENGTH_DELIMITED &&
            (!in.ReadVarint32(&bytes) || bytes % 8 != 0 || static_cast<int>(bytes) > in.BytesUntilLimit()))
          return false;
        for (uint32_t i = 0; i < bytes / 8; ++i) {
          uint64_t bits = 0;
          if (!in.ReadLittleEndian64(&bits)) return false;
          double v;
          std::memcpy(&v, &bits, 8);
          values.loose.push_back(static_cast<float>(v));
        }
      } else if (!WireFormatLite::SkipField(&in, tag, &out)) {
        return false;
      }
    }
  }
  return in.ConsumedEntireMessage() && header.ParseFromString(rest);
}

// Reads one layer message (current or V1) up to the current limit: its blobs
// through read_blob, the rest through the generated classes.
bool read_layer(pb::io::CodedInputStream& in, bool current, const std::string& source, RawLayer& raw) {
  const int blobs_field = current ? 7 : 6;  // LayerParameter.blobs, V1LayerParameter.blobs
  std::string rest;
  std::vector<std::pair<caffe::BlobProto, BlobValues>> blobs;
  {
    pb::io::StringOutputStream sink(&rest);
    pb::io::CodedOutputStream out(&sink);
    while (const uint32_t tag = in.ReadTag()) {
      const int field = WireFormatLite::GetTagFieldNumber(tag);
      if (field == blobs_field && WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
        uint32_t bytes = 0;
        if (!in.ReadVarint32(&bytes) || static_cast<int>(bytes) > in.BytesUntilLimit()) return false;
        const auto limit = in.PushLimit(static_cast<int>(bytes));
        blobs.emplace_back();
        if (!read_blob(in, blobs.back().first, blobs.back().second) || in.BytesUntilLimit() != 0) return false;
        in.PopLimit(limit);
      } else if (!WireFormatLite::SkipField(&in, tag, &out)) {
        return false;
      }
    }
  }
  if (!in.ConsumedEntireMessage()) return false;
  if (current) {
    if (!raw.param.ParseFromString(rest)) return false;
  } else {
    caffe::V1LayerParameter v1;
    if (!v1.ParseFromString(rest)) return false;
    raw.param = upgrade_v1(v1);
  }
  for (size_t i = 0; i < blobs.size(); ++i)
    raw.blobs.push_back(blob_tensor(blobs[i].first, std::move(blobs[i].second),
                                    layer_where(source, raw.param) + " blob " + std::to_string(i)));
  return true;
}

struct ParsedNet {
  caffe::NetParameter header;  // everything but the layers (name, legacy inputs)
  std::vector<RawLayer> layers;
};

// Reads the top level of a NetParameter field by field; each layer message
// is parsed alone from its length-delimited bytes. A fresh CodedInputStream
// per field keeps every count below protobuf's 2 GiB limits however large
// the file is (the stream hands back what it buffered when it goes).
ParsedNet read_caffemodel(const std::string& filename) {
  const int fd = ::open(filename.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(filename + ": cannot open (" + std::strerror(errno) + ")");
  struct stat st {};
  ::fstat(fd, &st);
  const int64_t file_size = st.st_size;
  pb::io::FileInputStream file(fd);
  file.SetCloseOnDelete(true);
  ParsedNet net;
  std::string header_bytes;
  int64_t offset = 0;
  auto bad = [&](int64_t at, const std::string& what) {
    return Error(filename + ": not a Caffe model or damaged at byte offset " + std::to_string(at) + " (" + what + ")");
  };
  while (offset < file_size) {
    pb::io::CodedInputStream in(&file);
    in.SetTotalBytesLimit(INT_MAX);
    const uint32_t tag = in.ReadTag();
    if (tag == 0) throw bad(offset, "invalid field tag");
    const int field = WireFormatLite::GetTagFieldNumber(tag);
    const auto wire = WireFormatLite::GetTagWireType(tag);
    if ((field == kLayerField || field == kLayersField) && wire == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      uint32_t length = 0;
      if (!in.ReadVarint32(&length)) throw bad(offset, "unreadable layer length");
      const int64_t start = offset + in.CurrentPosition();
      if (start + static_cast<int64_t>(length) > file_size)
        throw bad(offset, "a layer of " + std::to_string(length) + " bytes starts at byte " + std::to_string(start) +
                              " but the file ends at byte " + std::to_string(file_size) + ": truncated");
      const auto limit = in.PushLimit(static_cast<int>(length));
      RawLayer layer;
      if (!read_layer(in, field == kLayerField, filename, layer) || in.BytesUntilLimit() != 0)
        throw bad(start, "malformed layer message");
      in.PopLimit(limit);
      net.layers.push_back(std::move(layer));
    } else {
      // other NetParameter fields are small: kept as bytes, parsed at the end
      pb::io::StringOutputStream sink(&header_bytes);
      pb::io::CodedOutputStream out(&sink);
      if (field == 0) throw bad(offset, "invalid field tag");
      if (!WireFormatLite::SkipField(&in, tag, &out)) throw bad(offset, "malformed field " + std::to_string(field));
    }
    offset += in.CurrentPosition();
  }
  if (!net.header.ParseFromString(header_bytes)) throw bad(0, "malformed net header");
  if (net.layers.empty())
    throw Error(filename + ": not a Caffe model (no layers in " + std::to_string(file_size) + " bytes at byte offset 0)");
  return net;
}

// Turns the text parser's first problem into one error line naming the
// file, line and column (nothing reaches stderr).
class PrototxtErrors : public pb::io::ErrorCollector {
 public:
  explicit PrototxtErrors(std::string filename) : filename_(std::move(filename)) {}
  void AddError(int line, int column, const std::string& message) override {
    if (first_.empty())
      first_ = filename_ + ":" + std::to_string(line + 1) + ":" + std::to_string(column + 1) + ": " + message;
  }
  void AddWarning(int line, int column, const std::string& message) override { AddError(line, column, message); }
  const std::string& first() const { return first_; }

 private:
  std::string filename_, first_;
};

// A deploy/train prototxt's structure: every field must be one of BVLC's
// schema for the messages fcn reads (proto/caffe_subset.proto).
caffe::NetParameter read_prototxt(const std::string& filename) {
  std::ifstream in(filename);
  if (!in) throw Error(filename + ": cannot open (" + std::strerror(errno) + ")");
  std::stringstream text;
  text << in.rdbuf();
  caffe::NetParameter net;
  PrototxtErrors errors(filename);
  pb::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text.str(), &net) || !errors.first().empty())
    throw Error(errors.first().empty() ? filename + ": not a Caffe NetParameter in text form" : errors.first());
  if (net.layer_size() == 0 && net.layers_size() == 0) throw Error(filename + ": no layers");
  return net;
}

std::vector<RawLayer> take_layers(caffe::NetParameter& net, const std::string& source) {
  std::vector<RawLayer> layers;
  for (auto& layer : *net.mutable_layer()) layers.push_back(take_layer(std::move(layer), source));
  for (auto& v1 : *net.mutable_layers()) layers.push_back(take_layer(upgrade_v1(v1), source));
  net.clear_layer();
  net.clear_layers();
  return layers;
}

// The net's legacy inputs (NetParameter.input with input_shape or 4
// input_dim values each): name and shape.
std::vector<std::pair<std::string, Shape>> legacy_inputs(const caffe::NetParameter& net, const std::string& source) {
  std::vector<std::pair<std::string, Shape>> inputs;
  for (int i = 0; i < net.input_size(); ++i) {
    Shape shape;
    if (i < net.input_shape_size()) {
      shape.assign(net.input_shape(i).dim().begin(), net.input_shape(i).dim().end());
    } else if (net.input_dim_size() >= 4 * (i + 1)) {
      shape.assign(net.input_dim().begin() + 4 * i, net.input_dim().begin() + 4 * (i + 1));
    } else {
      throw Error(source + ": input '" + net.input(i) + "' has no input_shape or input_dim; fcn needs its channels");
    }
    inputs.emplace_back(net.input(i), shape);
  }
  return inputs;
}

// The set parameter messages of a layer ("convolution_param", ...) as JSON,
// for the mappings; a field number BVLC's schema does not define in one of
// them (a fork's option) is refused, as fcn cannot know what it does.
json layer_params_json(const caffe::LayerParameter& layer, const std::string& where) {
  json params = json::object();
  const pb::Reflection* reflection = layer.GetReflection();
  std::vector<const pb::FieldDescriptor*> fields;
  reflection->ListFields(layer, &fields);
  pb::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  for (const pb::FieldDescriptor* field : fields) {
    if (field->type() != pb::FieldDescriptor::TYPE_MESSAGE || field->is_repeated()) continue;
    const std::string& key = field->name();
    if (key.size() < 6 || key.compare(key.size() - 6, 6, "_param") != 0) continue;
    const pb::Message& message = reflection->GetMessage(layer, field);
    const pb::UnknownFieldSet& unknown = message.GetReflection()->GetUnknownFields(message);
    if (unknown.field_count() > 0)
      throw Error(where + ": " + key + " has field number " + std::to_string(unknown.field(0).number()) +
                  ", which BVLC Caffe's schema does not define; fcn cannot tell what it changes");
    std::string text;
    if (!pb::util::MessageToJsonString(message, &text, options).ok())
      throw Error(where + ": " + key + " cannot be read");
    params[key] = json::parse(text);
  }
  return params;
}

// Whether the layer takes part in Caffe's TEST phase (include / exclude
// rules by phase; rules by level or stage are refused).
bool in_test_phase(const caffe::LayerParameter& layer, const std::string& where) {
  auto phase_only = [&](const caffe::NetStateRule& rule) {
    if (rule.has_min_level() || rule.has_max_level() || rule.stage_size() > 0 || rule.not_stage_size() > 0)
      throw Error(where + ": include/exclude by level or stage; fcn's import follows the phase alone");
    return !rule.has_phase() || rule.phase() == caffe::TEST;
  };
  bool included = layer.include_size() == 0;
  for (const auto& rule : layer.include()) included = included || phase_only(rule);
  for (const auto& rule : layer.exclude())
    if (phase_only(rule)) included = false;
  return included;
}

Shape blob_shape_dims(const caffe::BlobShape& shape) { return Shape(shape.dim().begin(), shape.dim().end()); }

class Translator {
 public:
  Translator(std::string source, CaffeImport& out) : source_(std::move(source)), out_(out) {}

  // A graph input: the first is the image `data`, the second the label (as
  // the reference's data layers); `shape` is what the net declares, or a
  // 3-channel image of a nominal size when it declares none.
  void add_input(const std::string& caffe_blob, Shape shape, const std::string& where) {
    const std::string name = inputs_.empty() ? "data" : inputs_.size() == 1 ? "label" : caffe_blob;
    if (shape.empty()) shape = name == "label" ? Shape{1, 1, kNominalSize, kNominalSize} : Shape{1, 3, kNominalSize, kNominalSize};
    if (shape.size() != 4)
      throw Error(where + ": input '" + caffe_blob + "' has shape " + shape_str(shape) +
                  "; fcn's graph inputs are N, C, H, W");
    shape[0] = 1;  // the batch size is chosen at run time
    inputs_.push_back(name);
    alias_[caffe_blob] = name;
    shapes_[name] = shape;
  }

  void add_data_layer(const caffe::LayerParameter& p, const std::string& where) {
    for (int i = 0; i < p.top_size(); ++i) add_input(p.top(i), declared_shape(p, i, where), where);
    out_.dropped.push_back(p.name() + " (" + p.type() + ")");
  }

  // Translates layers[i] (and a Scale folded into it); returns how many layers it used.
  size_t translate(std::vector<RawLayer>& layers, size_t i) {
    RawLayer& raw = layers[i];
    const caffe::LayerParameter& p = raw.param;
    const std::string& type = p.type();
    const std::string where = layer_where(source_, p);
    static const std::set<std::string> data_layers = {"Input", "Data", "ImageData", "Python", "MemoryData",
                                                      "HDF5Data", "WindowData", "DummyData", "AnnotatedData"};
    static const std::set<std::string> dropped = {"Softmax", "Accuracy", "Silence", "ArgMax"};
    if (!in_test_phase(p, where)) {
      out_.dropped.push_back(p.name() + " (" + type + ", training phase only)");
      return 1;
    }
    if (data_layers.count(type) && p.bottom_size() == 0) {
      add_data_layer(p, where);
      return 1;
    }
    if (dropped.count(type) || (type != "SoftmaxWithLoss" && type.size() > 4 && type.rfind("Loss") == type.size() - 4)) {
      out_.dropped.push_back(p.name() + " (" + type + ")");
      return 1;
    }
    if (type == "Split") {
      for (const auto& top : p.top()) alias_[top] = input(p, 0, where);
      return 1;
    }
    const CaffeMapper mapper = find_caffe_mapper(type);
    if (!mapper) {
      std::string known;
      for (const auto& t : caffe_layer_types()) known += (known.empty() ? "" : ", ") + t;
      throw Error(where + ": is a layer type fcn cannot import (it imports " + known +
                  ", Split, data and input layers; it drops Softmax, Accuracy and losses other than SoftmaxWithLoss)");
    }
    if (p.top_size() != 1) throw Error(where + ": has " + std::to_string(p.top_size()) + " tops; fcn layers have one output");
    CaffeLayer layer = caffe_layer(raw, where);
    size_t used = 1;
    if (type == "BatchNorm" && i + 1 < layers.size() && folds_into_batch_norm(layers, i)) {
      RawLayer& scale = layers[i + 1];
      layer.folded.push_back(caffe_layer(scale, layer_where(source_, scale.param), &layer));
      alias_[scale.param.top(0)] = p.name();
      used = 2;
    }
    add_layer(layer, mapper(layer));
    alias_[p.top(0)] = p.name();
    return used;
  }

  void finish() {
    if (layers_.empty()) throw Error(source_ + ": no layers fcn can import");
    if (inputs_.empty()) add_input("data", {}, source_);
    std::set<std::string> read;
    for (const auto& layer : layers_)
      for (const auto& in : layer["inputs"]) read.insert(in.get<std::string>());
    json inputs = json::object();
    for (const auto& name : inputs_)
      if (name == "data" || read.count(name)) inputs[name] = {{"channels", shapes_[name][1]}};
    out_.graph = {{"inputs", inputs}, {"layers", layers_}};
    const std::string score = loss_score_.empty() ? last_ : loss_score_;
    const int64_t classes = shapes_.count(score) && shapes_[score].size() >= 2 ? shapes_[score][1] : 0;
    out_.num_classes = classes >= 1 && classes <= 255 ? classes : 0;
  }

 private:
  // The size a net without a declared input size is built at (VOC's largest side).
  static constexpr int64_t kNominalSize = 500;

  // The shape a data or input layer declares for its top `i` (empty: none).
  Shape declared_shape(const caffe::LayerParameter& p, int i, const std::string& where) const {
    if (p.type() == "Input") {
      const auto& shapes = p.input_param().shape();
      if (shapes.empty()) throw Error(where + ": input_param has no shape; fcn needs the input's channels");
      return blob_shape_dims(shapes.Get(shapes.size() == 1 ? 0 : std::min(i, shapes.size() - 1)));
    }
    if (p.type() == "MemoryData" && i == 0) {
      const auto& q = p.memory_data_param();
      return {1, q.channels(), q.height(), q.width()};
    }
    if (p.type() == "DummyData") {
      const auto& q = p.dummy_data_param();
      if (q.shape_size() > 0) return blob_shape_dims(q.shape(std::min(i, q.shape_size() - 1)));
      if (q.channels_size() > 0) {
        const int j = std::min(i, q.channels_size() - 1);
        return {1, q.channels(j), q.height(std::min(j, q.height_size() - 1)), q.width(std::min(j, q.width_size() - 1))};
      }
    }
    return {};
  }

  // A Scale right after a BatchNorm, reading its output and nothing else, and
  // the only reader of that output: the BatchNorm's affine part (Caffe splits
  // PyTorch's affine batch norm in two layers).
  bool folds_into_batch_norm(const std::vector<RawLayer>& layers, size_t i) const {
    const auto& bn = layers[i].param;
    const auto& next = layers[i + 1].param;
    if (next.type() != "Scale" || next.bottom_size() != 1 || next.bottom(0) != bn.top(0) || next.top_size() != 1)
      return false;
    if (next.top(0) == bn.top(0)) return true;  // in place: later readers see the scaled values
    for (size_t j = i + 2; j < layers.size(); ++j) {
      const auto& later = layers[j].param;
      for (const auto& b : later.bottom())
        if (b == bn.top(0)) return false;
      for (const auto& t : later.top())
        if (t == bn.top(0)) return true;  // redefined before anyone reads the unscaled values
    }
    return true;
  }

  // `folded_into`: the layer whose output a folded layer reads; that output
  // is not built yet (its blob may be a new top) and has the shape of its
  // first input (the folded layers are shape-preserving).
  CaffeLayer caffe_layer(RawLayer& raw, const std::string& where, const CaffeLayer* folded_into = nullptr) {
    const caffe::LayerParameter& p = raw.param;
    CaffeLayer layer;
    layer.name = p.name();
    layer.type = p.type();
    layer.where = where;
    if (folded_into) {
      layer.bottoms = {folded_into->name};
      layer.bottom_shapes = {folded_into->bottom_shapes.at(0)};
    } else {
      for (int b = 0; b < p.bottom_size(); ++b) {
        layer.bottoms.push_back(input(p, b, where));
        layer.bottom_shapes.push_back(shapes_.at(layer.bottoms.back()));
      }
    }
    layer.params = layer_params_json(p, where);
    for (const auto& spec : p.param()) layer.param_specs.push_back({spec.lr_mult(), spec.decay_mult()});
    layer.loss_weights.assign(p.loss_weight().begin(), p.loss_weight().end());
    layer.blobs = std::move(raw.blobs);
    return layer;
  }

  // Builds the mapped layer at the bottoms' shapes: its output shape, and
  // its parameters to check the converted blobs against.
  void add_layer(const CaffeLayer& layer, CaffeMapped mapped) {
    const std::string type = mapped.spec.value("type", "");
    Shape output;
    try {
      auto built = create_layer(mapped.spec, type);
      output = built->reshape(layer.bottom_shapes);
      for (Param* param : built->params()) {
        auto it = mapped.weights.find(param->name);
        if (it == mapped.weights.end()) continue;
        if (it->second.shape() != param->data.shape())
          throw Error("its blob for " + param->name + " has shape " + shape_str(it->second.shape()) + " where fcn's " +
                      type + " expects " + shape_str(param->data.shape()));
        out_.weights[param->name] = std::move(it->second);
        mapped.weights.erase(it);
      }
      if (built->is_loss()) loss_score_ = layer.bottoms.at(0);
      // Caffe adds loss_weight x top to the objective of any layer; fcn's
      // losses take it as an option (the mapping reads it), other layers have none
      const bool weighted = std::any_of(layer.loss_weights.begin(), layer.loss_weights.end(),
                                        [](float w) { return w != 0.f; });
      if (weighted && !built->is_loss())
        throw Error("loss_weight: is set on a layer that is no loss; fcn adds only its losses to the objective");
    } catch (const Error& e) {
      throw Error(layer.where + ": " + e.what());
    }
    if (!mapped.weights.empty())
      throw Error(layer.where + ": fcn's " + type + " has no parameter " + mapped.weights.begin()->first);
    layers_.push_back(std::move(mapped.spec));
    shapes_[layer.name] = output;
    last_ = layer.name;
  }

  std::string input(const caffe::LayerParameter& p, int i, const std::string& where) const {
    if (i >= p.bottom_size()) throw Error(where + ": needs " + std::to_string(i + 1) + " bottoms");
    auto it = alias_.find(p.bottom(i));
    if (it == alias_.end()) throw Error(where + ": reads blob '" + p.bottom(i) + "', which no earlier layer produces");
    return it->second;
  }

  std::string source_;
  CaffeImport& out_;
  json layers_ = json::array();
  std::vector<std::string> inputs_;
  std::map<std::string, std::string> alias_;  // Caffe blob -> fcn blob
  std::map<std::string, Shape> shapes_;       // fcn blob -> shape at the declared input size
  std::string loss_score_, last_;
};

// libprotobuf logs some problems to stderr by itself; fcn reports its own errors.
void silence_protobuf_logs() {
  static const bool once = [] {
    pb::SetLogHandler([](pb::LogLevel, const char*, int, const std::string&) {});
    return true;
  }();
  (void)once;
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

CaffeImport import_caffe(const std::string& caffemodel, const std::string& deploy) {
  silence_protobuf_logs();
  ParsedNet net = read_caffemodel(caffemodel);
  CaffeImport out;
  out.net_name = net.header.name();
  std::vector<RawLayer> layers;
  std::string source = caffemodel;
  std::vector<std::pair<std::string, Shape>> inputs = legacy_inputs(net.header, caffemodel);
  if (deploy.empty()) {
    layers = std::move(net.layers);
  } else {
    caffe::NetParameter structure = read_prototxt(deploy);
    inputs = legacy_inputs(structure, deploy);
    layers = take_layers(structure, deploy);
    source = deploy;
    std::map<std::string, std::vector<Tensor>*> blobs;
    for (auto& layer : net.layers) blobs[layer.param.name()] = &layer.blobs;
    for (auto& layer : layers) {
      auto it = blobs.find(layer.param.name());
      if (it != blobs.end()) layer.blobs = std::move(*it->second);
    }
    net.layers.clear();
  }
  Translator translator(source, out);
  for (const auto& input : inputs) translator.add_input(input.first, input.second, source);
  for (size_t i = 0; i < layers.size();) {
    const size_t used = translator.translate(layers, i);
    for (size_t j = i; j < i + used; ++j) layers[j].blobs.clear();  // the weights now live in `out`
    i += used;
  }
  translator.finish();
  return out;
}

json caffe_import_config(const CaffeImport& imported) {
  json model = {{"graph", imported.graph}};
  if (imported.num_classes > 0) model["num_classes"] = imported.num_classes;
  int64_t ignore_label = 255;
  for (const auto& layer : imported.graph["layers"])
    if (layer["type"] == "softmax_loss") ignore_label = layer["ignore_label"].get<int64_t>();
  // the reference's recipe: SBD train, VOC seg11valid validation, Caffe's BGR mean
  json data = {{"train", {{"format", "sbd"}, {"root", "data/sbd/dataset"}, {"split", "train"}}},
               {"val", {{"format", "voc"}, {"root", "data/VOCdevkit/VOC2012"}, {"split", "seg11valid"}}},
               {"channel_order", "bgr"},
               {"mean", {104.00698793, 116.66876762, 122.67891434}}};
  if (ignore_label >= 0 && ignore_label <= 255) data["ignore_label"] = ignore_label;
  return {{"model", model}, {"data", data}};
}

void write_caffe_import(const CaffeImport& imported, const std::string& dir) {
  const std::string config = dir + "/config.json", weights = dir + "/weights.safetensors";
  for (const auto& path : {config, weights})
    if (file_exists(path)) throw Error(path + ": exists; choose another --out or delete it");
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
    throw Error(dir + ": cannot create directory (" + std::strerror(errno) + ")");
  std::map<std::string, const Tensor*> tensors;
  for (const auto& item : imported.weights) tensors[item.first] = &item.second;
  write_safetensors(weights, tensors, {{"source", "caffe"}, {"net", imported.net_name}});
  write_file_atomic(config, caffe_import_config(imported).dump(1) + "\n");
}

}  // namespace fcn
