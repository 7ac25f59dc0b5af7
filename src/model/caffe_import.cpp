// fcn import-caffe: Caffe's binary NetParameter -> an fcn graph and weights.
// The messages come from proto/caffe_subset.proto (Caffe's field numbers);
// the top level of the file is walked by hand with CodedInputStream so that
// one layer at a time is in memory as a message.
#include "fcn/model/caffe_import.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstring>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/wire_format_lite.h>

#include "caffe_subset.pb.h"
#include "fcn/core/error.hpp"
#include "fcn/io/safetensors.hpp"

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

// A V1 layer in the current layout (blob multipliers become ParamSpecs).
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
  layer.mutable_blobs()->Swap(v1.mutable_blobs());
  if (v1.has_convolution_param()) layer.mutable_convolution_param()->Swap(v1.mutable_convolution_param());
  if (v1.has_dropout_param()) layer.mutable_dropout_param()->Swap(v1.mutable_dropout_param());
  if (v1.has_eltwise_param()) layer.mutable_eltwise_param()->Swap(v1.mutable_eltwise_param());
  if (v1.has_inner_product_param()) layer.mutable_inner_product_param()->Swap(v1.mutable_inner_product_param());
  if (v1.has_pooling_param()) layer.mutable_pooling_param()->Swap(v1.mutable_pooling_param());
  if (v1.has_relu_param()) layer.mutable_relu_param()->Swap(v1.mutable_relu_param());
  if (v1.has_loss_param()) layer.mutable_loss_param()->Swap(v1.mutable_loss_param());
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

// A deploy/train prototxt's structure (fields fcn does not read are allowed);
// `inputs` gets its legacy NetParameter.input names.
std::vector<RawLayer> read_prototxt(const std::string& filename, std::vector<std::string>& inputs) {
  std::ifstream in(filename);
  if (!in) throw Error(filename + ": cannot open (" + std::strerror(errno) + ")");
  std::stringstream text;
  text << in.rdbuf();
  caffe::NetParameter net;
  pb::TextFormat::Parser parser;
  parser.AllowUnknownField(true);
  parser.AllowUnknownExtension(true);
  if (!parser.ParseFromString(text.str(), &net)) throw Error(filename + ": not a Caffe NetParameter in text form");
  inputs.assign(net.input().begin(), net.input().end());
  std::vector<RawLayer> layers;
  for (auto& layer : *net.mutable_layer()) layers.push_back(take_layer(std::move(layer), filename));
  for (auto& v1 : *net.mutable_layers()) layers.push_back(take_layer(upgrade_v1(v1), filename));
  if (layers.empty()) throw Error(filename + ": no layers");
  return layers;
}

json hw_json(int64_t h, int64_t w) { return h == w ? json(h) : json::array({h, w}); }

// Caffe gives a 2-D size as `name: [v]`, `name: [h, w]` or name_h/name_w.
std::array<int64_t, 2> conv_hw(const pb::RepeatedField<uint32_t>& values, bool has_h, uint32_t h, uint32_t w,
                               int64_t fallback) {
  if (has_h) return {h, w};
  if (values.empty()) return {fallback, fallback};
  return {values.Get(0), values.Get(values.size() > 1 ? 1 : 0)};
}

class Translator {
 public:
  Translator(std::string source, CaffeImport& out) : source_(std::move(source)), out_(out) {}

  void add_input(const std::string& caffe_blob) {
    // the first input is the image, the second the label, as the reference's data layers
    const std::string name = alias_.count("@data") ? "label" : "data";
    alias_["@" + name] = name;
    alias_[caffe_blob] = name;
    channels_[name] = name == "data" ? 3 : 1;
  }

