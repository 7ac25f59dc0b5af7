#include "fcn/core/layer.hpp"

#include <cmath>

#include "fcn/core/error.hpp"

namespace fcn {

CoordMap CoordMap::then(const CoordMap& next) const {
  CoordMap out;
  for (int axis = 0; axis < 2; ++axis) {
    // next(this(x)) = a2*(a1*x + b1) + b2
    out.scale[axis] = next.scale[axis] * scale[axis];
    out.shift[axis] = next.scale[axis] * shift[axis] + next.shift[axis];
  }
  return out;
}

void Layer::fail_shape(const std::string& problem, const std::vector<Shape>& input_shapes) const {
  std::string shapes;
  for (size_t i = 0; i < input_shapes.size(); ++i) {
    shapes += (i ? ", " : "") + (i < inputs_.size() ? inputs_[i] : std::string("?")) + " " +
              shape_str(input_shapes[i]);
  }
  throw Error("layer '" + name_ + "' (" + type() + "): " + problem + " (inputs: " + shapes + ")");
}

void Layer::expect_inputs(const std::vector<Shape>& input_shapes, size_t count, int ndim) const {
  if (input_shapes.size() != count)
    fail_shape("expects " + std::to_string(count) + " input(s), got " + std::to_string(input_shapes.size()),
               input_shapes);
  for (const auto& s : input_shapes)
    if (ndim > 0 && static_cast<int>(s.size()) != ndim)
      fail_shape("expects " + std::to_string(ndim) + "-d NCHW inputs", input_shapes);
}

void Layer::init_params(std::mt19937_64& rng) {
  for (Param* p : params()) initialise_param(*p, rng);
}

json read_init(SpecReader& reader, const std::string& key, const json& fallback,
               const std::vector<std::string>& allowed) {
  reader.accept(key);  // known even when absent, for "did you mean"
  if (!reader.has(key)) return fallback;
  const json& raw = reader.raw(key);
  json spec = raw.is_string() ? json{{"type", raw}} : raw;
  if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string())
    reader.fail(key, "expected an initialiser name or {\"type\": ...}, got " + raw.dump());
  SpecReader init_reader(spec, reader.key_path(key));
  const std::string type = init_reader.get_choice("type", allowed, "");
  json out = {{"type", type}};
  if (type == "gaussian") {
    out["std"] = init_reader.get_number("std", 0.01, 0.0);
    out["mean"] = init_reader.get_number("mean", 0.0);
  } else if (type == "constant") {
    out["value"] = init_reader.get_number("value", 0.0);
  }
  init_reader.finish();
  return out;
}

Param make_param(const std::string& layer_name, const std::string& suffix, const Shape& shape, json init,
                 SpecReader& reader, const std::string& prefix, float default_lr_mult,
                 float default_decay_mult) {
  Param p;
  p.name = layer_name + "." + suffix;
  p.data = Tensor(shape);
  p.lr_mult = static_cast<float>(reader.get_number(prefix + "lr_mult", default_lr_mult, 0.0));
  p.decay_mult = static_cast<float>(reader.get_number(prefix + "decay_mult", default_decay_mult, 0.0));
  if (!p.frozen()) p.grad = Tensor(shape);
  p.init = std::move(init);
  return p;
}

void initialise_param(Param& param, std::mt19937_64& rng) {
  Tensor& w = param.data;
  const std::string type = param.init.value("type", "zero");
  const int64_t fan_in = w.ndim() > 0 && w.dim(0) > 0 ? w.numel() / w.dim(0) : 1;
  if (type == "zero") {
    w.zero();
  } else if (type == "constant") {
    w.fill(param.init.value("value", 0.0f));
  } else if (type == "gaussian" || type == "msra") {
    const double std_dev =
        type == "msra" ? std::sqrt(2.0 / std::max<int64_t>(1, fan_in)) : param.init.value("std", 0.01);
    std::normal_distribution<double> normal(param.init.value("mean", 0.0), std_dev);
    for (int64_t i = 0; i < w.numel(); ++i) w[i] = static_cast<float>(normal(rng));
  } else if (type == "xavier") {
    // Caffe's xavier: uniform in [-sqrt(3/fan_in), sqrt(3/fan_in)]
    const double limit = std::sqrt(3.0 / std::max<int64_t>(1, fan_in));
    std::uniform_real_distribution<double> uniform(-limit, limit);
    for (int64_t i = 0; i < w.numel(); ++i) w[i] = static_cast<float>(uniform(rng));
  } else if (type == "bilinear") {
    // FCN's surgery.upsample_filt on the channel diagonal of every group:
    // factor = (k+1)/2, center = factor-1 (k odd) or factor-0.5 (k even),
    // f(i,j) = (1-|i-center|/factor)(1-|j-center|/factor)
    if (w.ndim() != 4) throw Error(param.name + ": bilinear init needs a 4-d weight");
    const int64_t kh = w.dim(2), kw = w.dim(3), per_group = w.dim(1);
    auto filt = [](int64_t k, int64_t i) {
      const double factor = static_cast<double>((k + 1) / 2);
      const double center = k % 2 == 1 ? factor - 1 : factor - 0.5;
      return 1.0 - std::fabs(static_cast<double>(i) - center) / factor;
    };
    w.zero();
    for (int64_t i = 0; i < w.dim(0); ++i) {
      const int64_t j = i % per_group;
      float* kernel = w.data() + (i * per_group + j) * kh * kw;
      for (int64_t y = 0; y < kh; ++y)
        for (int64_t x = 0; x < kw; ++x) kernel[y * kw + x] = static_cast<float>(filt(kh, y) * filt(kw, x));
    }
  } else {
    throw Error(param.name + ": unknown initialiser \"" + type + "\"");
  }
}

}  // namespace fcn
