#!/usr/bin/env bash
# model.precision through the command line (FCN-8s at width 1/32 on a tiny
# synthetic set).
#  (a) Everywhere: with ONEDNN_MAX_CPU_ISA=AVX512_CORE (oneDNN then sees no
#      bf16), train, predict, eval, bench and forward asked for bf16 exit 1
#      with one stderr line naming model.precision and avx512_bf16, and write
#      nothing (no run directory, mask, dump).
#  (b) Where the CPU has bf16 (`fcn --version` says "bf16: oneDNN ..."):
#      bench says "bf16 via oneDNN" (and, with --precision fp32,bf16, both
#      precisions' figures and the median of their step-by-step ratios), a bf16 run writes "precision": "bf16" to
#      its config.json and run.json and names the kernel in its header, an
#      fp32 checkpoint runs in bf16 (predict, eval), and a bf16 forward
#      differs from the fp32 one by bf16 rounding only. Elsewhere (b) is
#      skipped (exit 77) once (a) has passed.
# Resuming a bf16 run bit-exactly: tests/cli/train_resume.sh.
# Usage (from the repo root): bash tests/cli/precision.sh path/to/fcn
set -euo pipefail
fcn=$(realpath "$1")
repo=$(pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

fail() { echo "FAIL: $*" >&2; exit 1; }

"$fcn" make-synthetic --out data --train 4 --val 2 --size 32 32 --classes 3 --seed 3 >/dev/null
cat > tiny.json <<'EOF'
{"model": {"arch": "fcn8s", "num_classes": 3, "width": 0.03125, "normalize": "valid"},
 "data": {"format": "voc", "root": "data", "seed": 5},
 "solver": {"base_lr": 0.001, "momentum": 0.9, "weight_decay": 0.0005, "max_iter": 2,
            "snapshot_every": 0, "test_every": 0, "display_every": 0, "threads": 2, "seed": 7}}
EOF
"$fcn" train --config tiny.json --out fp32 2>fp32.log || { cat fp32.log; fail "fp32 training"; }
weights=fp32/final.safetensors
# forward's inputs: an image and its labels (class ids)
/usr/bin/python3 - "$repo/tools" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import safetensors_np
rng = np.random.default_rng(1)
safetensors_np.save("image.safetensors", {"data": rng.normal(0, 50, (1, 3, 32, 32)).astype(np.float32)})
safetensors_np.save("label.safetensors", {"label": rng.integers(0, 3, (1, 1, 32, 32)).astype(np.float32)})
EOF
inputs=(--input data=image.safetensors --input label=label.safetensors)

echo "== (a) bf16 refused where oneDNN has no bf16 (ONEDNN_MAX_CPU_ISA=AVX512_CORE)"
# refused NAME WRITTEN CMD...: exit 1, stderr exactly one line naming the key
# and the missing CPU feature, and WRITTEN (what the command would write; -:
# nothing) absent
refused() {
  local name=$1 written=$2 rc=0 err
  shift 2
  ONEDNN_MAX_CPU_ISA=AVX512_CORE "$@" >out.txt 2>err.txt || rc=$?
  err=$(cat err.txt)
  [[ $rc -eq 1 ]] || { echo "$err"; fail "$name: exit $rc, expected 1"; }
  [[ $(wc -l <err.txt) -eq 1 && $err == "error: "*model.precision*avx512_bf16* ]] ||
    { echo "$err"; fail "$name: expected one error line naming model.precision and avx512_bf16"; }
  [[ $written == - || ! -e $written ]] || fail "$name: wrote $written"
  echo "ok [$name]: $err"
}
bf16=(--set model.precision=bf16)
refused "train" run_a "$fcn" train --config tiny.json --out run_a "${bf16[@]}"
refused "predict" masks_a "$fcn" predict --config tiny.json --weights "$weights" --image data/JPEGImages \
  --out masks_a "${bf16[@]}"
refused "eval" saved_a "$fcn" eval --config tiny.json --weights "$weights" --save-dir saved_a "${bf16[@]}"
refused "bench --precision bf16" - "$fcn" bench --config tiny.json --size 32 32 --iters 1 --precision bf16
refused "bench --precision fp32,bf16" - "$fcn" bench --config tiny.json --size 32 32 --iters 1 --precision fp32,bf16
refused "forward" dump_a.safetensors "$fcn" forward --config tiny.json --weights "$weights" "${inputs[@]}" \
  --dump dump_a.safetensors "${bf16[@]}"

echo "== (b) bf16 where the CPU has it"
version=$("$fcn" --version)
if [[ $version != *"bf16: oneDNN "* ]]; then
  echo "SKIP: part (b): no bf16 on this CPU ($(sed -n 's/^bf16: //p' <<<"$version"))"
  exit 77
fi

out=$("$fcn" bench --config tiny.json --size 32 32 --iters 1 --precision bf16 2>bench.log) ||
  { cat bench.log; fail "bench --precision bf16"; }
[[ $out == *"precision   bf16 via oneDNN "* ]] || { echo "$out"; fail "bench does not say bf16 via oneDNN"; }
json=$("$fcn" bench --config tiny.json --size 32 32 --iters 1 --set model.precision=bf16 --json 2>>bench.log | tail -n 1)
[[ $json == *'"precision":"bf16"'* && $json == *'"precision_kernel":"oneDNN '* ]] ||
  { echo "$json"; fail "bench --json lacks precision bf16 and its oneDNN kernel"; }
echo "ok [bench]: $(grep '^precision' <<<"$out")"
# side by side: both precisions' figures, one iteration's ratio per pair, their median
out=$("$fcn" bench --config tiny.json --size 32 32 --iters 3 --precision fp32,bf16 2>>bench.log) ||
  { cat bench.log; fail "bench --precision fp32,bf16"; }
[[ $out == *"precision   fp32 via "*"precision   bf16 via oneDNN "*"bf16/fp32 "*"train step"*"side-by-side pairs"* ]] ||
  { echo "$out"; fail "bench --precision fp32,bf16 lacks both precisions and their ratio"; }
"$fcn" bench --config tiny.json --size 32 32 --iters 3 --precision fp32,bf16 --json 2>>bench.log | tail -n 1 >pair.json
/usr/bin/python3 - <<'EOF' || fail "bench --precision fp32,bf16 --json"
import json, statistics
d = json.load(open("pair.json"))
fp32, bf16 = d["runs"]
assert (fp32["precision"], bf16["precision"], d["ratio"]) == ("fp32", "bf16", "bf16/fp32"), d
ratios = [b / a for a, b in zip(fp32["train_steps_s"], bf16["train_steps_s"])]
assert len(ratios) == 3 and abs(statistics.median(ratios) - d["train_step_ratio"]) < 1e-12, (ratios, d)
assert abs(d["train_step_ratios"][1] - ratios[1]) < 1e-12 and len(d["infer_ratios"]) == 3, d
EOF
echo "ok [bench side by side]: $(grep '^bf16/fp32' <<<"$out")"

"$fcn" train --config tiny.json --out bf16 "${bf16[@]}" 2>bf16.log || { cat bf16.log; fail "bf16 training"; }
log=$(cat bf16.log)
[[ $log == *"precision: bf16 via oneDNN "* ]] || { echo "$log"; fail "the training header does not name bf16 and oneDNN"; }
/usr/bin/python3 - <<'EOF' || fail "run files"
import json
config, run = json.load(open("bf16/config.json")), json.load(open("bf16/run.json"))
assert config["model"]["precision"] == "bf16", config["model"]
assert run["model"]["precision"] == "bf16", run["model"]
assert "precision" not in json.load(open("fp32/config.json"))["model"], "an fp32 run wrote model.precision"
EOF
echo "ok [train]: config.json and run.json say bf16"

"$fcn" predict --config tiny.json --weights "$weights" --image data/JPEGImages/val_00000.jpg --out mask.png \
  "${bf16[@]}" 2>predict.log || { cat predict.log; fail "bf16 predict of an fp32 checkpoint"; }
[[ -f mask.png ]] || fail "bf16 predict wrote no mask"
"$fcn" eval --config tiny.json --weights bf16/final.safetensors --set model.precision=fp32 2>eval.log >/dev/null ||
  { cat eval.log; fail "fp32 eval of a bf16 checkpoint"; }
echo "ok [predict, eval]: checkpoints move between the precisions"

for p in fp32 bf16; do
  "$fcn" forward --config tiny.json --weights "$weights" "${inputs[@]}" --dump "dump_$p.safetensors" \
    --set model.precision=$p 2>forward.log || { cat forward.log; fail "forward in $p"; }
done
/usr/bin/python3 - "$repo/tools" <<'EOF' || fail "forward: bf16 against fp32"
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import safetensors_np
a, _ = safetensors_np.load("dump_fp32.safetensors")
b, _ = safetensors_np.load("dump_bf16.safetensors")
x, y = a["score"].astype(np.float64), b["score"].astype(np.float64)
err = np.abs(x - y).max() / np.abs(x).max()
# bf16 keeps 8 mantissa bits (relative rounding 2^-9 per operand); a few
# layers of them stay within a few percent, and equal scores mean fp32 ran
assert 0 < err < 0.05, "score: max |bf16 - fp32| / max |fp32| = %g" % err
print("ok [forward]: bf16 scores within %.2g of fp32 (relative to the largest)" % err)
EOF
echo "PASS"
