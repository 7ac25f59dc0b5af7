#pragma once
// Progress of long work (eval, predict, inspect-data, class counting) on stderr.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

namespace fcn {

// A progress line with throughput and ETA on stderr: rewritten in place on
// a terminal, a line every 10% otherwise.
class Progress {
 public:
  Progress(std::string what, size_t total)
      : what_(std::move(what)), total_(total), tty_(isatty(fileno(stderr)) != 0),
        start_(std::chrono::steady_clock::now()), last_(start_) {}

  void update(size_t done) {
    const auto now = std::chrono::steady_clock::now();
    const bool finished = done == total_;
    if (tty_ ? !finished && now - last_ < std::chrono::milliseconds(200)
             : !finished && done * 10 / total_ == last_decile_)
      return;
    last_ = now;
    last_decile_ = done * 10 / total_;
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const double rate = elapsed > 0 ? done / elapsed : 0;
    const double eta = rate > 0 ? (total_ - done) / rate : 0;
    std::fprintf(stderr, "%s%s %zu/%zu (%.0f%%) %.1f img/s ETA %d:%02d%s", tty_ ? "\r" : "", what_.c_str(), done,
                 total_, 100.0 * done / total_, rate, static_cast<int>(eta) / 60, static_cast<int>(eta) % 60,
                 tty_ && !finished ? "" : "\n");
    std::fflush(stderr);
  }

 private:
  std::string what_;
  size_t total_;
  bool tty_;
  std::chrono::steady_clock::time_point start_, last_;
  size_t last_decile_ = 0;
};

}  // namespace fcn
