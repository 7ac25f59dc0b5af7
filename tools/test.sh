#!/usr/bin/env bash
# Installs what is missing (Debian packages), builds, and runs the whole test
# suite with ctest. Usage: tools/test.sh [--sanitize]
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/deps.sh
fcn_install_deps

build_dir=build
cmake_args=(-DCMAKE_BUILD_TYPE=Release)
if [[ "${1:-}" == "--sanitize" ]]; then
  build_dir=build-sanitize
  cmake_args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DFCN_SANITIZE=ON)
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi
cmake -S . -B "$build_dir" "${cmake_args[@]}" >/dev/null
cmake --build "$build_dir" -j 2
cd "$build_dir"
ctest --output-on-failure -j 2 --timeout 600
