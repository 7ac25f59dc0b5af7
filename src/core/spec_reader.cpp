#include "fcn/core/spec_reader.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "fcn/core/error.hpp"

namespace fcn {

namespace {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t substitute = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, substitute});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string type_name(const json& value) {
  if (value.is_number_integer()) return "integer " + value.dump();
  if (value.is_number()) return "number " + value.dump();
  if (value.is_string()) return "string " + value.dump();
  if (value.is_boolean()) return "boolean " + value.dump();
  if (value.is_null()) return "null";
  if (value.is_array()) return "array " + value.dump().substr(0, 60);
  return "object";
}

}  // namespace

std::string closest_match(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = std::max<size_t>(2, word.size() / 3) + 1;
  for (const auto& c : candidates) {
    const size_t d = edit_distance(word, c);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  return best;
}

SpecReader::SpecReader(const json& object, std::string path) : object_(object), path_(std::move(path)) {
  if (!object_.is_object()) throw Error(path_ + ": expected an object, got " + type_name(object_));
}

std::string SpecReader::key_path(const std::string& key) const {
  return path_.empty() ? key : path_ + "." + key;
}

void SpecReader::fail(const std::string& key, const std::string& message) const {
  throw Error(key_path(key) + ": " + message);
}

bool SpecReader::has(const std::string& key) const { return object_.contains(key); }

const json& SpecReader::raw(const std::string& key) {
  if (!has(key)) fail(key, "missing required key");
  used_.insert(key);
  return object_.at(key);
}

void SpecReader::accept(const std::string& key) { used_.insert(key); }

std::string SpecReader::get_string(const std::string& key) {
  const json& v = raw(key);
  if (!v.is_string()) fail(key, "expected a string, got " + type_name(v));
  return v.get<std::string>();
}

std::string SpecReader::get_string(const std::string& key, const std::string& fallback) {
  used_.insert(key);  // known even when absent, for "did you mean"
  return has(key) ? get_string(key) : fallback;
}

std::string SpecReader::get_choice(const std::string& key, const std::vector<std::string>& choices,
                                   const std::string& fallback) {
  const std::string value = get_string(key, fallback);
  if (std::find(choices.begin(), choices.end(), value) != choices.end()) return value;
  std::string list;
  for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
  const std::string hint = closest_match(value, choices);
  fail(key, "unknown value \"" + value + "\" (expected one of: " + list + ")" +
                (hint.empty() ? "" : "; did you mean \"" + hint + "\"?"));
}

int64_t SpecReader::get_int(const std::string& key) {
  const json& v = raw(key);
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (d == static_cast<double>(static_cast<int64_t>(d))) return static_cast<int64_t>(d);
  }
  fail(key, "expected an integer, got " + type_name(v));
}

int64_t SpecReader::get_int(const std::string& key, int64_t fallback, int64_t min_value, int64_t max_value) {
  used_.insert(key);  // known even when absent, for "did you mean"
  if (!has(key)) return fallback;
  const int64_t v = get_int(key);
  if (v < min_value) fail(key, "must be >= " + std::to_string(min_value) + ", got " + std::to_string(v));
  if (v > max_value) fail(key, "must be <= " + std::to_string(max_value) + ", got " + std::to_string(v));
  return v;
}

double SpecReader::get_number(const std::string& key, double fallback, double min_value, double max_value) {
  used_.insert(key);  // known even when absent, for "did you mean"
  if (!has(key)) return fallback;
  const json& v = raw(key);
  if (!v.is_number()) fail(key, "expected a number, got " + type_name(v));
  const double d = v.get<double>();
  if (!(d >= min_value)) fail(key, "must be >= " + json(min_value).dump() + ", got " + v.dump());
  if (!(d <= max_value)) fail(key, "must be <= " + json(max_value).dump() + ", got " + v.dump());
  return d;
}

bool SpecReader::get_bool(const std::string& key, bool fallback) {
  used_.insert(key);  // known even when absent, for "did you mean"
  if (!has(key)) return fallback;
  const json& v = raw(key);
  if (!v.is_boolean()) fail(key, "expected true or false, got " + type_name(v));
  return v.get<bool>();
}

