#!/usr/bin/env bash
# fcn import-caffe from the command line:
# 1. an FCN-8s Caffe file (tools/make_caffemodel.py, width 0.25, 5 classes)
#    imports; `fcn eval` with the imported config and with the shipped
#    configs/voc-fcn8s.json (same width and classes) scores a synthetic
#    split identically from the imported weights;
# 2. bad files (empty, random, truncated, missing) and an existing --out
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
