#!/usr/bin/env bash
# The Debian packages from this build (cpack -G DEB in the build directory:
# no rebuild, the build's own files): fcn_<version>_amd64.deb (binary,
# libfcn.so, configs, docs) and fcn-dev_<version>_amd64.deb (headers,
# libfcn.a, CMake and pkg-config files). Checked: their file lists
# (dpkg-deb -c); that Depends names the package of every library the binary
# and libfcn.so load (dpkg -S); that apt resolves those Depends on this
# machine (apt-get --simulate install ./fcn*.deb, nothing changes); then both
# are installed with dpkg into a throw-away root (dpkg --root, --force-depends:
# that root's package database has none of the dependencies; the libraries
# come from this machine's /usr/lib) and from it `fcn --version` runs and
# examples/segment_image builds with find_package(fcn) and runs.
# Without dpkg-deb and cpack, or not as root (dpkg --root), exit 77.
# Usage (from the repo root): bash tests/cli/debian_package.sh path/to/fcn
set -euo pipefail
fcn_built=$(realpath "$1")
source tests/skip_if_sanitized.sh "$fcn_built"
build=$(dirname "$fcn_built")
repo=$(pwd)
fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }
command -v dpkg-deb >/dev/null && command -v cpack >/dev/null || skip "no dpkg-deb or cpack (not Debian)"
[[ $(id -u) -eq 0 ]] || skip "not root: dpkg --root cannot install the package into a throw-away root"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)

(cd "$build" && cpack -G DEB -B "$tmp/pkg" -D CPACK_COMPONENTS_ALL="runtime;dev") >"$tmp/cpack.log" 2>&1 || { cat "$tmp/cpack.log"; fail "cpack -G DEB"; }
grep -qiE 'Building CXX|Linking' "$tmp/cpack.log" && fail "cpack rebuilt something"
version=$("$fcn_built" --version | sed -n 1p | awk '{print $2}')
deb=$tmp/pkg/fcn_${version}_amd64.deb
dev=$tmp/pkg/fcn-dev_${version}_amd64.deb
[[ -f $deb && -f $dev ]] || { ls "$tmp/pkg"; fail "expected fcn_${version}_amd64.deb and fcn-dev_${version}_amd64.deb"; }
echo "built $(basename "$deb") and $(basename "$dev") in $(( $(date +%s) - start )) s"

contents() { dpkg-deb -c "$1" | awk '{print $6}' | sed 's|^\./||'; }
contents "$deb" >"$tmp/deb.txt"
contents "$dev" >"$tmp/dev.txt"
for f in usr/bin/fcn "usr/lib/libfcn.so.$version" usr/share/fcn/configs/voc-fcn8s.json usr/share/doc/fcn/README.md; do
  grep -qx "$f" "$tmp/deb.txt" || { cat "$tmp/deb.txt"; fail "$f is not in $(basename "$deb")"; }
done
for f in usr/include/fcn/fcn.hpp usr/include/fcn/core/error.hpp usr/lib/libfcn.a usr/lib/libfcn.so \
         usr/lib/cmake/fcn/fcnConfig.cmake usr/lib/pkgconfig/fcn.pc; do
  grep -qx "$f" "$tmp/dev.txt" || { cat "$tmp/dev.txt"; fail "$f is not in $(basename "$dev")"; }
done
grep -q '^usr/include' "$tmp/deb.txt" && fail "the runtime package holds headers"

depends=$(dpkg-deb -f "$deb" Depends)
echo "fcn Depends: $depends"
echo "fcn-dev Depends: $(dpkg-deb -f "$dev" Depends)"
grep -qF "fcn (= $version)" <<<"$(dpkg-deb -f "$dev" Depends)" || fail "fcn-dev does not depend on fcn (= $version)"
# every library the binary and libfcn.so name comes from a package Depends
# names, or one of the alternatives such a package depends on (libopenblas0:
# libopenblas0-pthread | -openmp | -serial)
names=$(sed 's/([^)]*)//g; s/[,|]/\n/g' <<<"$depends" | awk 'NF {print $1}')
allowed=$names
for name in $names; do
  allowed+=$'\n'$(dpkg-query -W -f='${Depends}' "$name" 2>/dev/null | sed 's/([^)]*)//g; s/[,|]/\n/g' | awk 'NF {print $1}')
