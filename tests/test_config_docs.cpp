// docs/config.md against the config the code accepts: every key of
// fcn::Config{}.to_json() (plus model.graph, the alternative to model.arch,
// and data.train / data.val, the alternative to data.root)
// must be documented as `path`, and every dotted key the docs' table rows
// name must be one the code knows, so the reference can drift neither way.
#include <catch2/catch.hpp>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "fcn/model/config.hpp"

using fcn::json;

namespace {

// Objects recurse; arrays and scalars are leaves ("data.mean").
void flatten(const json& node, const std::string& prefix, std::vector<std::string>& out) {
  if (node.is_object() && !node.empty()) {
    for (auto it = node.begin(); it != node.end(); ++it)
      flatten(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
    return;
  }
  out.push_back(prefix);
}

std::vector<std::string> config_keys() {
  std::vector<std::string> keys;
  const fcn::Config defaults;
  flatten(defaults.to_json(), "", keys);
  keys.push_back("model.graph");          // to_json writes "arch" unless a graph is given
  keys.push_back("model.class_weights");  // written only when set
  keys.push_back("model.precision");      // written only when bf16
  keys.push_back("solver.batch_size");    // written only when not 1
  keys.push_back("data.mean_bgr");        // the old form of data.mean, still read
  for (const char* resnet : {"model.backbone", "model.batch_norm", "model.aux_weight"})
    keys.push_back(resnet);  // written only for the ResNet nets
  for (const char* source : {"data.train", "data.val"}) keys.push_back(source);  // the single-root form's alternative
  return keys;
}

std::string read_docs() {
  const std::string path = std::string(FCN_SOURCE_DIR) + "/docs/config.md";
  std::ifstream in(path);
  INFO(path);
  REQUIRE(in.good());
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

TEST_CASE("the config key list is the real one, not an empty one") {
  const std::vector<std::string> keys = config_keys();
  CHECK(keys.size() > 30);
  const std::set<std::string> unique(keys.begin(), keys.end());
  CHECK(unique.size() == keys.size());
  for (const char* known : {"model.arch", "data.input_scale", "data.augment.flip", "solver.base_lr", "init.weights"})
    CHECK(unique.count(known) == 1);
}

TEST_CASE("docs/config.md documents every config key the code accepts") {
  const std::string docs = read_docs();
  for (const std::string& key : config_keys()) {
    INFO("docs/config.md lacks `" << key << "`");
    CHECK(docs.find("`" + key + "`") != std::string::npos);
  }
}

TEST_CASE("docs/config.md's tables name no key the code rejects") {
  const std::vector<std::string> list = config_keys();
  const std::set<std::string> keys(list.begin(), list.end());
  std::istringstream docs(read_docs());
  const std::regex backticked("`([^`]+)`");
  const std::regex dotted_key("(model|data|solver|init)\\.[A-Za-z0-9_.]+");
  size_t rows_with_keys = 0;
  std::string line;
  while (std::getline(docs, line)) {
    if (line.empty() || line[0] != '|') continue;  // table rows only
    bool has_key = false;
    for (std::sregex_iterator it(line.begin(), line.end(), backticked), end; it != end; ++it) {
      const std::string token = (*it)[1].str();
      if (!std::regex_match(token, dotted_key)) continue;
      has_key = true;
      INFO("docs/config.md names `" << token << "`, which the config does not accept: " << line);
      CHECK(keys.count(token) == 1);
    }
    rows_with_keys += has_key;
  }
  CHECK(rows_with_keys > 30);
}
