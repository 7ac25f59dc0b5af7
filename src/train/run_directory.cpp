#include "fcn/train/run_directory.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "fcn/core/error.hpp"
#include "fcn/core/spec_reader.hpp"
#include "fcn/train/checkpoint.hpp"

namespace fcn {

namespace fs = std::filesystem;

namespace {

const char* const kRunFiles[] = {"config.json", "run.json",        "metrics.jsonl",    "curves.png",
                                 "val_samples.png", "report.html", "final.safetensors"};

bool is_checkpoint_name(const std::string& name) {
  return name.rfind("iter_", 0) == 0 && name.size() > 17 && name.substr(name.size() - 12) == ".safetensors";
}

std::string read_small_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// flock on DIR/train.lock, non-blocking; the holder's PID is in the file.
int take_lock(const std::string& dir) {
  const std::string path = dir + "/train.lock";
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(path + ": cannot open the run's lock file (" + std::strerror(errno) + ")");
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    close(fd);
    if (err != EWOULDBLOCK) throw Error(path + ": cannot lock (" + std::strerror(err) + ")");
    std::string holder = read_small_file(path);
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    throw Error(dir + ": another fcn train is running in this directory (pid " + (holder.empty() ? "unknown" : holder) +
                ", lock " + path + "); wait for it to finish, or train into another --out");
  }
  const std::string pid = std::to_string(getpid()) + "\n";
  if (ftruncate(fd, 0) != 0 || pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    // the lock holds without the PID in it: a second process just cannot name us
  }
  return fd;
}

// "a, b, c and 2 more"
std::string listed(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size() && i < 3; ++i) out += (i ? ", " : "") + items[i];
  if (items.size() > 3) out += " and " + std::to_string(items.size() - 3) + " more";
  return out;
}

std::string listed_files(const std::vector<std::string>& files) {
  std::vector<std::string> names;
  for (const auto& file : files) names.push_back(fs::path(file).filename().string());
  return listed(names);
}

void remove_run_files(const std::vector<std::string>& files) {
  for (const auto& file : files) {
    std::error_code ec;
    fs::remove(file, ec);
    if (ec) throw Error(file + ": cannot remove (" + ec.message() + "); --overwrite stopped");
  }
}

}  // namespace

std::vector<std::string> run_files(const std::string& dir) {
  std::vector<std::string> found;
  for (const char* name : kRunFiles)
    if (fs::exists(dir + "/" + name)) found.push_back(dir + "/" + name);
  std::error_code ec;
  std::vector<std::string> checkpoints;
  for (const auto& entry : fs::directory_iterator(dir + "/checkpoints", ec))
    if (entry.is_regular_file() && is_checkpoint_name(entry.path().filename().string()))
      checkpoints.push_back(entry.path().string());
  std::sort(checkpoints.begin(), checkpoints.end());
  found.insert(found.end(), checkpoints.begin(), checkpoints.end());
  return found;
}

RunDirectory::RunDirectory(const std::string& dir, RunDirectoryMode mode, const json& config)
    : dir_(dir) {
  std::error_code ec;
  fs::create_directories(dir + "/checkpoints", ec);
  if (ec) throw Error(dir + "/checkpoints: cannot create the directory (" + ec.message() + ")");
  lock_fd_ = take_lock(dir);
  try {
    const std::vector<std::string> existing = run_files(dir);
    if (existing.empty()) return;
    if (mode == RunDirectoryMode::overwrite) {
      remove_run_files(existing);
      return;
    }
    const std::string config_path = dir + "/config.json";
    if (mode == RunDirectoryMode::resume) {
      if (!fs::exists(config_path))
        throw Error(dir + ": holds run files (" + listed_files(existing) +
                    ") but no config.json, so --resume cannot tell whether they are this run's; "
                    "resume into another --out, or --overwrite to remove them");
      const std::vector<std::string> differences = config_hash_differences(read_json_file(config_path), config);
      if (!differences.empty())
        throw Error(dir + ": holds a run with another config (" + config_path + " differs in " +
                    listed(differences) + "); resume it with --config " + config_path +
                    ", or train into another --out");
      return;
    }
    throw Error(dir + ": already holds a run (" + listed_files(existing) + "); continue it with --resume " +
                (fs::exists(dir + "/checkpoints") ? dir + "/checkpoints/iter_<N>.safetensors" : "CKPT") +
                ", train into another --out, or add --overwrite to replace it");
  } catch (...) {
    close(lock_fd_);
    throw;
  }
}

RunDirectory::~RunDirectory() {
  if (lock_fd_ >= 0) close(lock_fd_);  // releases the flock
}

}  // namespace fcn
