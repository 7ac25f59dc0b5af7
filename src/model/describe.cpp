#include "fcn/model/describe.hpp"

#include <cmath>
#include <map>

#include <fmt/format.h>

namespace fcn {

namespace {

std::string dims(const std::array<double, 2>& v) {
  auto one = [](double x) { return std::fabs(x - std::round(x)) < 1e-9 ? fmt::format("{}", std::llround(x)) : fmt::format("{:.3g}", x); };
  return v[0] == v[1] ? one(v[0]) : one(v[0]) + "x" + one(v[1]);
}

std::string human(double x) {
  if (x >= 1e9) return fmt::format("{:.2f}G", x / 1e9);
  if (x >= 1e6) return fmt::format("{:.2f}M", x / 1e6);
  if (x >= 1e3) return fmt::format("{:.1f}K", x / 1e3);
  return fmt::format("{:.0f}", x);
}

}  // namespace

GraphSummary describe_graph(Graph& graph) {
  GraphSummary summary;
  std::map<std::string, std::array<double, 2>> receptive;  // per blob
  for (const auto& name : graph.input_names()) receptive[name] = {1, 1};
  const auto& layers = graph.layers();
  for (size_t i = 0; i < layers.size(); ++i) {
    Layer& layer = *layers[i];
    LayerSummary s;
    s.name = layer.name();
    s.type = layer.type();
    s.inputs = layer.inputs();
    s.output_shape = graph.blob_shape(layer.name());
    for (Param* p : layer.params()) {
      s.params += p->data.numel();
      if (!p->frozen()) s.trainable_params += p->data.numel();
    }
    s.flops = layer.forward_flops();
    const CoordMap out_map = graph.blob_coord_map(layer.name());
    const std::array<double, 2> input_rf =
        layer.inputs().empty() ? std::array<double, 2>{1, 1} : receptive[layer.inputs()[0]];
    const CoordMap in_map =
        layer.inputs().empty() ? CoordMap{} : graph.blob_coord_map(layer.inputs()[0]);
    const auto extent = layer.input_extent();
    for (int a = 0; a < 2; ++a) {
      s.stride[a] = 1.0 / out_map.scale[a];
      // rf_out = rf_in + (extent - 1) * jump_in, jump_in = data pixels per input pixel
      s.receptive_field[a] = input_rf[a] + (extent[a] - 1) / in_map.scale[a];
      if (s.type == "crop") s.offset[a] = -layer.coord_map().shift[a];
    }
    receptive[layer.name()] = s.receptive_field;
    summary.params += s.params;
    summary.trainable_params += s.trainable_params;
    summary.flops += s.flops;
    if (graph.inference_layer(i)) summary.inference_flops += s.flops;
    summary.layers.push_back(std::move(s));
  }
  return summary;
}

json GraphSummary::to_json() const {
  json out_layers = json::array();
  for (const auto& s : layers) {
    json l = {{"name", s.name},     {"type", s.type},   {"inputs", s.inputs},
              {"output_shape", s.output_shape},         {"params", s.params},
              {"trainable_params", s.trainable_params}, {"flops", s.flops},
              {"stride", s.stride}, {"receptive_field", s.receptive_field}};
    if (s.type == "crop") l["offset"] = s.offset;
    out_layers.push_back(std::move(l));
  }
  return {{"layers", out_layers}, {"params", params}, {"trainable_params", trainable_params},
          {"flops", flops}, {"gflop", flops / 1e9}, {"inference_gflop", inference_flops / 1e9}};
}

std::string GraphSummary::table() const {
  std::string out = fmt::format("{:<14} {:<12} {:<26} {:<18} {:>9} {:>9} {:>7} {:>7} {:>7}\n", "layer", "type",
                                "inputs", "output", "params", "FLOPs", "stride", "RF", "offset");
  for (const auto& s : layers) {
    std::string inputs;
    for (const auto& in : s.inputs) inputs += (inputs.empty() ? "" : ",") + in;
    const std::string params_text = s.params == 0 ? "-" : human(static_cast<double>(s.params)) +
                                                              (s.trainable_params == 0 ? "*" : "");
    out += fmt::format("{:<14} {:<12} {:<26} {:<18} {:>9} {:>9} {:>7} {:>7} {:>7}\n", s.name, s.type, inputs,
                       shape_str(s.output_shape), params_text, s.flops > 0 ? human(s.flops) : "-", dims(s.stride),
                       dims(s.receptive_field), s.type == "crop" ? dims(s.offset) : "");
  }
  out += fmt::format("total: {} params ({} trainable; * = frozen), {:.1f} GFLOP forward (2 per multiply-add)",
                     fmt::group_digits(params), fmt::group_digits(trainable_params), flops / 1e9);
  // an auxiliary head trains only
  if (inference_flops != flops) out += fmt::format(", {:.1f} GFLOP of them in inference", inference_flops / 1e9);
  out += "\n";
  return out;
}

}  // namespace fcn
