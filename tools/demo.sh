#!/usr/bin/env bash
# The whole path on a fresh machine, in a few minutes on 2 cores: install what
# is missing, build, make a synthetic VOC-layout dataset, train a small
# FCN-8s, evaluate it and predict one validation image with an overlay.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/deps.sh
start=$(date +%s)
fcn_install_deps

echo "== build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j 2 --target fcn
fcn=build/fcn

data=data/synthetic
if [[ ! -f $data/ImageSets/Segmentation/val.txt ]]; then
  echo "== make a synthetic dataset in $data"
  $fcn make-synthetic --out $data
fi

run=runs/synthetic-fcn8s
echo "== train (configs/synthetic-fcn8s.json -> $run)"
# the demo's own run: a second demo replaces it (--overwrite: only the run's files)
$fcn train --config configs/synthetic-fcn8s.json --out "$run" --overwrite

echo "== evaluate"
$fcn eval --config "$run/config.json" --weights "$run/final.safetensors" --split val --json "$run/eval.json" \
  --save-dir "$run/predictions" --overwrite

image_id=$(head -n 1 $data/ImageSets/Segmentation/val.txt)
echo "== predict $data/JPEGImages/$image_id.jpg"
$fcn predict --config "$run/config.json" --weights "$run/final.safetensors" \
  --image "$data/JPEGImages/$image_id.jpg" --out "$run/predict_$image_id.png" --overlay "$run/overlay_$image_id.png"

miou=$(/usr/bin/python3 -c "import json,sys; print('%.3f' % json.load(open(sys.argv[1]))['mean_iou'])" "$run/eval.json")
cat <<DONE

Done in $(( $(date +%s) - start )) s. Validation mean IoU: $miou
  run directory:   $run  (config.json, run.json, metrics.jsonl, curves.png, val_samples.png, checkpoints/, final.safetensors)
  run report:      $run/report.html  (open it in a browser: curves, per-class IoU, confusion matrix, diagnostics)
  evaluation:      $run/eval.json, predicted masks in $run/predictions/
  one prediction:  $run/predict_$image_id.png and its overlay $run/overlay_$image_id.png
Next: build/fcn --help, or train on Pascal VOC (README: "Training on Pascal VOC").
DONE
