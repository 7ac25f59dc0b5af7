// SIGINT/SIGTERM during training (stop_signals.hpp): the handler records the
// signal, runs on its own stack, and the heap survives a signal that arrives
// inside oneDNN's large-K fp32 GEMM.
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "fcn/train/stop_signals.hpp"

using namespace fcn;

namespace {

bool within(const void* address, const void* begin, size_t size) {
  const auto* a = static_cast<const char*>(address);
  const auto* b = static_cast<const char*>(begin);
  return a >= b && a < b + size;
}

struct sigaction current_action(int signal) {
  struct sigaction action {};
  sigaction(signal, nullptr, &action);
  return action;
}

}  // namespace

TEST_CASE("a stop signal is recorded by a handler on its own stack, and the old handlers come back after") {
  const auto old_int = current_action(SIGINT).sa_handler, old_term = current_action(SIGTERM).sa_handler;
  stack_t old_stack {};
  sigaltstack(nullptr, &old_stack);
  {
    StopSignals signals(true);
    REQUIRE(signals.handler_stack() != nullptr);
    REQUIRE(signals.handler_stack_size() >= 64 * 1024);
    for (int signal : {SIGINT, SIGTERM}) {
      StopSignals again(true);  // SA_RESETHAND: one signal per installation
      raise(signal);
      CHECK(pending_stop_signal() == signal);
      CHECK(within(last_stop_handler_frame(), again.handler_stack(), again.handler_stack_size()));
      clear_stop_signal();
    }
    raise(SIGTERM);
    CHECK(pending_stop_signal() == SIGTERM);
    clear_stop_signal();
    CHECK(current_action(SIGTERM).sa_handler == SIG_DFL);  // reset by the first one: a second kills
  }
  CHECK(current_action(SIGINT).sa_handler == old_int);
  CHECK(current_action(SIGTERM).sa_handler == old_term);
  stack_t stack {};
  sigaltstack(nullptr, &stack);
  CHECK(stack.ss_sp == old_stack.ss_sp);
  CHECK(stack.ss_flags == old_stack.ss_flags);
  StopSignals off(false);
  CHECK(off.handler_stack() == nullptr);
  CHECK(current_action(SIGINT).sa_handler == old_int);
}

TEST_CASE("stop signals that arrive inside oneDNN's large-K fp32 GEMM leave the heap and the product intact") {
  // K > 2048: oneDNN's JIT sgemm packs into its heap workspace with rsp
  // pointing there; a signal frame pushed on that "stack" lands in the heap
  // block before it (stop_signals.hpp). Called directly: fcn's own GEMM may
  // go to OpenBLAS on some CPUs, this one runs oneDNN's kernel everywhere.
  const dnnl_dim_t m = 64, n = 64, k = 16384;
  std::mt19937 random(3);
  std::uniform_real_distribution<float> uniform(-1.f, 1.f);
  std::vector<float> a(m * k), b(k * n), expected(m * n), c(m * n);
  for (float& v : a) v = uniform(random);
  for (float& v : b) v = uniform(random);
  // row-major C[m, n] = A[m, k] * B[k, n]
  REQUIRE(dnnl_sgemm('N', 'N', m, n, k, 1.f, a.data(), k, b.data(), n, 0.f, expected.data(), n) == dnnl_success);

  const pthread_t main_thread = pthread_self();
  std::atomic<bool> armed{false}, done{false};
  std::thread sender([&] {
    std::mt19937 delays(5);
    while (!done) {
      if (!armed.exchange(false)) continue;
      std::this_thread::sleep_for(std::chrono::microseconds(delays() % 1500));
      pthread_kill(main_thread, SIGINT);
    }
  });
  int rounds = 0, gemms = 0, wrong = 0;
  std::vector<std::unique_ptr<char[]>> churn;  // small blocks freed and taken again: glibc checks them
  for (; rounds < 200; ++rounds) {
    StopSignals signals(true);
    armed = true;
    while (pending_stop_signal() == 0) {
      std::fill(c.begin(), c.end(), 0.f);
      dnnl_sgemm('N', 'N', m, n, k, 1.f, a.data(), k, b.data(), n, 0.f, c.data(), n);
      wrong += std::memcmp(c.data(), expected.data(), c.size() * sizeof(float)) != 0;
      ++gemms;
      for (size_t size = 16; size <= 512; size += 8) churn.emplace_back(new char[size]());
      churn.clear();
    }
    clear_stop_signal();
  }
  done = true;
  sender.join();
  CHECK(wrong == 0);
  CHECK(rounds == 200);
  INFO(gemms << " GEMMs");
  CHECK(gemms >= rounds);
}
