#pragma once
// SpecReader: typed, validated access to one JSON object (a layer spec, a
// config section). Every error names the JSON path; `finish()` rejects keys
// that nobody asked for, with a "did you mean" for near misses.
#include <array>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace fcn {

using json = nlohmann::json;

// The closest candidate to `word` by edit distance, or "" when none is close.
std::string closest_match(const std::string& word, const std::vector<std::string>& candidates);

class SpecReader {
 public:
  // `path` is how errors name this object: "layers[3]", "solver".
  SpecReader(const json& object, std::string path);

  const std::string& path() const { return path_; }
  std::string key_path(const std::string& key) const;
  bool has(const std::string& key) const;
  const json& raw(const std::string& key);  // marks the key used; throws if absent

  std::string get_string(const std::string& key);
  std::string get_string(const std::string& key, const std::string& fallback);
  std::string get_choice(const std::string& key, const std::vector<std::string>& choices,
                         const std::string& fallback);
  int64_t get_int(const std::string& key);
  int64_t get_int(const std::string& key, int64_t fallback, int64_t min_value = INT64_MIN,
                  int64_t max_value = INT64_MAX);
  double get_number(const std::string& key, double fallback, double min_value = -1e308,
                    double max_value = 1e308);
  bool get_bool(const std::string& key, bool fallback);
  std::vector<std::string> get_string_list(const std::string& key);
  std::vector<double> get_number_list(const std::string& key, const std::vector<double>& fallback);
  // An int or [h, w]; each value must be >= min_value.
  std::array<int64_t, 2> get_hw(const std::string& key, std::array<int64_t, 2> fallback,
                                int64_t min_value);
  // A nested object, read with its own SpecReader (path "parent.key").
  SpecReader get_object(const std::string& key);

  // Marks a key as known without reading it (handled elsewhere).
  void accept(const std::string& key);
  // Throws on any key that was not read or accepted.
  void finish() const;
  // The keys neither read nor accepted so far (for callers with their own message).
  std::vector<std::string> unread() const;

  [[noreturn]] void fail(const std::string& key, const std::string& message) const;

 private:
  const json& object_;
  std::string path_;
  std::set<std::string> used_;
};

// Reads a JSON file; syntax errors name the file, line and column.
json read_json_file(const std::string& filename);
// Parses JSON text; `source` names it in errors.
json parse_json_text(const std::string& text, const std::string& source);

}  // namespace fcn