done
dpkg-deb -x "$deb" "$tmp/x"
for binary in "$tmp/x/usr/bin/fcn" "$tmp/x/usr/lib/libfcn.so.$version"; do
  # the libraries it names (DT_NEEDED), where the loader finds them; their own
  # dependencies are their packages' business
  for needed in $(readelf -d "$binary" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    [[ $needed == ld-linux* ]] && continue  # the loader itself (libc6)
    lib=$(ldd "$binary" | awk -v n="$needed" '$1 == n {print $3}')
    [[ -n $lib ]] || fail "$(basename "$binary") needs $needed, which the loader does not find"
    real=$(realpath "$lib")
    owner=$(dpkg -S "$real" 2>/dev/null | sed -n 1p | cut -d: -f1) || true
    [[ -n $owner ]] || owner=$(dpkg -S "$lib" 2>/dev/null | sed -n 1p | cut -d: -f1) || true
    [[ -n $owner ]] || fail "$lib (loaded by $(basename "$binary")) belongs to no Debian package"
    [[ $owner == libc6 || $owner == libgcc-s1 || $owner == libstdc++6 ]] && continue
    # or the owner provides a name Depends lists (libspdlog1.10 provides libspdlog1.10-fmt9)
    provides=$(dpkg-query -W -f='${Provides}' "$owner" 2>/dev/null | sed 's/([^)]*)//g; s/,/\n/g' | awk 'NF {print $1}')
    grep -qxF -f <(printf '%s\n' "$owner" $provides) <<<"$allowed" ||
      fail "$(basename "$binary") loads $lib of $owner, not in Depends"
  done
done
echo "ok: every library the binary and libfcn.so load is in Depends"

# apt resolves the Depends against this machine (a simulation: nothing is installed)
if command -v apt-get >/dev/null; then
  apt-get install --simulate -q "$deb" "$dev" >"$tmp/apt.log" 2>&1 || { cat "$tmp/apt.log"; fail "apt cannot install the packages here"; }
  grep -q '^Inst fcn ' "$tmp/apt.log" || { cat "$tmp/apt.log"; fail "apt's simulation installs no fcn"; }
  echo "ok: apt-get --simulate install resolves: $(grep -c '^Inst ' "$tmp/apt.log") package(s) to install"
fi

# a throw-away root with its own (empty) package database
root=$tmp/root
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/var/lib/dpkg/triggers"
touch "$root/var/lib/dpkg/status" "$root/var/lib/dpkg/available"
dpkg --root="$root" --force-depends --force-script-chrootless -i "$deb" "$dev" >"$tmp/dpkg.log" 2>&1 ||
  { cat "$tmp/dpkg.log"; fail "dpkg --root -i"; }
dpkg --root="$root" -s fcn fcn-dev 2>/dev/null | grep -c '^Status: install ok installed' | grep -qx 2 ||
  fail "dpkg --root does not list fcn and fcn-dev as installed"
[[ $("$root/usr/bin/fcn" --version | sed -n 1p) == "fcn $version" ]] || fail "the installed fcn --version"
cp -r "$repo/examples/segment_image" "$tmp/example"
cmake -S "$tmp/example" -B "$tmp/example-build" -DCMAKE_PREFIX_PATH="$root/usr" >"$tmp/cfg.log" 2>&1 ||
  { cat "$tmp/cfg.log"; fail "configuring the example against the installed package"; }
grep -q "^fcn_DIR:PATH=$root/usr/" "$tmp/example-build/CMakeCache.txt" || fail "find_package(fcn) did not find the package's files"
cmake --build "$tmp/example-build" -j 2 >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; fail "building the example"; }
cd "$tmp"
fcn="$root/usr/bin/fcn"
"$fcn" make-synthetic --out data --train 4 --val 1 --size 32 32 --classes 5 --seed 3 >/dev/null
"$fcn" train --config "$root/usr/share/fcn/configs/synthetic-fcn8s.json" --out run --set data.root=data \
  --set solver.max_iter=1 --set solver.test_every=0 --set solver.snapshot_every=0 --set model.width=0.03125 \
  2>train.log || { tail -5 train.log; fail "fcn train from the package"; }
"$fcn" predict --config run/config.json --weights run/final.safetensors --image data/JPEGImages/val_00000.jpg \
  --out cli.png 2>/dev/null || fail "fcn predict from the package"
"$tmp/example-build/segment_image" run/config.json run/final.safetensors data/JPEGImages/val_00000.jpg api.png o.png ||
  fail "segment_image against the package"
cmp cli.png api.png || fail "the example's mask differs from the packaged fcn predict's"
echo "ok: installed with dpkg --root into $root (libraries from this machine); fcn and the example run ($(( $(date +%s) - start )) s)"
