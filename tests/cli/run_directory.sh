#!/usr/bin/env bash
# A run directory is never replaced by accident (src/train/run_directory.cpp):
# a second train on a used --out fails and leaves every file of the first run
# byte-identical; two concurrent trains on one --out: exactly one runs, the
# other names the PID holding the lock; --overwrite removes only the run's
# files; a lock left by kill -9 does not block the resume; --resume with
# another config is refused. And eval --save-dir / predict into a directory
# never overwrite masks the user did not name.
# Usage (from the repo root): bash tests/cli/run_directory.sh path/to/fcn
set -euo pipefail
fcn=$(realpath "$1")
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
cd "$tmp"

fail() { echo "FAIL: $*" >&2; exit 1; }
# fingerprint DIR: every file under DIR with its checksum, sorted
fingerprint() { (cd "$1" && find . -type f ! -name train.lock -print0 | sort -z | xargs -0 sha256sum); }
# refused NAME PATTERN CMD...: exit 1 and one "error:" line matching PATTERN
refused() {
  local name=$1 pattern=$2 rc=0
  shift 2
  "$@" >out.txt 2>err.txt || rc=$?
  [[ $rc -eq 1 ]] || { cat err.txt; fail "$name: exit $rc, expected 1"; }
  [[ $(grep -c '^error: ' err.txt) -eq 1 ]] || { cat err.txt; fail "$name: expected one error line"; }
  grep -Eq -- "$pattern" err.txt || { cat err.txt; fail "$name: message does not match /$pattern/"; }
  echo "ok [$name]: $(grep '^error: ' err.txt)"
}
# wait_for FILE-GLOB: until a file matching it exists (20 s at most)
wait_for() {
  for _ in $(seq 200); do compgen -G "$1" >/dev/null && return 0; sleep 0.1; done
  fail "nothing matched $1 in time"
}

"$fcn" make-synthetic --out data --train 6 --val 2 --size 32 32 --classes 3 --seed 3 >/dev/null
cat > tiny.json <<'EOF'
{"model": {"arch": "fcn32s", "num_classes": 3, "width": 0.03125, "normalize": "valid"},
 "data": {"format": "voc", "root": "data", "seed": 5},
 "solver": {"base_lr": 0.001, "momentum": 0.9, "max_iter": 4, "snapshot_every": 2, "test_every": 4,
            "display_every": 2, "threads": 1, "seed": 7}}
EOF

echo "== a second train on a used --out is refused and changes nothing"
"$fcn" train --config tiny.json --out run 2>first.log || { cat first.log; fail "first run"; }
before=$(fingerprint run)
refused "train into a finished run" 'run: already holds a run \(config\.json, run\.json, metrics\.jsonl and [0-9]+ more\).*--overwrite' \
  "$fcn" train --config tiny.json --out run --set solver.max_iter=2
[[ "$(fingerprint run)" == "$before" ]] || fail "the refused train changed the first run's files"
refused "resume with another config" 'holds a run with another config' \
  "$fcn" train --config tiny.json --out run --set solver.base_lr=0.5 --resume run/checkpoints/iter_00000002.safetensors
[[ "$(fingerprint run)" == "$before" ]] || fail "the refused resume changed the first run's files"
refused "--overwrite with --resume" '--overwrite and --resume' \
  "$fcn" train --config tiny.json --out run --overwrite --resume run/checkpoints/iter_00000002.safetensors

echo "== --resume of the same run continues it"
"$fcn" train --config tiny.json --out run --set solver.max_iter=6 \
  --resume run/checkpoints/iter_00000004.safetensors 2>resume.log || { cat resume.log; fail "resume of the same run"; }
[[ -f run/checkpoints/iter_00000006.safetensors ]] || fail "the resumed run wrote no iteration-6 checkpoint"

