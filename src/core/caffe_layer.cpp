#include "fcn/core/caffe_layer.hpp"

#include "fcn/core/error.hpp"

namespace fcn {

void CaffeLayer::fail(const std::string& problem) const { throw Error(where + ": " + problem); }

SpecReader CaffeLayer::param(const std::string& key) const {
  static const json empty = json::object();
  const auto it = params.find(key);
  return SpecReader(it == params.end() ? empty : *it, where + ": " + key);
}

void CaffeLayer::finish(const SpecReader& reader) const {
  const auto unread = reader.unread();
  if (!unread.empty())
    reader.fail(unread.front(), "is set, and fcn's import has no equivalent for it (it changes Caffe's result)");
}

CaffeParamSpec CaffeLayer::param_spec(size_t blob) const {
  return blob < param_specs.size() ? param_specs[blob] : CaffeParamSpec{};
}

void CaffeLayer::expect_bottoms(size_t count) const {
  if (bottoms.size() != count)
    fail("has " + std::to_string(bottoms.size()) + " bottoms; fcn's import reads " + std::to_string(count));
}

Tensor CaffeLayer::take_blob(size_t i, const Shape& shape) {
  if (i >= blobs.size()) fail("has " + std::to_string(blobs.size()) + " blobs; blob " + std::to_string(i) + " is missing");
  Tensor blob = std::move(blobs[i]);
  if (blob.numel() == shape_numel(shape)) blob.reshape(shape);  // same count: keeps the values in place
  return blob;
}

json caffe_layer_spec(const CaffeLayer& layer, const std::string& fcn_type) {
  return {{"name", layer.name}, {"type", fcn_type}, {"inputs", layer.bottoms}};
}

std::array<int64_t, 2> caffe_hw(SpecReader& reader, const std::string& key, const std::string& h_w_stem,
                                int64_t fallback) {
  const std::string h_key = h_w_stem + "_h", w_key = h_w_stem + "_w";
  if (reader.has(h_key) || reader.has(w_key)) {
    if (reader.has(key)) reader.fail(key, "is set together with " + h_key + " / " + w_key + " (Caffe refuses both)");
    if (!reader.has(h_key) || !reader.has(w_key)) reader.fail(h_key, "needs both " + h_key + " and " + w_key);
    return {reader.get_int(h_key, 0, 0), reader.get_int(w_key, 0, 0)};
  }
  reader.accept(h_key);
  reader.accept(w_key);
  if (!reader.has(key)) return {fallback, fallback};
  const json& v = reader.raw(key);
  // a repeated field (Convolution) is a list of one value or one per spatial axis; Pooling's is one value
  if (v.is_number_unsigned() || v.is_number_integer()) return {v.get<int64_t>(), v.get<int64_t>()};
  if (v.is_array() && v.size() == 1 && v[0].is_number_integer()) return {v[0].get<int64_t>(), v[0].get<int64_t>()};
  if (v.is_array() && v.size() == 2 && v[0].is_number_integer() && v[1].is_number_integer())
    return {v[0].get<int64_t>(), v[1].get<int64_t>()};
  reader.fail(key, "has " + v.dump() + "; fcn imports one value or one per spatial axis (h, w) of a 2-D blob");
}

int64_t caffe_axis(const CaffeLayer& layer, SpecReader& reader, const std::string& key, int64_t fallback) {
  const int64_t axis = reader.get_int(key, fallback);
  const int64_t ndim = layer.bottom_shapes.empty() ? 4 : static_cast<int64_t>(layer.bottom_shapes[0].size());
  if (axis < -ndim || axis >= ndim)
    reader.fail(key, "is " + std::to_string(axis) + ", outside the " + std::to_string(ndim) + " axes of the bottom");
  return axis < 0 ? axis + ndim : axis;
}

json hw_json(const std::array<int64_t, 2>& hw) { return hw[0] == hw[1] ? json(hw[0]) : json::array({hw[0], hw[1]}); }

}  // namespace fcn
