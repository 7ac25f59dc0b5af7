#pragma once
// A training run's directory, owned by one process for the whole run.
//
// A VOC run is days of CPU, so nothing may replace one by accident:
//  - DIR/train.lock is held with flock(LOCK_EX) while the run lives; a second
//    `fcn train` on DIR fails at once naming the PID that holds it. The kernel
//    drops the lock when its process dies, so a lock left by kill -9 never
//    blocks (the file itself stays, harmlessly).
//  - A DIR that already holds a run (config.json, metrics.jsonl, a checkpoint
//    or final.safetensors) is refused, unless --resume continues that same
//    run (its config.json has the same config_hash) or --overwrite asks to
//    remove that run's files first (only those: anything else in DIR stays).
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace fcn {

enum class RunDirectoryMode {
  fresh,      // DIR must not hold a run
  resume,     // DIR may hold a run: the one with this config
  overwrite,  // DIR's run files are removed first
};

class RunDirectory {
 public:
  // Creates DIR and DIR/checkpoints, takes the lock, then applies `mode`;
  // `config` is the new run's (Config::to_json()). Throws an Error (one
  // line: what is there, what differs, what to do) and leaves every file as
  // it was.
  RunDirectory(const std::string& dir, RunDirectoryMode mode, const nlohmann::json& config);
  ~RunDirectory();  // releases the lock
  RunDirectory(const RunDirectory&) = delete;
  RunDirectory& operator=(const RunDirectory&) = delete;

  const std::string& path() const { return dir_; }

 private:
  std::string dir_;
  int lock_fd_ = -1;
};

// The files of a run in DIR that exist (config.json, metrics.jsonl,
// run.json, curves.png, val_samples.png, report.html, final.safetensors,
// checkpoints/iter_*.safetensors).
std::vector<std::string> run_files(const std::string& dir);

}  // namespace fcn
