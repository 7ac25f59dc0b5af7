#!/usr/bin/env bash
# Data-parallel training is the single-process trajectory: 2 ranks with
# iter_size 1 (mpirun -np 2) end with the weights of 1 process with
# iter_size 2 after 5 iterations (relative difference <= 1e-5; FCN-8s at width
# 1/32 with dropout and flips on a tiny synthetic set), and 2 ranks x
# iter_size 2 those of 1 x iter_size 4 after 3. Also: rank 0 alone
# writes the run (one metrics record per iteration), validation split over the
# ranks gives the same scores as one process on the same weights, and a
# 2-rank run resumed with 2 ranks ends bit-identical to an uninterrupted one
# (also across bucket sizes and with the overlap off: a sum of two is exact).
# Batches: 2 ranks x batch_size 2 end with the weights of 1 x iter_size 4
# (normalize none, no batch norm); a batch-norm net on 2 ranks with
# batch_size 2 keeps the ranks' running statistics identical.
# Skips (exit 77, which ctest reports as skipped) when mpirun is missing or fcn was built without MPI.
# Usage (from the repo root): bash tests/cli/mpi_equivalence.sh path/to/fcn
set -euo pipefail
fcn=$(realpath "$1")
repo=$(pwd)
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
mpi2() { timeout 120 mpirun --allow-run-as-root --oversubscribe -np 2 "$@"; }

# compare A B TOL: every param (and momentum buffer) of two safetensors files
# agrees within a relative difference |a-b| / |b| (L2 norms) of TOL
compare() {
  /usr/bin/python3 - "$repo/tools" "$@" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import safetensors_np
a, _ = safetensors_np.load(sys.argv[2])
b, _ = safetensors_np.load(sys.argv[3])
tol = float(sys.argv[4])
assert sorted(a) == sorted(b), "different tensor names: %s vs %s" % (sorted(a)[:5], sorted(b)[:5])
worst, worst_name = 0.0, ""
for k in sorted(a):
    x, y = a[k].astype(np.float64), b[k].astype(np.float64)
    rel = np.linalg.norm(x - y) / max(np.linalg.norm(y), 1e-30)
    if rel > worst:
        worst, worst_name = rel, k
if worst > tol:
    sys.exit("%s and %s differ: %s relative difference %.3g > %g" % (sys.argv[2], sys.argv[3], worst_name, worst, tol))
print("%d tensors agree: largest relative difference %.3g (%s), tolerance %g" % (len(a), worst, worst_name or "-", tol))
PY
}

"$fcn" make-synthetic --out data --train 8 --val 5 --size 32 32 --classes 3 --seed 3 >/dev/null
cat > tiny.json <<'JSON'
{"model": {"arch": "fcn8s", "num_classes": 3, "width": 0.03125, "normalize": "valid"},
 "data": {"format": "voc", "root": "data", "seed": 5, "augment": {"flip": true}, "input_scale": 0.017},
 "solver": {"base_lr": 0.001, "momentum": 0.9, "weight_decay": 0.0005, "max_iter": 5, "iter_size": 1,
            "snapshot_every": 0, "test_every": 5, "display_every": 1, "threads": 1, "seed": 7}}
JSON

echo "== 1 process, iter_size 2"
"$fcn" train --config tiny.json --out one --set solver.iter_size=2 2>one.log || { cat one.log; fail "single-process run"; }

echo "== 2 ranks, iter_size 1"
mpi2 "$fcn" train --config tiny.json --out two >two.out 2>two.log || { cat two.out two.log; fail "2-rank run"; }
grep -q "data parallel: 2 ranks" two.log || { cat two.log; fail "no data-parallel header line"; }
compare two/final.safetensors one/final.safetensors 1e-5
compare two/checkpoints/iter_00000005.safetensors one/checkpoints/iter_00000005.safetensors 1e-5

echo "== 2 ranks x iter_size 2 == 1 process x iter_size 4 (only the last pass of a step starts the allreduce)"
"$fcn" train --config tiny.json --out one4 --set solver.iter_size=4 --set solver.max_iter=3 --set solver.test_every=0 \
  2>one4.log || { cat one4.log; fail "single-process iter_size 4"; }
mpi2 "$fcn" train --config tiny.json --out two2 --set solver.iter_size=2 --set solver.max_iter=3 --set solver.test_every=0 \
  --set solver.allreduce_bucket_mb=0.01 >two2.out 2>two2.log || { cat two2.out two2.log; fail "2 ranks x iter_size 2"; }
grep -q "allreduce of .* in [0-9]* buckets" two2.log && ! grep -q " in 1 buckets" two2.log ||
  { cat two2.log; fail "expected several buckets"; }
compare two2/final.safetensors one4/final.safetensors 1e-5

echo "== 2 ranks x batch_size 2 == 1 process x iter_size 4 (normalize none: a pass averages over its images)"
batched=(--set model.normalize=none --set solver.base_lr=1e-7 --set solver.max_iter=3 --set solver.test_every=0)
"$fcn" train --config tiny.json --out onei4 "${batched[@]}" --set solver.iter_size=4 2>onei4.log ||
  { cat onei4.log; fail "single-process iter_size 4, normalize none"; }
