#!/usr/bin/env bash
# A rank that fails brings the whole data-parallel job down instead of leaving
# the others waiting in an allreduce: one training label is corrupt (a value
# that is no class), so the rank that loads it fails; mpirun must exit
# non-zero well within the timeout, with "error: rank R: <the file and the
# problem>" on stderr. A missing dataset (every rank fails at once) too.
# Skips (exit 77, which ctest reports as skipped) when mpirun is missing or fcn was built without MPI.
# Usage (from the repo root): bash tests/cli/mpi_failure.sh path/to/fcn
set -euo pipefail
fcn=$(realpath "$1")
if ! command -v mpirun >/dev/null; then echo "SKIP: mpirun is not installed (Debian: openmpi-bin)"; exit 77; fi
if ! grep -q "MPI: enabled" <<<"$("$fcn" --version)"; then echo "SKIP: $fcn was built without MPI"; exit 77; fi
# Under tools/test.sh --sanitize, Open MPI's own allocations (in plugins it
# unloads before the leak check, so no suppression can name them) would read
# as leaks; every test without mpirun keeps the leak check.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

fail() { echo "FAIL: $*" >&2; exit 1; }

"$fcn" make-synthetic --out data --train 8 --val 2 --size 32 32 --classes 3 --seed 3 >/dev/null
cat > tiny.json <<'JSON'
{"model": {"arch": "fcn8s", "num_classes": 3, "width": 0.03125, "normalize": "valid"},
 "data": {"format": "voc", "root": "data", "seed": 5},
 "solver": {"base_lr": 0.001, "momentum": 0.9, "max_iter": 100, "snapshot_every": 0, "test_every": 0,
            "display_every": 1, "threads": 1, "seed": 7}}
JSON
# one label gets value 7 (no class of 3, not 255): only the rank that reads it fails
bad=$(head -3 data/ImageSets/Segmentation/train.txt | tail -1)
/usr/bin/python3 - "data/SegmentationClass/$bad.png" <<'PY'
import sys
from PIL import Image
im = Image.open(sys.argv[1])
px = im.load()
px[5, 5] = 7
im.save(sys.argv[1])
PY

# run NAME ARGS...: mpirun -np 2 under a 60 s timeout; sets rc and elapsed
run() {
  local name=$1
  shift
  local start=$SECONDS
  rc=0
  timeout 60 mpirun --allow-run-as-root --oversubscribe -np 2 "$fcn" train "$@" >"$name.out" 2>"$name.log" || rc=$?
  elapsed=$((SECONDS - start))
  [[ $rc != 124 ]] || { cat "$name.log"; fail "$name: the job hung (killed by the 60 s timeout)"; }
  [[ $rc != 0 ]] || { cat "$name.log"; fail "$name: the job exited 0"; }
}

echo "== one corrupt label: its rank fails, the job ends"
run corrupt --config tiny.json --out corrupt
grep -E "^error: rank [01]: .*$bad\.png: label value 7 .*neither a class" corrupt.log ||
  { cat corrupt.out corrupt.log; fail "no 'error: rank R: ...$bad.png: label value 7' message"; }
echo "exit $rc after ${elapsed} s"

echo "== a missing dataset: every rank fails at once"
run missing --config tiny.json --out missing --set data.root=nowhere
grep -E "^error: rank [01]: .*nowhere" missing.log || { cat missing.out missing.log; fail "no 'error: rank R:' message"; }
echo "exit $rc after ${elapsed} s"
echo "PASS"