echo "== --overwrite removes the run's files and nothing else"
echo "my notes" > run/notes.txt
echo "keep" > run/checkpoints/mine.txt
"$fcn" train --config tiny.json --out run --overwrite --set solver.max_iter=2 2>over.log || { cat over.log; fail "--overwrite"; }
[[ -f run/notes.txt && -f run/checkpoints/mine.txt ]] || fail "--overwrite removed a file that is not the run's"
[[ ! -e run/checkpoints/iter_00000004.safetensors && ! -e run/checkpoints/iter_00000006.safetensors ]] ||
  fail "--overwrite left the old run's later checkpoints"
[[ -f run/checkpoints/iter_00000002.safetensors && -f run/final.safetensors ]] || fail "the new run's files are missing"
[[ $(grep -c '"iter"' run/metrics.jsonl) -le 3 ]] || fail "metrics.jsonl kept the old run's lines"

echo "== two trains on one --out: exactly one runs"
"$fcn" train --config tiny.json --out busy --set solver.max_iter=100000 --set solver.snapshot_every=0 \
  --set solver.test_every=0 2>busy1.log &
holder=$!
wait_for "busy/config.json"
refused "a second train while the first runs" "another fcn train is running in this directory \\(pid $holder," \
  "$fcn" train --config tiny.json --out busy
kill -0 $holder 2>/dev/null || fail "the first train stopped"

echo "== a lock left by kill -9 does not block"
kill -9 $holder
wait $holder 2>/dev/null || true
[[ -f busy/train.lock ]] || fail "no lock file"
"$fcn" train --config tiny.json --out busy --overwrite --set solver.max_iter=2 2>stale.log ||
  { cat stale.log; fail "train after kill -9 was blocked"; }
"$fcn" train --config tiny.json --out killed --set solver.max_iter=100000 --set solver.snapshot_every=2 \
  --set solver.test_every=0 2>killed.log &
victim=$!
wait_for "killed/checkpoints/iter_*.safetensors"
kill -9 $victim
wait $victim 2>/dev/null || true
newest=$(ls killed/checkpoints/iter_*.safetensors | sort | tail -1)
iter=$(basename "$newest" .safetensors)
iter=$((10#${iter#iter_}))
"$fcn" train --config killed/config.json --out killed --resume "$newest" --set solver.max_iter=$((iter + 2)) \
  2>resumed.log || { cat resumed.log; fail "resume after kill -9"; }

echo "== eval --save-dir and predict into a directory never overwrite unnamed masks"
weights=run/final.safetensors
"$fcn" eval --config tiny.json --weights $weights --save-dir masks >/dev/null 2>eval.log || { cat eval.log; fail "eval --save-dir"; }
before=$(fingerprint masks)
refused "eval --save-dir over saved masks" 'masks: already holds 2 of the masks .*--overwrite' \
  "$fcn" eval --config tiny.json --weights $weights --save-dir masks
[[ "$(fingerprint masks)" == "$before" ]] || fail "the refused eval changed the masks"
"$fcn" eval --config tiny.json --weights $weights --save-dir masks --overwrite >/dev/null 2>>eval.log ||
  { cat eval.log; fail "eval --save-dir --overwrite"; }
mkdir images && cp data/JPEGImages/val_0000*.jpg images/
"$fcn" predict --config tiny.json --weights $weights --image images --out pred 2>pred.log || { cat pred.log; fail "predict dir"; }
refused "predict a directory over saved masks" 'pred: already holds 2 of the masks .*--overwrite' \
  "$fcn" predict --config tiny.json --weights $weights --image images --out pred
"$fcn" predict --config tiny.json --weights $weights --image images --out pred --overwrite 2>>pred.log ||
  { cat pred.log; fail "predict --overwrite"; }
"$fcn" predict --config tiny.json --weights $weights --image images/val_00000.jpg --out named.png 2>>pred.log
"$fcn" predict --config tiny.json --weights $weights --image images/val_00000.jpg --out named.png 2>>pred.log ||
  fail "predict to a file the user named must overwrite it"
echo "all run-directory checks passed"
