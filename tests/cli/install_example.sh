#!/usr/bin/env bash
# The installed library as a user gets it: `cmake --install` of this build
# into a temporary prefix (no rebuild: the build's own files), then
# examples/segment_image configured and built against that prefix alone
# (find_package(fcn), the source tree out of reach), run on a synthetic image
# with a 2-iteration model; its mask must equal the installed `fcn predict`'s
# byte for byte; the same with fcn::fcn_static (find_package(fcn COMPONENTS
# static)). Also checked: the prefix's layout, the version file's
# compatibility rule, pkg-config.
# Usage (from the repo root): bash tests/cli/install_example.sh path/to/fcn
set -euo pipefail
fcn_built=$(realpath "$1")
source tests/skip_if_sanitized.sh "$fcn_built"
build=$(dirname "$fcn_built")
repo=$(pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

[[ -f $build/cmake_install.cmake ]] || fail "$build is not a CMake build directory"
prefix=$tmp/prefix
start=$(date +%s)
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" || { cat "$tmp/install.log"; fail "cmake --install"; }
# the install copies, it never compiles
grep -qiE 'Building|Linking' "$tmp/install.log" && fail "cmake --install rebuilt something"
echo "installed into $prefix in $(( $(date +%s) - start )) s"

pc=$(find "$prefix" -name fcn.pc | sed -n 1p)
[[ -n $pc ]] || fail "no fcn.pc under $prefix"
libdir=$(sed -n 's/^libdir=\${prefix}\///p' "$pc")
for f in bin/fcn include/fcn/fcn.hpp include/fcn/core/error.hpp "$libdir/libfcn.a" "$libdir/libfcn.so" \
         "$libdir/cmake/fcn/fcnConfig.cmake" "$libdir/cmake/fcn/fcnConfigVersion.cmake" \
         "$libdir/cmake/fcn/fcnTargets.cmake" "$libdir/cmake/fcn/fcnStaticTargets.cmake" \
         share/fcn/configs/voc-fcn8s.json share/doc/fcn/README.md share/doc/fcn/examples/segment_image/main.cpp; do
  [[ -e $prefix/$f ]] || fail "missing from the install: $f"
done
# the public header includes no internal header but the exception's
extra=$(grep -ho '#include "fcn/[^"]*"' "$prefix/include/fcn/fcn.hpp" | grep -v 'fcn/core/error.hpp' || true)
[[ -z $extra ]] || fail "fcn.hpp includes internal headers: $extra"
[[ $(find "$prefix/include" -type f | wc -l) -eq 2 ]] || fail "headers installed beyond fcn.hpp and error.hpp"

version=$("$prefix/bin/fcn" --version | sed -n 1p | awk '{print $2}')
pc_version=$(PKG_CONFIG_PATH=$prefix/$libdir/pkgconfig pkg-config --modversion fcn)
[[ $pc_version == "$version" ]] || fail "pkg-config says $pc_version, fcn --version $version"
pc_libs=$(PKG_CONFIG_PATH=$prefix/$libdir/pkgconfig pkg-config --libs fcn)
# (grep on a captured string, never `cmd | grep -q` under pipefail: grep -q exits at its
# first match and the writer dies of SIGPIPE, which pipefail reports as a failure)
grep -q -- "-L$prefix/$libdir" <<<"$pc_libs" ||
  fail "fcn.pc does not point into the prefix: $pc_libs"

# the example, copied out of the source tree, configured against the prefix only
cp -r "$repo/examples/segment_image" "$tmp/example"
configure() {
  cmake -S "$tmp/example" -B "$tmp/example-build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF "$@"
}
configure >"$tmp/configure.log" 2>&1 || { cat "$tmp/configure.log"; fail "configuring the example against $prefix"; }
found=$(grep '^fcn_DIR:' "$tmp/example-build/CMakeCache.txt" | cut -d= -f2-)
[[ $found == "$prefix/"* ]] || fail "find_package(fcn) found $found, not the install in $prefix"
grep -rq "$repo/include\|$repo/src" "$tmp/example-build/CMakeFiles" && fail "the example's build refers to the source tree"
cmake --build "$tmp/example-build" -j 2 >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; fail "building the example"; }
shared_deps=$(ldd "$tmp/example-build/segment_image")
grep -qF "$prefix/$libdir/libfcn.so" <<<"$shared_deps" ||
  fail "segment_image does not load the installed libfcn.so: $(grep fcn <<<"$shared_deps")"

