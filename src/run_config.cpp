// The whole config: model, data, solver and init sections (the data section
// is parsed by src/data/data_config.cpp).
#include "fcn/config.hpp"

#include "fcn/error.hpp"

namespace fcn {

json Config::to_json() const {
  return {{"model", model.to_json()}, {"data", data_config_to_json(data)}, {"solver", solver.to_json()},
          {"init", init.to_json()}};
}

Config parse_config(const json& config, const std::string& source) {
  try {
    SpecReader reader(config, "");
    Config out;
    out.model = parse_model_section(reader.get_object("model"));
    if (reader.has("data")) {
      SpecReader data = reader.get_object("data");
      out.data = parse_data_config(data);
    }
    if (reader.has("solver")) out.solver = parse_solver_section(reader.get_object("solver"));
    if (reader.has("init")) out.init = parse_init_section(reader.get_object("init"));
    reader.finish();
    return out;
  } catch (const Error& e) {
    throw Error(source + ": " + e.what());
  }
}

Config load_config(const std::string& filename, const std::vector<std::string>& overrides) {
  json config = read_json_file(filename);
  apply_overrides(config, overrides);
  return parse_config(config, filename);
}

}  // namespace fcn
