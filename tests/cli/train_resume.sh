#!/usr/bin/env bash
# fcn train --resume ends with final weights bit-identical to an
# uninterrupted run (FCN-8s at width 1/32, with dropout, on a tiny synthetic
# set): after a clean split (max_iter 6, then --resume to 12), after SIGINT
# (exit 130 and the printed resume command), and after kill -9 at a random
# moment (resume from the newest checkpoint); the kill -9 check again in
# model.precision bf16, at 2 threads and width 1/8 (the Winograd path), where
# the CPU has bf16 (that pass is skipped, with a SKIP line, elsewhere). And
# two runs at 2 threads of a model wide enough for the Winograd path end
# bit-identical.
# Usage (from the repo root): bash tests/cli/train_resume.sh path/to/fcn
set -euo pipefail
fcn=$(realpath "$1")
repo=$(pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

fail() { echo "FAIL: $*" >&2; exit 1; }

# same_params A B: the params (not the momentum) of two safetensors files are bit-identical
same_params() {
  /usr/bin/python3 - "$repo/tools" "$1" "$2" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import safetensors_np
a, _ = safetensors_np.load(sys.argv[2])
b, _ = safetensors_np.load(sys.argv[3])
names = sorted(k for k in a if not k.endswith(".momentum"))
assert names == sorted(k for k in b if not k.endswith(".momentum")), "different param names"
diff = [k for k in names if a[k].tobytes() != b[k].tobytes()]
if diff:
    sys.exit("params differ: " + ", ".join(diff[:5]) + " (max |d| %g)" % max(np.abs(a[k] - b[k]).max() for k in diff))
print("identical: %d params of %s and %s" % (len(names), sys.argv[2], sys.argv[3]))
EOF
}

# newest_checkpoint DIR: the complete checkpoint with the highest iteration
newest_checkpoint() { ls "$1"/checkpoints/iter_*.safetensors 2>/dev/null | sort | tail -1; }

# kill_and_resume DIR [ARG...]: a run into DIR (ARGs added) killed with -9 at
# a random moment, then resumed from its newest checkpoint to the end
kill_and_resume() {
  local dir=$1 pid newest
  shift
  "$fcn" train --config tiny.json --out "$dir" --set solver.snapshot_every=1 "$@" 2>"$dir.log" &
  pid=$!
  for _ in $(seq 500); do [[ -n $(newest_checkpoint "$dir") ]] && break; sleep 0.01; done
  sleep "0.0$((RANDOM % 10))"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  [[ -f $dir/final.safetensors ]] && echo "note: the run finished before the kill"
  newest=$(newest_checkpoint "$dir")
  [[ -n $newest ]] || fail "no checkpoint before the kill"
  echo "killed; resuming from $(basename "$newest")"
  "$fcn" train --config "$dir/config.json" --out "$dir" --resume "$newest" 2>>"$dir.log" ||
    { cat "$dir.log"; fail "resume after kill -9"; }
}

"$fcn" make-synthetic --out data --train 8 --val 2 --size 32 32 --classes 3 --seed 3 >/dev/null
cat > tiny.json <<'EOF'
{"model": {"arch": "fcn8s", "num_classes": 3, "width": 0.03125, "normalize": "valid"},
 "data": {"format": "voc", "root": "data", "seed": 5},
 "solver": {"base_lr": 0.001, "momentum": 0.9, "weight_decay": 0.0005, "max_iter": 12,
            "snapshot_every": 3, "test_every": 6, "display_every": 3, "threads": 1, "seed": 7}}
EOF

echo "== uninterrupted"
"$fcn" train --config tiny.json --out ref 2>ref.log || { cat ref.log; fail "uninterrupted run"; }
[[ -f ref/final.safetensors && -f ref/config.json && -f ref/metrics.jsonl && -f ref/curves.png ]] || fail "run outputs missing"

echo "== max_iter 6, then --resume to 12"
"$fcn" train --config tiny.json --out split --set solver.max_iter=6 2>split.log || { cat split.log; fail "first half"; }
[[ -f split/checkpoints/iter_00000006.safetensors ]] || fail "no checkpoint at iteration 6"
"$fcn" train --config split/config.json --out split --set solver.max_iter=12 \
  --resume split/checkpoints/iter_00000006.safetensors 2>>split.log || { cat split.log; fail "resumed half"; }
same_params ref/final.safetensors split/final.safetensors

echo "== SIGINT: checkpoint, exit 130, printed resume command"
"$fcn" train --config tiny.json --out interrupted --set solver.snapshot_every=0 --set solver.display_every=1 \
  2>interrupted.log &
pid=$!
for _ in $(seq 500); do [[ -s interrupted/metrics.jsonl ]] && break; sleep 0.01; done
kill -INT "$pid"
rc=0
wait "$pid" || rc=$?
[[ $rc == 130 ]] || { cat interrupted.log; fail "SIGINT exit code $rc, expected 130"; }
[[ ! -f interrupted/final.safetensors ]] || fail "an interrupted run wrote final weights"
resume=$(grep -A1 "resume with:" interrupted.log | tail -1 | sed 's/^ *fcn //')
[[ $resume == "train --config interrupted/config.json --out interrupted --resume interrupted/checkpoints/iter_"* ]] ||
  { cat interrupted.log; fail "no resume command printed"; }
echo "stopped at $(basename "$(newest_checkpoint interrupted)"); resuming: fcn $resume"
# shellcheck disable=SC2086
"$fcn" $resume 2>>interrupted.log || { cat interrupted.log; fail "resume after SIGINT"; }
same_params ref/final.safetensors interrupted/final.safetensors

echo "== kill -9 at a random moment, resume from the newest checkpoint"
kill_and_resume killed
same_params ref/final.safetensors killed/final.safetensors

echo "== the same in bf16 (model.precision), 2 threads, width 1/8"
version=$("$fcn" --version)
if [[ $version == *"bf16: oneDNN "* ]]; then
  bf16=(--set model.precision=bf16 --set solver.threads=2 --set model.width=0.125)  # wide enough for Winograd
  "$fcn" train --config tiny.json --out ref_bf16 "${bf16[@]}" 2>ref_bf16.log || { cat ref_bf16.log; fail "bf16 run"; }
  kill_and_resume killed_bf16 "${bf16[@]}"
  same_params ref_bf16/final.safetensors killed_bf16/final.safetensors
else
  echo "SKIP: the bf16 pass: no bf16 on this CPU ($(sed -n 's/^bf16: //p' <<<"$version"))"
fi

echo "== 2 threads on a model wide enough for the Winograd path: two runs, one result"
# (resume exactness needs it: the threads must not add up in arrival order)
for run in wide1 wide2; do
  "$fcn" train --config tiny.json --out $run --set model.width=0.125 --set solver.threads=2 \
    --set solver.max_iter=12 --set solver.test_every=0 --set solver.snapshot_every=0 2>$run.log ||
    { cat $run.log; fail "$run"; }
done
same_params wide1/final.safetensors wide2/final.safetensors
echo "PASS"