  void translate(RawLayer& raw) {
    const caffe::LayerParameter& p = raw.param;
    const std::string& type = p.type();
    static const std::set<std::string> inputs = {"Input", "Data", "ImageData", "Python", "MemoryData", "HDF5Data",
                                                 "WindowData", "DummyData", "AnnotatedData"};
    static const std::set<std::string> dropped = {"Softmax", "Accuracy", "Silence", "ArgMax"};
    if (inputs.count(type) && p.bottom_size() == 0) {
      for (const auto& top : p.top()) add_input(top);
      out_.dropped.push_back(p.name() + " (" + type + ")");
      return;
    }
    if (dropped.count(type) || (type != "SoftmaxWithLoss" && type.size() > 4 && type.rfind("Loss") == type.size() - 4)) {
      out_.dropped.push_back(p.name() + " (" + type + ")");
      return;
    }
    if (p.top_size() != 1 && type != "Split")
      fail(p, "has " + std::to_string(p.top_size()) + " tops; fcn layers have one output");
    if (type == "Split") {
      for (const auto& top : p.top()) alias_[top] = input(p, 0);
      return;
    }
    json spec = {{"name", p.name()}, {"type", ""}, {"inputs", json::array()}};
    int64_t channels = 0;
    if (type == "Convolution" || type == "Deconvolution") {
      channels = convolution(raw, spec, type == "Deconvolution");
    } else if (type == "InnerProduct") {
      channels = inner_product(raw, spec);
    } else if (type == "Pooling") {
      const auto& q = p.pooling_param();
      if (q.pool() != caffe::PoolingParameter::MAX) fail(p, "pools by " + caffe::PoolingParameter::PoolMethod_Name(q.pool()) + "; fcn has max pooling only");
      if (q.global_pooling()) fail(p, "uses global pooling, which fcn does not have");
      const int64_t kh = q.has_kernel_h() ? q.kernel_h() : q.kernel_size(), kw = q.has_kernel_w() ? q.kernel_w() : q.kernel_size();
      if (kh < 1 || kw < 1) fail(p, "has no kernel size");
      const int64_t sh = q.has_stride_h() ? q.stride_h() : q.stride(), sw = q.has_stride_w() ? q.stride_w() : q.stride();
      const int64_t ph = q.has_pad_h() ? q.pad_h() : q.pad(), pw = q.has_pad_w() ? q.pad_w() : q.pad();
      // Caffe rounds the output size up: fcn's ceil mode
      spec.update({{"type", "max_pool"}, {"inputs", {input(p, 0)}}, {"kernel", hw_json(kh, kw)},
                   {"stride", hw_json(sh, sw)}, {"pad", hw_json(ph, pw)}, {"ceil_mode", true}});
      channels = channels_of(p, 0);
    } else if (type == "ReLU") {
      spec.update({{"type", "relu"}, {"inputs", {input(p, 0)}}});
      if (p.relu_param().negative_slope() != 0) spec["negative_slope"] = p.relu_param().negative_slope();
      channels = channels_of(p, 0);
    } else if (type == "Dropout") {
      spec.update({{"type", "dropout"}, {"inputs", {input(p, 0)}}, {"ratio", p.dropout_param().dropout_ratio()}});
      channels = channels_of(p, 0);
    } else if (type == "Crop") {
      if (p.bottom_size() != 2) fail(p, "needs two bottoms");
      int axis = p.crop_param().axis();
      if (axis < 0) axis += 4;
      if (axis < 0 || axis > 3) fail(p, "has crop axis " + std::to_string(p.crop_param().axis()));
      json offset = 0;
      const auto& offsets = p.crop_param().offset();
      if (offsets.size() == 1) offset = offsets.Get(0);
      if (offsets.size() > 1) offset = std::vector<int64_t>(offsets.begin(), offsets.end());
      spec.update({{"type", "crop"}, {"inputs", {input(p, 0), input(p, 1)}}, {"axis", axis}, {"offset", offset}});
      channels = axis <= 1 ? channels_of(p, 1) : channels_of(p, 0);
    } else if (type == "Eltwise") {
      const auto& q = p.eltwise_param();
      if (q.operation() != caffe::EltwiseParameter::SUM)
        fail(p, "computes " + caffe::EltwiseParameter::EltwiseOp_Name(q.operation()) + "; fcn imports SUM only");
      json in = json::array();
      for (int i = 0; i < p.bottom_size(); ++i) in.push_back(input(p, i));
      spec.update({{"type", "sum"}, {"inputs", in}});
      if (q.coeff_size() > 0) {
        if (q.coeff_size() != p.bottom_size()) fail(p, "needs one coefficient per bottom");
        spec["coeffs"] = std::vector<double>(q.coeff().begin(), q.coeff().end());
      }
      channels = channels_of(p, 0);
    } else if (type == "Scale") {
      if (p.bottom_size() != 1) fail(p, "scales by a second bottom; fcn imports a fixed scale only");
      if (p.scale_param().bias_term()) fail(p, "has a bias term; fcn imports a fixed scale only");
      if (raw.blobs.size() != 1 || raw.blobs[0].numel() < 1) fail(p, "has no scale blob");
      const Tensor& s = raw.blobs[0];
      for (int64_t i = 1; i < s.numel(); ++i)
        if (s.data()[i] != s.data()[0]) fail(p, "scales channels by different values; fcn imports one fixed value");
      spec.update({{"type", "scale"}, {"inputs", {input(p, 0)}}, {"value", s.data()[0]}});
      channels = channels_of(p, 0);
    } else if (type == "SoftmaxWithLoss") {
      if (p.bottom_size() != 2) fail(p, "needs score and label bottoms");
      const auto& q = p.loss_param();
      const int64_t ignore = q.has_ignore_label() ? q.ignore_label() : 255;
      std::string normalize = "valid";
      if (q.has_normalization()) {
        normalize = q.normalization() == caffe::LossParameter::BATCH_SIZE ? "batch"
                    : q.normalization() == caffe::LossParameter::NONE     ? "none"
                                                                          : "valid";
      } else if (q.has_normalize() && !q.normalize()) {
        normalize = "batch";  // Caffe's meaning of the deprecated normalize: false
      }
      spec.update({{"type", "softmax_loss"}, {"inputs", {input(p, 0), input(p, 1)}}, {"ignore_label", ignore},
                   {"normalize", normalize}});
      loss_score_ = input(p, 0);
      ignore_label_ = ignore;
      channels = 1;
    } else {
      fail(p, "is a layer type fcn cannot import (it imports Convolution, Deconvolution, Pooling, ReLU, Dropout, "
              "Crop, Eltwise, Scale, InnerProduct, Split, data and loss layers)");
    }
    layers_.push_back(spec);
    alias_[p.top(0)] = p.name();
    channels_[p.name()] = channels;
    last_ = p.name();
  }