# COMPONENTS static: fcn::fcn_static (libfcn.a) links, and the program needs no libfcn.so
mkdir "$tmp/static"
cp "$tmp/example/main.cpp" "$tmp/static/"
sed -e 's/find_package(fcn 0.1 REQUIRED)/find_package(fcn 0.1 REQUIRED COMPONENTS static)/' \
    -e 's/fcn::fcn /fcn::fcn_static /' "$tmp/example/CMakeLists.txt" >"$tmp/static/CMakeLists.txt"
grep -q 'fcn::fcn_static' "$tmp/static/CMakeLists.txt" || fail "the static variant of the example was not made"
{ cmake -S "$tmp/static" -B "$tmp/static-build" -DCMAKE_PREFIX_PATH="$prefix" && cmake --build "$tmp/static-build" -j 2; } \
  >"$tmp/static.log" 2>&1 || { cat "$tmp/static.log"; fail "building the example with fcn::fcn_static"; }
static_deps=$(ldd "$tmp/static-build/segment_image")
grep -q libfcn <<<"$static_deps" && fail "the fcn::fcn_static build loads libfcn.so"

# a version outside 0.<minor>.* is refused: find_package(fcn 9.0)
sed -i 's/find_package(fcn 0.1 REQUIRED)/find_package(fcn 9.0 REQUIRED)/' "$tmp/example/CMakeLists.txt"
cmake -S "$tmp/example" -B "$tmp/example-v9" -DCMAKE_PREFIX_PATH="$prefix" >"$tmp/v9.log" 2>&1 &&
  fail "find_package(fcn 9.0) accepted version $version"

cd "$tmp"
fcn="$prefix/bin/fcn"
"$fcn" make-synthetic --out data --train 4 --val 2 --size 36 44 --classes 3 --seed 3 >/dev/null
cat > tiny.json <<JSON
{"model": {"arch": "fcn32s", "num_classes": 3, "width": 0.03125, "normalize": "valid"},
 "data": {"format": "voc", "root": "data", "seed": 5},
 "solver": {"base_lr": 0.001, "momentum": 0.9, "max_iter": 2, "snapshot_every": 0, "test_every": 0,
            "display_every": 1, "threads": 1, "seed": 7}}
JSON
"$fcn" train --config tiny.json --out run 2>train.log || { cat train.log; fail "training the model"; }
image=data/JPEGImages/val_00000.jpg
"$fcn" predict --config run/config.json --weights run/final.safetensors --image $image --out cli_mask.png \
  --overlay cli_overlay.png 2>predict.log || { cat predict.log; fail "fcn predict"; }
"$tmp/example-build/segment_image" run/config.json run/final.safetensors $image api_mask.png api_overlay.png ||
  fail "segment_image"
cmp cli_mask.png api_mask.png || fail "the example's mask differs from fcn predict's"
cmp cli_overlay.png api_overlay.png || fail "the example's overlay differs from fcn predict's"
"$tmp/static-build/segment_image" run/config.json run/final.safetensors $image static_mask.png static_overlay.png >/dev/null ||
  fail "segment_image (fcn::fcn_static)"
cmp cli_mask.png static_mask.png || fail "the fcn::fcn_static example's mask differs from fcn predict's"
# its errors are fcn's lines
rc=0
"$tmp/example-build/segment_image" run/config.json missing.safetensors $image m.png o.png 2>err.txt || rc=$?
[[ $rc -eq 1 ]] && grep -q '^error: missing.safetensors' err.txt || { cat err.txt; fail "a missing weights file: exit $rc"; }
echo "ok: segment_image built against $prefix writes fcn predict's mask and overlay byte for byte ($(( $(date +%s) - start )) s)"
