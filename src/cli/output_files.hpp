#pragma once
// Files a command writes: those the user did not name one by one (eval
// --save-dir's masks, predict's masks for a directory of images), which fcn
// never replaces unless the user passed --overwrite, and --json reports.
#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "fcn/core/error.hpp"
#include "fcn/core/spec_reader.hpp"
#include "fcn/io/safetensors.hpp"

namespace fcn::cli {

// Throws, before anything is written, when `overwrite` is off and some of
// `files` (to be written under `dir`, given as --`option`) already exist.
inline void refuse_overwrites(const std::string& dir, const std::vector<std::string>& files, bool overwrite,
                              const std::string& option) {
  if (overwrite) return;
  std::vector<std::string> existing;
  for (const auto& file : files)
    if (std::filesystem::exists(file)) existing.push_back(file);
  if (existing.empty()) return;
  throw Error(dir + ": already holds " + std::to_string(existing.size()) + " of the masks this would write (e.g. " +
              existing.front() + "); add --overwrite to replace them, or choose another " + option);
}

// A --json OUT report on one line: to the file OUT (atomically), or as the
// last line on stdout when OUT is "-".
inline void write_json_report(const std::string& json_out, const json& report) {
  const std::string text = report.dump();
  if (json_out == "-") {
    std::printf("%s\n", text.c_str());
    return;
  }
  write_file_atomic(json_out, text + "\n");
  spdlog::info("wrote {}", json_out);
}

}  // namespace fcn::cli