  void finish() {
    json inputs = json::object();
    std::set<std::string> read;
    for (const auto& layer : layers_)
      for (const auto& in : layer["inputs"]) read.insert(in.get<std::string>());
    if (!channels_.count("data")) add_input("data");
    for (const std::string name : {"data", "label"})
      if (channels_.count(name) && (name == "data" || read.count(name))) inputs[name] = {{"channels", channels_[name]}};
    if (layers_.empty()) throw Error(source_ + ": no layers fcn can import");
    out_.graph = {{"inputs", inputs}, {"layers", layers_}};
    const std::string score = loss_score_.empty() ? last_ : loss_score_;
    const int64_t classes = channels_.count(score) ? channels_[score] : 0;
    out_.num_classes = classes >= 1 && classes <= 255 ? classes : 0;
  }

  int64_t ignore_label() const { return ignore_label_; }

 private:
  [[noreturn]] void fail(const caffe::LayerParameter& p, const std::string& what) const {
    throw Error(layer_where(source_, p) + " " + what);
  }
  std::string input(const caffe::LayerParameter& p, int i) const {
    if (i >= p.bottom_size()) fail(p, "needs " + std::to_string(i + 1) + " bottoms");
    auto it = alias_.find(p.bottom(i));
    if (it == alias_.end()) fail(p, "reads blob '" + p.bottom(i) + "', which no earlier layer produces");
    return it->second;
  }
  int64_t channels_of(const caffe::LayerParameter& p, int i) const {
    auto it = channels_.find(input(p, i));
    return it == channels_.end() ? 0 : it->second;
  }

  void add_params(RawLayer& raw, json& spec, const Shape& weight_shape, bool bias, int64_t outputs) {
    const auto& p = raw.param;
    // Caffe's defaults are 1 for both blobs; fcn's bias defaults differ, so both are written
    auto mult = [&](int i, bool lr) -> double {
      if (i >= p.param_size()) return 1.0;
      return lr ? p.param(i).lr_mult() : p.param(i).decay_mult();
    };
    spec["lr_mult"] = mult(0, true);
    spec["decay_mult"] = mult(0, false);
    spec["bias_lr_mult"] = mult(1, true);
    spec["bias_decay_mult"] = mult(1, false);
    if (raw.blobs.empty()) return;  // structure only (a deploy net without weights)
    if (raw.blobs.size() != (bias ? 2u : 1u))
      fail(p, "has " + std::to_string(raw.blobs.size()) + " blobs, expected " + (bias ? "2" : "1"));
    // moved, not copied: fc6 alone is 400 MB
    Tensor weight = std::move(raw.blobs[0]);
    if (weight.numel() != shape_numel(weight_shape))
      fail(p, "has a weight blob of shape " + shape_str(weight.shape()) + " where fcn expects " +
                  shape_str(weight_shape));
    weight.reshape(weight_shape);
    out_.weights[p.name() + ".weight"] = std::move(weight);
    if (bias) {
      Tensor b = std::move(raw.blobs[1]);
      if (b.numel() != outputs)
        fail(p, "has a bias blob of " + std::to_string(b.numel()) + " values, expected " + std::to_string(outputs));
      b.reshape({outputs});
      out_.weights[p.name() + ".bias"] = std::move(b);
    }
  }

