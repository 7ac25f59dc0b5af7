#!/usr/bin/env bash
# Builds fcn's Debian packages (docs/library.md): fcn_<version>_amd64.deb
# (the fcn binary, libfcn.so, configs, docs), fcn-dev_<version>_amd64.deb
# (headers, libfcn.a, CMake and pkg-config files) and, when pybind11-dev is
# installed, python3-fcn_<version>_amd64.deb.
# Usage: tools/package.sh [--native] [OUT_DIR]
#   default    a portable build in build-package for any AVX2 CPU (FCN_NATIVE=OFF,
#              -march=x86-64-v3, as tools/test.sh --portable): what to hand to others
#   --native   package the existing build/ (this machine's CPU, -march=native) as it is
# OUT_DIR (default: packages/) receives the .deb files.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/deps.sh
fcn_install_deps
build_dir=build-package
cmake_args=(-DCMAKE_BUILD_TYPE=Release -DFCN_NATIVE=OFF -DCMAKE_CXX_FLAGS=-march=x86-64-v3)
if [[ "${1:-}" == "--native" ]]; then
  shift
  build_dir=build
  cmake_args=(-DCMAKE_BUILD_TYPE=Release)
fi
out=$(realpath -m "${1:-packages}")
cmake -S . -B "$build_dir" "${cmake_args[@]}" >/dev/null
# what the packages hold, not the tests
targets=(fcn fcn_core fcn_shared)
grep -q 'fcn_python' <<<"$(cmake --build "$build_dir" -j 2 --target help)" && targets+=(fcn_python)
cmake --build "$build_dir" -j 2 --target "${targets[@]}"
mkdir -p "$out"
(cd "$build_dir" && cpack -G DEB -B "$out")
rm -rf "$out/_CPack_Packages"
for deb in "$out"/*.deb; do
  echo "$deb: $(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version); Depends: $(dpkg-deb -f "$deb" Depends)"
done
echo "install on Debian 12 with: apt-get install $out/fcn_*.deb $out/fcn-dev_*.deb"
