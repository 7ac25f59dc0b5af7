#include "fcn/train/checkpoint.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <regex>

#include "fcn/core/error.hpp"

namespace fcn {

namespace {

// FNV-1a, 64 bits: stable across platforms and runs (std::hash is not).
uint64_t fnv1a(const std::string& text) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : text) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

std::string hex64(uint64_t value) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(value));
  return buf;
}

std::string exact(double value) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", value);
  return buf;
}

const std::string& metadata_value(const SafetensorsFile& file, const std::string& path, const std::string& key) {
  auto it = file.metadata.find(key);
  if (it == file.metadata.end()) throw Error(path + ": not an fcn checkpoint (no \"" + key + "\" in __metadata__)");
  return it->second;
}

int64_t metadata_int(const SafetensorsFile& file, const std::string& path, const std::string& key) {
  const std::string& text = metadata_value(file, path, key);
  try {
    size_t used = 0;
    const long long value = std::stoll(text, &used);
    if (used == text.size() && value >= 0) return value;
  } catch (const std::exception&) {
  }
  throw Error(path + ": __metadata__." + key + " is \"" + text + "\", expected a non-negative integer");
}

CheckpointInfo read_info(const SafetensorsFile& file, const std::string& path) {
  if (file.metadata.count("format_version")) {
    const int64_t version = metadata_int(file, path, "format_version");
    if (version > kCheckpointFormatVersion)
      throw Error(path + ": checkpoint format version " + std::to_string(version) + " is newer than this fcn reads (" +
                  std::to_string(kCheckpointFormatVersion) + ")");
  }
  CheckpointInfo info;
  info.iter = metadata_int(file, path, "iter");
  if (file.metadata.count("lr")) info.lr = std::strtod(file.metadata.at("lr").c_str(), nullptr);
  if (file.metadata.count("config_hash")) info.config_hash = file.metadata.at("config_hash");
  if (file.metadata.count("seed")) info.seed = static_cast<uint64_t>(metadata_int(file, path, "seed"));
  return info;
}

std::string join(const std::vector<std::string>& items, size_t limit = 8) {
  std::string out;
  for (size_t i = 0; i < items.size() && i < limit; ++i) out += (i ? ", " : "") + items[i];
  if (items.size() > limit) out += ", ... (" + std::to_string(items.size() - limit) + " more)";
  return out;
}

void restore_momentum(const SafetensorsFile& file, const std::string& path, Graph& graph, Solver& solver) {
  size_t restored = 0, trainable = 0;
  for (Param* p : graph.params()) {
    if (p->frozen()) continue;
    ++trainable;
    auto it = file.tensors.find(p->name + ".momentum");
    if (it == file.tensors.end()) continue;
    if (it->second.shape() != p->data.shape())
      throw Error(path + ": " + p->name + ".momentum has shape " + shape_str(it->second.shape()) +
                  " but the param has " + shape_str(p->data.shape()));
    solver.set_momentum(p->name, it->second);
    ++restored;
  }
  if (restored < trainable)
    spdlog::warn("{}: {} of {} trainable params have no momentum buffer; theirs restarts from zero", path,
                 trainable - restored, trainable);
}

}  // namespace

namespace {

// What config_hash covers.
json hashed_part(const json& config) {
  json kept = config;
  if (kept.contains("solver") && kept["solver"].is_object())
    // what only watches or schedules a run leaves its trajectory (and resumability) alone
    for (const char* key : {"max_iter", "snapshot_every", "test_every", "display_every", "val_limit", "threads",
                            "plateau_window", "update_ratio_band"})
      kept["solver"].erase(key);
  kept.erase("init");
  return kept;
}

}  // namespace

std::string config_hash(const json& config) { return hex64(fnv1a(hashed_part(config).dump())); }