  int64_t convolution(RawLayer& raw, json& spec, bool transposed) {
    const auto& p = raw.param;
    const auto& q = p.convolution_param();
    if (q.axis() != 1) fail(p, "convolves over axis " + std::to_string(q.axis()) + "; fcn expects 1");
    const int64_t outputs = q.num_output();
    if (outputs < 1) fail(p, "has no num_output");
    const auto kernel = conv_hw(q.kernel_size(), q.has_kernel_h(), q.kernel_h(), q.kernel_w(), 0);
    if (kernel[0] < 1 || kernel[1] < 1) fail(p, "has no kernel size");
    const auto stride = conv_hw(q.stride(), q.has_stride_h(), q.stride_h(), q.stride_w(), 1);
    const auto pad = conv_hw(q.pad(), q.has_pad_h(), q.pad_h(), q.pad_w(), 0);
    const auto dilation = conv_hw(q.dilation(), false, 0, 0, 1);
    const int64_t groups = q.group();
    const int64_t in_channels = channels_of(p, 0);
    if (groups < 1 || in_channels % groups != 0 || outputs % groups != 0)
      fail(p, "has group " + std::to_string(groups) + " for " + std::to_string(in_channels) + " -> " +
                  std::to_string(outputs) + " channels");
    spec.update({{"type", transposed ? "deconv" : "conv"}, {"inputs", {input(p, 0)}}, {"num_output", outputs},
                 {"kernel", hw_json(kernel[0], kernel[1])}, {"stride", hw_json(stride[0], stride[1])},
                 {"pad", hw_json(pad[0], pad[1])}, {"bias", q.bias_term()}});
    if (dilation[0] != 1 || dilation[1] != 1) spec["dilation"] = hw_json(dilation[0], dilation[1]);
    if (groups != 1) spec["groups"] = groups;
    // both share Caffe's (and PyTorch's) layouts: conv [out, in/g, kh, kw], deconv [in, out/g, kh, kw]
    const Shape shape = transposed ? Shape{in_channels, outputs / groups, kernel[0], kernel[1]}
                                   : Shape{outputs, in_channels / groups, kernel[0], kernel[1]};
    add_params(raw, spec, shape, q.bias_term(), outputs);
    return outputs;
  }

  // InnerProduct over a C-channel input: a kxk convolution when its weight
  // has C*k*k columns (Caffe flattens C, H, W in that order, the layout of a
  // conv weight), the reference's net surgery.
  int64_t inner_product(RawLayer& raw, json& spec) {
    const auto& p = raw.param;
    const auto& q = p.inner_product_param();
    if (q.axis() != 1) fail(p, "flattens from axis " + std::to_string(q.axis()) + "; fcn expects 1");
    if (q.transpose()) fail(p, "stores a transposed weight; fcn does not import that");
    const int64_t outputs = q.num_output();
    const int64_t in_channels = channels_of(p, 0);
    if (outputs < 1 || in_channels < 1) fail(p, "has no num_output or no known input channels");
    int64_t kernel = 1;
    if (!raw.blobs.empty()) {
      const int64_t columns = raw.blobs[0].numel() / outputs;
      if (columns * outputs != raw.blobs[0].numel() || columns % in_channels != 0)
        fail(p, "has a weight of " + std::to_string(raw.blobs[0].numel()) + " values for " + std::to_string(outputs) +
                    " outputs over " + std::to_string(in_channels) + " input channels");
      kernel = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(columns / in_channels))));
      if (kernel * kernel * in_channels != columns)
        fail(p, "has " + std::to_string(columns) + " weight columns, not " + std::to_string(in_channels) +
                    " channels times a square kernel");
    }
    spec.update({{"type", "conv"}, {"inputs", {input(p, 0)}}, {"num_output", outputs}, {"kernel", kernel},
                 {"bias", q.bias_term()}});
    add_params(raw, spec, {outputs, in_channels, kernel, kernel}, q.bias_term(), outputs);
    return outputs;
  }

  std::string source_;
  CaffeImport& out_;
  json layers_ = json::array();
  std::map<std::string, std::string> alias_;   // Caffe blob -> fcn blob
  std::map<std::string, int64_t> channels_;    // fcn blob -> channels
  std::string loss_score_, last_;
  int64_t ignore_label_ = 255;
};

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

CaffeImport import_caffe(const std::string& caffemodel, const std::string& deploy) {
  ParsedNet net = read_caffemodel(caffemodel);
  CaffeImport out;
  out.net_name = net.header.name();
  std::vector<RawLayer> layers;
  std::vector<std::string> inputs(net.header.input().begin(), net.header.input().end());
  std::string source = caffemodel;
  if (deploy.empty()) {
    layers = std::move(net.layers);
  } else {
    layers = read_prototxt(deploy, inputs);
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
  for (const auto& name : inputs) translator.add_input(name);
  for (auto& layer : layers) {
    translator.translate(layer);
    layer.blobs.clear();  // the weights now live in `out`
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
               {"mean_bgr", {104.00698793, 116.66876762, 122.67891434}}};
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
