#include "fcn/train/stop_signals.hpp"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdint>

#include "fcn/core/error.hpp"

namespace fcn {

namespace {

volatile std::sig_atomic_t g_stop_signal = 0;
volatile std::uintptr_t g_last_handler_frame = 0;  // an address, kept as a number: the frame is gone after

extern "C" void on_stop_signal(int signal) {
  volatile char here = 0;
  g_last_handler_frame = reinterpret_cast<std::uintptr_t>(&here);
  g_stop_signal = signal;
}

// Room for the kernel's frame with the full AVX-512 register state, and more.
size_t alternate_stack_size() {
  const long minimum = sysconf(_SC_SIGSTKSZ);
  return std::max<size_t>(64 * 1024, minimum > 0 ? static_cast<size_t>(minimum) * 4 : 0);
}

}  // namespace

struct StopSignals::Saved {
  struct sigaction old_int {}, old_term {};
  stack_t old_stack {};
};

int pending_stop_signal() { return g_stop_signal; }
void clear_stop_signal() { g_stop_signal = 0; }
void request_stop(int signal) { g_stop_signal = signal; }
const void* last_stop_handler_frame() { return reinterpret_cast<const void*>(g_last_handler_frame); }

StopSignals::StopSignals(bool enabled) {
  if (!enabled) return;
  saved_ = std::make_unique<Saved>();
  stack_size_ = alternate_stack_size();
  stack_.reset(new char[stack_size_]);
  stack_t stack {};
  stack.ss_sp = stack_.get();
  stack.ss_size = stack_size_;
  if (sigaltstack(&stack, &saved_->old_stack) != 0) throw Error("could not set the stack for the SIGINT handler");
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  // SA_RESETHAND: a second signal kills at once; SA_RESTART: no EINTR in the
  // libraries that a signal interrupts
  action.sa_flags = SA_RESETHAND | SA_ONSTACK | SA_RESTART;
  sigaction(SIGINT, &action, &saved_->old_int);
  sigaction(SIGTERM, &action, &saved_->old_term);
}

StopSignals::~StopSignals() {
  if (!saved_) return;
  sigaction(SIGINT, &saved_->old_int, nullptr);
  sigaction(SIGTERM, &saved_->old_term, nullptr);
  sigaltstack(&saved_->old_stack, nullptr);
}

}  // namespace fcn
