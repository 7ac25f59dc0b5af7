#pragma once
// SIGINT/SIGTERM during training: the handler only records the signal; the
// training loop stops after the current step, saves a checkpoint and exits
// with 128 + signal. A second signal kills at once (the handler resets itself).

#include <cstddef>
#include <memory>

namespace fcn {

// The signal a stop was asked with (SIGINT, SIGTERM; 0 = none).
int pending_stop_signal();
void clear_stop_signal();

// What the SIGINT/SIGTERM handler does: ask the loop to stop after the
// current step. For tests and embedding drivers.
void request_stop(int signal);

// Installs the handler for the lifetime of the object, in the thread that
// constructs it, and restores the previous handlers and signal stack after.
//
// The handler runs on an alternate signal stack of its own (SA_ONSTACK).
// Why: oneDNN's fp32 JIT GEMM (jit_avx512_common_gemm_f32, and its AVX
// sibling), for K > 2048, points rsp at its heap workspace while it packs;
// a signal arriving then had the kernel write its ~3 KB signal frame below
// that workspace, into whichever heap block came before it: fcn train
// stopped by Ctrl-C aborted now and then in a later malloc ("unaligned
// tcache chunk detected"). On the alternate stack the frame never lands
// where the interrupted code's rsp points. The alternate stack is the
// constructing thread's: the kernel hands a process-wide SIGINT to the main
// thread unless it blocks it, and fcn train constructs this on that thread.
class StopSignals {
 public:
  explicit StopSignals(bool enabled);
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // The alternate stack the handler runs on (nullptr, 0 when not enabled).
  const void* handler_stack() const { return stack_.get(); }
  size_t handler_stack_size() const { return stack_size_; }

 private:
  struct Saved;
  std::unique_ptr<char[]> stack_;
  size_t stack_size_ = 0;
  std::unique_ptr<Saved> saved_;  // null when not enabled
};

// The address of a local variable of the handler's last run (0 before any):
// shows which stack the handler ran on.
const void* last_stop_handler_frame();

}  // namespace fcn
