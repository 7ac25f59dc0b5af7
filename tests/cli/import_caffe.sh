#!/usr/bin/env bash
# fcn import-caffe from the command line:
# 1. an FCN-8s Caffe file (tools/make_caffemodel.py, width 0.25, 5 classes)
#    imports; `fcn eval` with the imported config and with the shipped
#    configs/voc-fcn8s.json (same width and classes) scores a synthetic
#    split identically from the imported weights;
# 2. 1- and 6-channel nets of every mapped layer kind (AVE pooling and
#    BatchNorm + Scale among them) import without a libprotobuf line, run
#    with fcn forward as Caffe computes them, and eval refuses the 1-channel
#    one in one line;
# 3. bad files (empty, random, truncated, missing) and an existing --out
#    fail with exit 1 and one "error: FILE: ..." line.
set -euo pipefail
fcn=$(realpath "$1")
repo=$(pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
/usr/bin/python3 tools/make_caffemodel.py --arch fcn8s --width 0.25 --classes 5 --seed 2 --out "$tmp/m.caffemodel"
"$fcn" import-caffe "$tmp/m.caffemodel" --out "$tmp/imp" --json > "$tmp/summary" 2>/dev/null
grep -q '"tensors":39' "$tmp/summary" || fail "summary: $(cat "$tmp/summary")"
"$fcn" make-synthetic --out "$tmp/syn" --train 2 --val 3 --size 60 80 --classes 5 2>/dev/null
val="data.val={\"format\": \"voc\", \"root\": \"$tmp/syn\", \"split\": \"val\"}"
"$fcn" eval --config "$tmp/imp/config.json" --weights "$tmp/imp/weights.safetensors" --set "$val" \
  --json "$tmp/imported.json" >/dev/null 2>&1 || fail "eval with the imported config"
"$fcn" eval --config "$repo/configs/voc-fcn8s.json" --set model.width=0.25 --set model.num_classes=5 --set "$val" \
  --weights "$tmp/imp/weights.safetensors" --json "$tmp/zoo.json" >/dev/null 2>&1 || fail "eval with configs/voc-fcn8s.json"
cmp -s "$tmp/imported.json" "$tmp/zoo.json" || fail "scores differ: $(cat "$tmp/imported.json") vs $(cat "$tmp/zoo.json")"
echo "eval: imported config and configs/voc-fcn8s.json agree: $(head -c 120 "$tmp/zoo.json")"

# a 1-channel net (input_dim) and a 6-channel one from a deploy prototxt with fillers: no libprotobuf
# output; fcn forward runs them with their own input and gives Caffe's output; eval refuses in one line
for c in 1 6; do
  /usr/bin/python3 tools/make_caffemodel.py --arch mixed --channels $c --out "$tmp/g$c.caffemodel" \
    --deploy "$tmp/g$c.prototxt" --expected "$tmp/g$c.safetensors"
  "$fcn" import-caffe "$tmp/g$c.caffemodel" --deploy "$tmp/g$c.prototxt" --out "$tmp/g$c" >/dev/null 2>"$tmp/stderr" ||
    fail "import of the $c-channel net: $(cat "$tmp/stderr")"
  if grep -qi "libprotobuf\|warning" "$tmp/stderr"; then fail "import printed: $(cat "$tmp/stderr")"; fi
  "$fcn" forward --config "$tmp/g$c/config.json" --weights "$tmp/g$c/weights.safetensors" \
    --input data="$tmp/g$c.safetensors" --dump "$tmp/g$c.out.safetensors" >/dev/null 2>&1 || fail "forward of the $c-channel net"
  /usr/bin/python3 - "$tmp/g$c.safetensors" "$tmp/g$c.out.safetensors" <<'PY' || fail "forward of the $c-channel net differs from Caffe's"
import sys
import numpy as np
sys.path.insert(0, "tools")
import safetensors_np
expected = safetensors_np.load(sys.argv[1])[0]["expected"].astype(np.float64)
got = safetensors_np.load(sys.argv[2])[0]["fc2"].astype(np.float64).reshape(expected.shape)
error = np.linalg.norm(got - expected) / np.linalg.norm(expected)
print("forward: relative L2 %.2e" % error)
sys.exit(0 if error <= 1e-5 else 1)
PY
done
if out=$("$fcn" eval --config "$tmp/g1/config.json" --weights "$tmp/g1/weights.safetensors" --set "$val" 2>&1); then
  fail "eval of a 1-channel net succeeded"
fi
[ "$(wc -l <<<"$out")" -eq 1 ] || fail "eval of a 1-channel net: not one line: $out"
grep -q "has 1 channel while VOC-layout images are 3-channel BGR" <<<"$out" || fail "eval of a 1-channel net: $out"
echo "ok: $out"

expect_error() {  # FILE PATTERN
  local out
  if out=$("$fcn" import-caffe "$1" --out "$tmp/out_$RANDOM" 2>&1); then fail "$1: import succeeded"; fi
  [ "$(wc -l <<<"$out")" -eq 1 ] || fail "$1: not one line: $out"
  grep -qE "^error: $2" <<<"$out" || fail "$1: unexpected error: $out"
  echo "ok: $out"
}
: > "$tmp/empty.caffemodel"
head -c 3000 /dev/urandom > "$tmp/random.caffemodel"
head -c 1000000 "$tmp/m.caffemodel" > "$tmp/truncated.caffemodel"
expect_error "$tmp/empty.caffemodel" "$tmp/empty.caffemodel: .*byte offset"
expect_error "$tmp/random.caffemodel" "$tmp/random.caffemodel: .*byte offset"
expect_error "$tmp/truncated.caffemodel" "$tmp/truncated.caffemodel: .*byte offset .*truncated"
expect_error "$tmp/missing.caffemodel" "$tmp/missing.caffemodel: cannot open"
if out=$("$fcn" import-caffe "$tmp/m.caffemodel" --out "$tmp/imp" 2>&1); then fail "existing --out overwritten"; fi
grep -q "exists; choose another --out or delete it" <<<"$out" || fail "existing --out: $out"
echo "ok"
