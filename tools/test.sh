#!/usr/bin/env bash
# Installs what is missing (Debian packages), builds, and runs the whole test
# suite with ctest. Usage: tools/test.sh [--sanitize | --portable] [ctest arguments...]
#   --sanitize   build in build-sanitize with AddressSanitizer + UndefinedBehavior-
#                Sanitizer (FCN_SANITIZE=ON) and run the suite under them: any
#                memory error, leak or undefined behaviour fails the test it
#                happens in. Tests that measure memory skip there, heavy ones
#                run smaller (FCN_SANITIZE_BUILD); about 40 minutes on 2 cores.
#   --portable   build in build-portable for any AVX2 CPU (FCN_NATIVE=OFF,
#                -march=x86-64-v3), as users on AVX2-only machines get it, and
#                run the kernel-level tests there: the AVX2 and scalar paths
#                of the kernels that -march=native on an AVX-512 machine never
#                compiles (conv, deconv, winograd, pooling, elementwise,
#                softmax, batch norm, their gradient checks, model parity vs PyTorch).
# FCN_BUILD_DIR overrides the build directory (build, build-sanitize, build-portable).
# Further arguments go to ctest, e.g. tools/test.sh --sanitize -R fuzz
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/deps.sh
fcn_install_deps

build_dir=build
cmake_args=(-DCMAKE_BUILD_TYPE=Release)
if [[ "${1:-}" == "--sanitize" ]]; then
  shift
  build_dir=build-sanitize
  cmake_args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DFCN_SANITIZE=ON)
  # allocator_may_return_null: an impossible allocation (a bad input asking
  # for terabytes) returns null / throws bad_alloc as in a normal build, which
  # fcn reports as an error, instead of ASan aborting the process.
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:allocator_may_return_null=1:check_initialization_order=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi
build_targets=()
if [[ "${1:-}" == "--portable" ]]; then
  shift
  build_dir=build-portable
  cmake_args=(-DCMAKE_BUILD_TYPE=Release -DFCN_NATIVE=OFF -DCMAKE_CXX_FLAGS=-march=x86-64-v3)
  kernel_tests=(test_conv test_deconv test_convolution test_winograd test_pool test_relu test_sum test_scale
                test_crop test_dropout test_softmax_loss test_graph test_batch_norm test_avg_pool
                test_concat test_resize test_bf16 test_phase_grid test_fp32_gemm)
  build_targets=(--target fcn "${kernel_tests[@]}")
  regex="^(cli\.model_parity|cli\.graph_parity"
  for t in "${kernel_tests[@]}"; do regex+="|$t:"; done
  set -- -R "$regex)" "$@"
fi
build_dir=${FCN_BUILD_DIR:-$build_dir}
cmake -S . -B "$build_dir" "${cmake_args[@]}" >/dev/null
cmake --build "$build_dir" -j 2 "${build_targets[@]}"
cd "$build_dir"
status=0
ctest --output-on-failure -j 2 --timeout 600 "$@" || status=$?
# ctest lists skipped tests without their reasons: each one's "SKIP: ..." line
skips=$(awk '/^[0-9]+\/[0-9]+ Test: / { name = substr($0, index($0, ": ") + 2) }
             /^SKIP: / { print "  " name ": " substr($0, 7) }' Testing/Temporary/LastTest.log 2>/dev/null || true)
[[ -z $skips ]] || printf 'Skipped, and why:\n%s\n' "$skips"
exit "$status"