std::vector<std::string> SpecReader::get_string_list(const std::string& key) {
  const json& v = raw(key);
  if (!v.is_array()) fail(key, "expected a list of strings, got " + type_name(v));
  std::vector<std::string> out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_string())
      fail(key + "[" + std::to_string(i) + "]", "expected a string, got " + type_name(v[i]));
    out.push_back(v[i].get<std::string>());
  }
  return out;
}

std::vector<double> SpecReader::get_number_list(const std::string& key, const std::vector<double>& fallback) {
  used_.insert(key);  // known even when absent, for "did you mean"
  if (!has(key)) return fallback;
  const json& v = raw(key);
  if (!v.is_array()) fail(key, "expected a list of numbers, got " + type_name(v));
  std::vector<double> out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_number())
      fail(key + "[" + std::to_string(i) + "]", "expected a number, got " + type_name(v[i]));
    out.push_back(v[i].get<double>());
  }
  return out;
}

std::array<int64_t, 2> SpecReader::get_hw(const std::string& key, std::array<int64_t, 2> fallback,
                                          int64_t min_value) {
  used_.insert(key);  // known even when absent, for "did you mean"
  if (!has(key)) return fallback;
  const json& v = raw(key);
  std::array<int64_t, 2> hw{};
  if (v.is_number_integer()) {
    hw = {v.get<int64_t>(), v.get<int64_t>()};
  } else if (v.is_array() && v.size() == 2 && v[0].is_number_integer() && v[1].is_number_integer()) {
    hw = {v[0].get<int64_t>(), v[1].get<int64_t>()};
  } else {
    fail(key, "expected an integer or [h, w], got " + type_name(v));
  }
  for (int64_t x : hw)
    if (x < min_value)
      fail(key, "expected " + std::string(min_value > 0 ? "positive" : "non-negative") + " integer, got " +
                    std::to_string(x));
  return hw;
}

SpecReader SpecReader::get_object(const std::string& key) {
  const json& v = raw(key);
  if (!v.is_object()) fail(key, "expected an object, got " + type_name(v));
  return SpecReader(v, key_path(key));
}

void SpecReader::finish() const {
  std::vector<std::string> known(used_.begin(), used_.end());
  for (const auto& item : object_.items()) {
    if (used_.count(item.key())) continue;
    const std::string hint = closest_match(item.key(), known);
    fail(item.key(), "unknown key" + (hint.empty() ? std::string() : "; did you mean \"" + hint + "\"?"));
  }
}

std::vector<std::string> SpecReader::unread() const {
  std::vector<std::string> keys;
  for (const auto& item : object_.items())
    if (!used_.count(item.key())) keys.push_back(item.key());
  return keys;
}

json parse_json_text(const std::string& text, const std::string& source) {
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    // e.byte is the 1-based offset of the error; turn it into line:column
    size_t line = 1, column = 1;
    for (size_t i = 0; i + 1 < e.byte && i < text.size(); ++i) {
      if (text[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    std::string what = e.what();
    const auto pos = what.find("syntax error");
    if (pos != std::string::npos) what = what.substr(pos);
    throw Error(source + ":" + std::to_string(line) + ":" + std::to_string(column) + ": invalid JSON (" + what +
                ")");
  } catch (const json::exception& e) {  // e.g. out_of_range 406: a number like 1e999 overflows a double
    std::string what = e.what();
    const auto pos = what.find("] ");
    throw Error(source + ": invalid JSON (" + (pos == std::string::npos ? what : what.substr(pos + 2)) + ")");
  }
}

json read_json_file(const std::string& filename) {
  std::ifstream in(filename, std::ios::binary);
  if (!in) throw Error(filename + ": cannot open file");
  std::stringstream buffer;
  buffer << in.rdbuf();
  return parse_json_text(buffer.str(), filename);
}

}  // namespace fcn