mpi2 "$fcn" train --config tiny.json --out twob2 "${batched[@]}" --set solver.batch_size=2 >twob2.out 2>twob2.log ||
  { cat twob2.out twob2.log; fail "2 ranks x batch_size 2"; }
grep -q "batch_size 2 x iter_size 1 x 2 ranks = 4 images per step" twob2.log || { cat twob2.log; fail "no batch header"; }
compare twob2/final.safetensors onei4/final.safetensors 1e-5

echo "== batch norm with batch_size 2 on 2 ranks: each rank's batch, running statistics averaged and identical"
cat > bn.json <<'JSON'
{"model": {"num_classes": 3, "graph": {"inputs": {"data": {"channels": 3}, "label": {"channels": 1}}, "layers": [
   {"name": "conv1", "type": "conv", "inputs": ["data"], "num_output": 4, "kernel": 3, "pad": 1},
   {"name": "bn1", "type": "batch_norm", "inputs": ["conv1"]},
   {"name": "relu1", "type": "relu", "inputs": ["bn1"]},
   {"name": "score", "type": "conv", "inputs": ["relu1"], "num_output": 3, "kernel": 1},
   {"name": "loss", "type": "softmax_loss", "inputs": ["score", "label"], "normalize": "valid"}]}},
 "data": {"format": "voc", "root": "data", "seed": 5, "augment": {"flip": true}, "input_scale": 0.017},
 "solver": {"base_lr": 0.01, "momentum": 0.9, "max_iter": 3, "batch_size": 2, "snapshot_every": 0,
            "test_every": 3, "display_every": 1, "threads": 1, "seed": 7}}
JSON
# the trainer checks at the end that every rank holds the weights rank 0
# writes, running statistics included (without the averaging they differ)
mpi2 "$fcn" train --config bn.json --out bn2 >bn2.out 2>bn2.log || { cat bn2.out bn2.log; fail "2-rank batch norm run"; }
grep -q "running statistics averaged over the ranks" bn2.log || { cat bn2.log; fail "no batch norm header"; }
/usr/bin/python3 - "$repo/tools" bn2/final.safetensors <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import safetensors_np
two, _ = safetensors_np.load(sys.argv[2])
mean, var = two["bn1.running_mean"], two["bn1.running_var"]
assert np.all(mean != 0) and np.all(var != 1), "running statistics did not move: %s %s" % (mean, var)
print("batch norm: running statistics moved (%s) and agree over the ranks" % mean)
PY

echo "== rank 0 alone writes the run"
[[ -f two/config.json && -f two/metrics.jsonl && -f two/curves.png && -f two/val_samples.png ]] || fail "run outputs missing"
/usr/bin/python3 - one/metrics.jsonl two/metrics.jsonl <<'PY'
import json, math, sys
def records(path):
    return [json.loads(line) for line in open(path)]
one, two = records(sys.argv[1]), records(sys.argv[2])
steps = lambda rs: [r for r in rs if "loss" in r]
vals = lambda rs: [r for r in rs if "val" in r]
assert [r["iter"] for r in steps(two)] == [1, 2, 3, 4, 5], "iteration records: %s" % [r["iter"] for r in steps(two)]
for a, b in zip(steps(one), steps(two)):
    assert math.isclose(a["loss"], b["loss"], rel_tol=1e-5), "loss at %d: %r vs %r" % (a["iter"], a["loss"], b["loss"])
assert len(vals(two)) == 1, vals(two)
print("metrics: 5 iterations, losses agree, one validation")
PY

echo "== validation split over 2 ranks scores as 1 process (same weights)"
mpi2 "$fcn" train --config tiny.json --out val2 --resume one/checkpoints/iter_00000005.safetensors >val2.out \
  2>val2.log || { cat val2.out val2.log; fail "2-rank validation"; }
# 1 x iter_size 2 and 2 x iter_size 1 are the same run: no config-hash warning
if grep -q "different config" val2.log; then cat val2.log; fail "resuming 1x2 as 2x1 warned about the config"; fi
/usr/bin/python3 - one/metrics.jsonl val2/metrics.jsonl <<'PY'
import json, sys
last_val = lambda path: [json.loads(l) for l in open(path) if '"val"' in l][-1]["val"]
a, b = last_val(sys.argv[1]), last_val(sys.argv[2])
assert a == b, "validation differs:\n%s\n%s" % (a, b)
print("validation identical: %s" % a)
PY

echo "== 2 ranks: max_iter 3 (overlap off, small buckets), then --resume to 5 with 2 ranks"
FCN_ALLREDUCE_OVERLAP=0 mpi2 -x FCN_ALLREDUCE_OVERLAP "$fcn" train --config tiny.json --out split \
  --set solver.max_iter=3 --set solver.allreduce_bucket_mb=0.01 >split.out 2>split.log ||
  { cat split.out split.log; fail "first half"; }
mpi2 "$fcn" train --config split/config.json --out split --set solver.max_iter=5 \
  --resume split/checkpoints/iter_00000003.safetensors >>split.out 2>>split.log || { cat split.out split.log; fail "resumed half"; }
grep -q "overlapped with backward: no" split.log || { cat split.log; fail "FCN_ALLREDUCE_OVERLAP=0 was not reported"; }
compare split/final.safetensors two/final.safetensors 0
echo "PASS"
