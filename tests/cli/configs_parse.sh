#!/usr/bin/env bash
# The shipped reference configs parse as whole configs (model, data, solver,
# init): `fcn train` reads and validates the config before it opens any data,
# so, run from an empty directory (no datasets, no weights: nothing can start
# training), it must fail on the missing data or weights, never on the config.
# A mistyped key must fail on the config, naming the file (the check can fail).
# The datasets' --set forms the README shows reach the data.
set -euo pipefail
fcn=$(realpath "$1")
repo=$(pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
fail() { echo "FAIL: $*" >&2; exit 1; }
train_error() { if timeout 60 "$fcn" train --out "$tmp/run" "$@" 2>&1; then return 1; fi; }

for name in voc-fcn32s voc-fcn16s voc-fcn8s voc-fcn8s-atonce voc-fcn8s-resnet18 voc-fcn_resnet50; do
  config=$repo/configs/$name.json
  out=$(train_error --config "$config") || fail "$name: fcn train succeeded without data"
  grep -q "^error: " <<<"$out" || fail "$name: no error line: $out"
  ! grep -qF "$config:" <<<"$out" || fail "$name: config error: $out"
  grep -qE "split list|safetensors|No such file|cannot open" <<<"$out" || fail "$name: unexpected error: $out"
  "$fcn" describe --config "$config" --size 500 375 >/dev/null || fail "$name: describe failed"
  echo "$name: parses (fails later, as it should here: $(grep '^error: ' <<<"$out" | sed -n 1p))"
done
# the README's --set forms reach the datasets: the sources' roots on the VOC
# configs, data.root on the single-root synthetic config
for name in voc-fcn32s voc-fcn8s-atonce; do
  out=$(train_error --config "$repo/configs/$name.json" --set data.train.root=/nowhere/sbd \
    --set data.val.root=/nowhere/voc --set init.weights=) || fail "$name: trained without data"
  grep -qF "error: /nowhere/sbd/train.txt: cannot open split list" <<<"$out" || fail "$name: data.train.root: $out"
done
for name in synthetic-fcn8s synthetic-fcn8s-resnet18; do
  out=$(train_error --config "$repo/configs/$name.json" --set data.root=/nowhere/syn) || fail "$name: trained"
  grep -qF "error: /nowhere/syn/ImageSets/Segmentation/train.txt: cannot open" <<<"$out" || fail "$name: data.root: $out"
done
out=$(train_error --config "$repo/configs/voc-fcn8s.json" --set solver.momentun=0.9) || fail "mistyped key accepted"
grep -qF "configs/voc-fcn8s.json: solver.momentun" <<<"$out" || fail "mistyped key: $out"
echo "ok"
