#pragma once
// Files a command writes that the user did not name one by one (eval
// --save-dir's masks, predict's masks for a directory of images): fcn never
// replaces such a file unless the user passed --overwrite.
#include <filesystem>
#include <string>
#include <vector>

#include "fcn/core/error.hpp"

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

}  // namespace fcn::cli
