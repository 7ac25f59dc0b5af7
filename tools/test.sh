#!/usr/bin/env bash
# Installs what is missing (Debian packages), builds, and runs the whole test
# suite with ctest. Usage: tools/test.sh [--sanitize] [ctest arguments...]
#   --sanitize   build in build-sanitize with AddressSanitizer + UndefinedBehavior-
#                Sanitizer (FCN_SANITIZE=ON) and run the suite under them: any
#                memory error, leak or undefined behaviour fails the test it
#                happens in.
# FCN_BUILD_DIR overrides the build directory (build, or build-sanitize).
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
build_dir=${FCN_BUILD_DIR:-$build_dir}
cmake -S . -B "$build_dir" "${cmake_args[@]}" >/dev/null
cmake --build "$build_dir" -j 2
cd "$build_dir"
ctest --output-on-failure -j 2 --timeout 600 "$@"