std::vector<std::string> config_hash_differences(const json& a, const json& b) {
  std::vector<std::string> keys;
  for (const json& change : json::diff(hashed_part(a), hashed_part(b))) {
    std::string key = change["path"].get<std::string>().substr(1);  // a JSON pointer: "/model/precision"
    std::replace(key.begin(), key.end(), '/', '.');
    keys.push_back(key);
  }
  return keys;
}

void save_checkpoint(const std::string& path, Graph& graph, const Solver* solver, const CheckpointInfo& info) {
  std::map<std::string, const Tensor*> tensors = param_tensors(graph);
  if (solver)
    for (const auto& item : solver->momentum()) tensors[item.first + ".momentum"] = &item.second;
  const std::map<std::string, std::string> metadata = {{"format", "fcn-checkpoint"},
                                                       {"format_version", std::to_string(kCheckpointFormatVersion)},
                                                       {"iter", std::to_string(info.iter)},
                                                       {"lr", exact(info.lr)},
                                                       {"config_hash", info.config_hash},
                                                       {"seed", std::to_string(info.seed)}};
  write_safetensors(path, tensors, metadata);
}

CheckpointInfo load_checkpoint(const std::string& path, Graph& graph, Solver& solver) {
  const SafetensorsFile file = read_safetensors(path);
  const CheckpointInfo info = read_info(file, path);
  const LoadReport report = load_params(graph, file, path, LoadMode::strict);
  if (!report.missing.empty())
    throw Error(path + ": cannot resume: the checkpoint lacks " + std::to_string(report.missing.size()) +
                " params of this model (" + join(report.missing) + "); is it from another model? (--init copies what matches)");
  for (const auto& name : report.unused) spdlog::warn("{}: tensor '{}' matches no param of the model", path, name);
  restore_momentum(file, path, graph, solver);
  return info;
}

std::string param_groups(const std::vector<std::string>& names, size_t limit) {
  std::vector<std::string> groups;
  for (const auto& name : names) {
    const size_t last = name.rfind('.');
    const std::string layer = last == std::string::npos ? name : name.substr(0, last);
    const size_t first = layer.find('.');
    const std::string group = first == std::string::npos ? layer : layer.substr(0, first) + ".*";
    if (std::find(groups.begin(), groups.end(), group) == groups.end()) groups.push_back(group);
  }
  return join(groups, limit);
}

LoadReport load_init_weights(const std::string& path, Graph& graph) {
  const LoadReport report = load_params(graph, read_safetensors(path), path, LoadMode::lenient);
  auto listed = [](const std::vector<std::string>& names) {
    return names.empty() ? std::string() : " (" + param_groups(names) + ")";
  };
  spdlog::info("init from {}: filled {} params{}, {} start fresh from their weight_init{}, {} skipped, {} unused", path,
               report.loaded.size(), listed(report.loaded), report.missing.size(), listed(report.missing),
               report.skipped.size(), report.unused.size());
  for (const auto& why : report.skipped) spdlog::info("  skipped {}", why);
  if (!report.unused.empty())
    spdlog::info("  tensors of {} that match no param:{}", path, listed(report.unused));
  for (const auto& name : report.missing) spdlog::debug("  not in {}: {}", path, name);
  for (const auto& name : report.unused) spdlog::debug("  unused tensor in {}: {}", path, name);
  return report;
}

std::string checkpoint_filename(int64_t iter) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "iter_%08lld.safetensors", static_cast<long long>(iter));
  return buf;
}

std::string latest_checkpoint(const std::string& dir) {
  namespace fs = std::filesystem;
  static const std::regex pattern(R"(iter_(\d+)\.safetensors)");
  std::error_code ec;
  std::string best;
  long long best_iter = -1;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::smatch m;
    const std::string name = it->path().filename().string();
    if (!std::regex_match(name, m, pattern)) continue;
    const long long iter = std::stoll(m[1].str());
    if (iter > best_iter) {
      best_iter = iter;
      best = it->path().string();
    }
  }
  return best;
}

}  // namespace fcn
