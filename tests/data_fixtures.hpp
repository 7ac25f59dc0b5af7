#pragma once
// Shared by the data, image and metrics tests: fixture paths (written by
// tools/fixtures_data.py), the expected values, and scratch directories.
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "fcn/io/image_io.hpp"
#include "fcn/core/spec_reader.hpp"

namespace fcn::testing {

inline std::string data_fixture(const std::string& relative) {
  return std::string(FCN_SOURCE_DIR) + "/tests/fixtures/data/" + relative;
}

// expected.json entry `key`: {"label": [...], "height", "width", "bgr"?}.
inline const json& expected_entry(const std::string& key) {
  static const json expected = read_json_file(data_fixture("expected.json"));
  return expected.at(key);
}

inline std::vector<uint8_t> expected_bytes(const std::string& key, const std::string& field) {
  return expected_entry(key).at(field).get<std::vector<uint8_t>>();
}

// A fresh directory under the system temp dir, removed on destruction.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& name)
      : path_(std::filesystem::temp_directory_path() / ("fcn_test_" + name + "_" + std::to_string(getpid()))) {
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace fcn::testing
