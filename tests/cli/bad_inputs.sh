#!/usr/bin/env bash
# Bad inputs through the real command line: configs, graph specs, weights,
# images, labels, datasets and arguments. Every case must fail cleanly:
#   - exit status 1..127 (not 0, not a signal, not the 300 s timeout);
#   - exactly one stderr line starting with "error: ", matching the case's
#     pattern (it names the file, JSON path, layer or param at fault);
#   - no sign of a crash anywhere in the output: "terminate called",
#     "Aborted", "Segmentation fault", a sanitizer report, a stack trace.
# Argument-parser (CLI11) mistakes are checked for a clean exit and a message
# only: CLI11 words those itself.
# Usage (from the repo root): bash tests/cli/bad_inputs.sh path/to/fcn
set -uo pipefail
fcn=$(realpath "$1")
repo=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

cases=0
failures=0
crash_signs='terminate called|Aborted|Segmentation fault|core dumped|ERROR: [A-Za-z]*Sanitizer|SUMMARY: [A-Za-z]*Sanitizer|runtime error:|[Ss]tack trace|^ *#[0-9]+ 0x'

# run_case CMD...: runs it with a time limit, stdout/stderr to out.txt/err.txt; sets rc
run_case() {
  rc=0
  timeout 300 "$@" >out.txt 2>err.txt </dev/null || rc=$?
}

report() {  # report NAME PROBLEM CMD...
  local name=$1 problem=$2
  shift 2
  cases=$((cases + 1))
  if [[ -n $problem ]]; then
    failures=$((failures + 1))
    echo "FAIL [$name]: $problem"
    echo "  command: $*"
    head -20 err.txt | sed 's/^/  stderr: /'
  else
    echo "ok   [$name] $(grep -m1 '^error: ' err.txt | cut -c1-150)"
  fi
}

exit_problem() {
  if ((rc == 0)); then
    echo "exit status 0"
  elif ((rc == 124)); then
    echo "timed out after 300 s"
  elif ((rc > 127)); then
    echo "killed by signal $((rc - 128))"
  fi
}

# bad NAME PATTERN CMD...: CMD fails with one "error: " line matching PATTERN (extended regex)
bad() {
  local name=$1 pattern=$2
  shift 2
  run_case "$@"
  local problem errors
  problem=$(exit_problem)
  errors=$(grep -c '^error: ' err.txt)
  if [[ -z $problem && $errors != 1 ]]; then
    problem="$errors stderr lines start with 'error: ', expected exactly 1"
  elif [[ -z $problem ]] && ! grep '^error: ' err.txt | grep -Eq -- "$pattern"; then
    problem="the error line does not match /$pattern/"
  fi
  grep -Eq -- "$crash_signs" err.txt out.txt && problem="${problem:+$problem; }signs of a crash"
  report "$name" "$problem" "$@"
}

# usage NAME CMD...: an argument-parser mistake: exit 1..127 with a message, no crash
usage() {
  local name=$1
  shift
  run_case "$@"
  local problem
  problem=$(exit_problem)
  [[ -z $problem && ! -s err.txt ]] && problem="no message on stderr"
  grep -Eq -- "$crash_signs" err.txt out.txt && problem="${problem:+$problem; }signs of a crash"
  cases=$((cases + 1))
  if [[ -n $problem ]]; then
    report "$name" "$problem" "$@"
  else
    cases=$((cases - 1))
    report "$name" "" "$@"
    echo "       ($(head -1 err.txt | cut -c1-120))"
  fi
}

# good NAME CMD...: an edge case that must succeed
good() {
  local name=$1
  shift
  run_case "$@"
  local problem=""
  ((rc == 0)) || problem="exit status $rc"
  grep -Eq -- "$crash_signs" err.txt out.txt && problem="${problem:+$problem; }signs of a crash"
  report "$name" "$problem" "$@"
}

# A PNG from scratch (python3 standard library only): mkpng OUT KIND W H VALUE,
# KIND one of gray, palette, rgb, gray16; every pixel holds VALUE.
mkpng() {
  /usr/bin/python3 - "$@" <<'EOF'
import struct, sys, zlib
out, kind, w, h, v = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
color, depth, row, palette = {"gray": (0, 8, [v] * w, None), "palette": (3, 8, [v] * w, bytes(range(256)) * 3),
                              "rgb": (2, 8, [v] * (3 * w), None), "gray16": (0, 16, [0, v] * w, None)}[kind]
data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, 0))
if palette: data += chunk(b"PLTE", palette)
data += chunk(b"IDAT", zlib.compress(b"".join(b"\0" + bytes(row) for _ in range(h)))) + chunk(b"IEND", b"")
open(out, "wb").write(data)
EOF
}

# A float32 safetensors file: mkst OUT NAME SHAPE... (values 0.5)
mkst() {
  /usr/bin/python3 - "$@" <<'EOF'
import json, struct, sys
out, name, shape = sys.argv[1], sys.argv[2], [int(d) for d in sys.argv[3:]]
n = 1
for d in shape: n *= d
header = json.dumps({name: {"dtype": "F32", "shape": shape, "data_offsets": [0, 4 * n]}}).encode()
open(out, "wb").write(struct.pack("<Q", len(header)) + header + struct.pack("<%df" % n, *([0.5] * n)))
EOF
}

echo "== setup: a tiny dataset, config and trained weights"
"$fcn" make-synthetic --out ds --train 4 --val 2 --size 32 32 >/dev/null 2>&1 || { echo "FAIL: make-synthetic"; exit 1; }
cat >cfg.json <<'EOF'
{"model": {"arch": "fcn32s", "num_classes": 5, "width": 0.0625, "normalize": "valid"},
 "data": {"format": "voc", "root": "ds"},
 "solver": {"base_lr": 0.001, "momentum": 0.9, "max_iter": 1, "snapshot_every": 0, "test_every": 0,
            "display_every": 0, "threads": 1}}
EOF
good "train one iteration (the weights for the cases below)" "$fcn" train --config cfg.json --out run
weights=run/final.safetensors
[[ -f $weights ]] || { echo "FAIL: no trained weights"; exit 1; }
size=$(stat -c %s "$weights")
head -c $((size / 2)) "$weights" >truncated.safetensors
head -c 5 "$weights" >tiny.safetensors
echo '{"conv1_1.weight": [1, 2, 3]}' >text.safetensors
: >empty.safetensors
mkdir somedir
jpeg=ds/JPEGImages/val_00000.jpg
head -c $(($(stat -c %s $jpeg) / 2)) $jpeg >truncated.jpg
echo "not an image" >garbage.jpg
: >empty.jpg
head -c 300 ds/SegmentationClass/val_00000.png >truncated.png
mkpng rgb.png rgb 32 32 1
mkpng gray16.png gray16 32 32 1
mkpng small.png gray 12 10 0
mkpng value17.png gray 32 32 17
mkpng value255.png palette 32 32 255
mkst input.safetensors data 1 3 8 8
mkst input5d.safetensors data 1 1 3 8 8
mkst input2c.safetensors data 1 2 8 8
mkst input0.safetensors data 1 3 0 8
mkst conv5x5.safetensors conv1.weight 4 3 5 5
cat >graph.json <<'EOF'
{"inputs": {"data": {"channels": 3}},
 "layers": [{"name": "conv1", "type": "conv", "inputs": ["data"], "num_output": 4, "kernel": 3, "pad": 1},
            {"name": "relu1", "type": "relu", "inputs": ["conv1"]}]}
EOF
# graph_with 'LAYER JSON ...': a graph spec file for describe --graph
graph_with() { printf '{"inputs": {"data": {"channels": 3}}, "layers": [%s]}\n' "$1" >g.json; }
conv='{"name": "c", "type": "conv", "inputs": ["data"], "num_output": 2, "kernel": 3'
# config_with 'JSON': a config file
config_with() { printf '%s\n' "$1" >c.json; }

echo "== configs"
printf '{\n  "model": {\n    "arch": "fcn8s",\n    "num_classes": 21,\n  }\n}\n' >syntax.json
bad "config syntax error: line and column (describe)" 'syntax\.json:5:3: invalid JSON' "$fcn" describe --config syntax.json
bad "config syntax error: line and column (train)" 'syntax\.json:5:3: invalid JSON' "$fcn" train --config syntax.json
bad "config: missing file" 'nope\.json: cannot open file' "$fcn" describe --config nope.json
bad "config: a directory" 'somedir' "$fcn" describe --config somedir
: >empty.json
bad "config: empty file" 'empty\.json:1:1: invalid JSON' "$fcn" describe --config empty.json
config_with '[1, 2]'
bad "config: not an object (train)" 'c\.json: .*expected an object, got array' "$fcn" train --config c.json
config_with '{}'
bad "config: no model section" 'c\.json: .*"model"' "$fcn" describe --config c.json
config_with '{"model": {"arch": "fcn8s", "width": 1e999}}'
bad "config: a number beyond double" 'c\.json: invalid JSON \(number overflow' "$fcn" describe --config c.json
config_with '{"model": {"arch": "fcn8s", "num_clases": 5}}'
bad "config: mistyped key, did you mean" 'model\.num_clases: unknown key; did you mean "num_classes"' "$fcn" describe --config c.json
config_with '{"model": {"arch": "fcn8s"}, "modle": {}}'
bad "config: mistyped section" 'modle: unknown key; did you mean "model"' "$fcn" train --config c.json
config_with '{"model": {"arch": "fcn32s"}, "solver": {"max_iters": 5}}'
bad "config: mistyped solver key" 'solver\.max_iters: unknown key; did you mean "max_iter"' "$fcn" train --config c.json
config_with '{"model": {"arch": "fcn32s", "precision": "fp16"}}'
bad "config: unknown precision" 'c\.json: model\.precision: expected "fp32" or "bf16", got "fp16"' "$fcn" describe --config c.json
bad "--set model.precision=fp16 (train)" 'cfg\.json: model\.precision: expected "fp32" or "bf16"' \
  "$fcn" train --config cfg.json --out run_fp16 --set model.precision=fp16
config_with '{"model": {"arch": "fcn8"}}'
bad "config: unknown arch, did you mean" 'model\.arch: unknown value "fcn8".*did you mean "fcn8s"' "$fcn" describe --config c.json
config_with '{"model": {"arch": "fcn32s"}, "solver": {"lr_policy": "stepp"}}'
bad "config: unknown lr_policy" 'solver\.lr_policy: unknown value "stepp"' "$fcn" train --config c.json
config_with '{"model": {"arch": "fcn32s", "num_classes": "21"}}'
bad "config: wrong type (string for integer)" 'model\.num_classes: expected an integer, got string "21"' \
  "$fcn" describe --config c.json
config_with '{"model": {"arch": "fcn32s"}, "data": {"root": "ds", "augment": {"flip": "yes"}}}'
bad "config: wrong type (string for boolean)" 'data\.augment\.flip: expected true or false' "$fcn" train --config c.json
config_with '{"model": {"arch": "fcn32s"}, "data": {"root": 5}}'
bad "config: wrong type (number for string)" 'data\.root: expected a string' "$fcn" train --config c.json
config_with '{"model": {"arch": "fcn32s", "width": 0}}'
bad "config: out of range (width 0)" 'model\.width: must be >=' "$fcn" describe --config c.json
bad "config: out of range (num_classes 300)" 'model\.num_classes: must be <= 255, got 300' \
  "$fcn" describe --config cfg.json --set model.num_classes=300
bad "config: out of range (momentum 1.5)" 'solver\.momentum: must be <= 1' "$fcn" train --config cfg.json --set solver.momentum=1.5
bad "config: out of range (max_iter -5)" 'solver\.max_iter: must be >= 0, got -5' \
  "$fcn" train --config cfg.json --set solver.max_iter=-5
bad "config: out of range (threads 5000)" 'solver\.threads: must be <= 1024' "$fcn" train --config cfg.json --set solver.threads=5000
bad "config: mean_bgr of 2 numbers" 'data\.mean_bgr: expected 3 numbers' "$fcn" train --config cfg.json --set 'data.mean_bgr=[1,2]'
bad "config: step policy without stepsize" 'solver\.stepsize' "$fcn" train --config cfg.json --set solver.lr_policy=step
bad "--set without =" '--set novalue: expected key=value' "$fcn" describe --config cfg.json --set novalue
bad "--set through a non-object" '--set solver\.max_iter\.x=1: .*is not an object' \
  "$fcn" describe --config cfg.json --set solver.max_iter.x=1
bad "--set with --graph" '--set applies to --config' "$fcn" describe --graph graph.json --set a=1

echo "== graph specs"
graph_with '{"name": "c", "type": "convv", "inputs": ["data"]}'
bad "graph: unknown layer type" 'layers\[0\]\.type: unknown layer type "convv".*did you mean "conv"' "$fcn" describe --graph g.json
graph_with '{"name": "c", "type": "conv", "inputs": ["dta"], "num_output": 2, "kernel": 3}'
bad "graph: undefined input blob" "layers\\[0\\]\\.inputs\\[0\\]: layer 'c' reads blob 'dta'.*did you mean 'data'" \
  "$fcn" describe --graph g.json
graph_with "$conv}, {\"name\": \"c\", \"type\": \"relu\", \"inputs\": [\"c\"]}"
bad "graph: duplicate layer name" "layers\\[1\\]\\.name: duplicate name 'c'" "$fcn" describe --graph g.json
graph_with '{"name": "c", "type": "conv", "inputs": ["data"], "num_output": 2, "kernel": -1}'
bad "graph: negative kernel" 'layers\[0\]\.kernel: expected positive integer, got -1' "$fcn" describe --graph g.json
graph_with "$conv, \"strid\": 2}"
bad "graph: mistyped layer key" 'layers\[0\]\.strid: unknown key; did you mean "stride"' "$fcn" describe --graph g.json
graph_with '{"name": "c", "type": "conv", "inputs": ["data"], "kernel": 3}'
bad "graph: layer missing num_output" 'layers\[0\]\.num_output: missing required key' "$fcn" describe --graph g.json
graph_with "$conv}"
bad "graph: kernel larger than the input" "layer 'c' \\(conv\\): .*inputs: data \\[1, 3, 2, 2\\]" "$fcn" describe --graph g.json --size 2 2
graph_with "$conv, \"pad\": 4611686018427387904}"
bad "graph: pad 2^62 (overflow)" "layers\\[0\\]\\.pad|layer 'c' \\(conv\\)" "$fcn" describe --graph g.json --size 8 8
graph_with '{"name": "c", "type": "conv", "inputs": ["data"], "num_output": 4611686018427387904, "kernel": 3}'
bad "graph: num_output 2^62" 'impossibly large|num_output' "$fcn" describe --graph g.json --size 8 8
graph_with '{"name": "c", "type": "deconv", "inputs": ["data"], "num_output": 2, "kernel": 3, "stride": 4611686018427387904}'
bad "graph: deconv stride 2^62 (overflow)" "layers\\[0\\]\\.stride|layer 'c' \\(deconv\\)|impossibly large" \
  "$fcn" describe --graph g.json --size 8 8
graph_with '{"name": "c", "type": "crop", "inputs": ["data", "data"], "offset": 9223372036854775800}'
bad "graph: crop offset near 2^63 (overflow)" "layer 'c' \\(crop\\): crop window" \
  "$fcn" forward --graph g.json --input data=input.safetensors --dump dump.safetensors
graph_with '{"name": "c", "type": "crop", "inputs": ["data"], "offset": 0}'
bad "graph: crop with one input" "layer 'c' \\(crop\\): expects 2 input" "$fcn" describe --graph g.json --size 8 8
printf '[]' >g.json
bad "graph: not an object" 'graph: expected an object' "$fcn" describe --graph g.json
bad "graph: missing file" 'nope\.json: cannot open file' "$fcn" describe --graph nope.json

echo "== sizes"
bad "describe --size 0 0" '--size: expected two positive integers' "$fcn" describe --config cfg.json --size 0 0
bad "describe --size -5 3" '--size: expected two positive integers' "$fcn" describe --config cfg.json --size -5 3
good "describe --size 1 1" "$fcn" describe --config cfg.json --size 1 1
bad "describe --size 1000000 1000000" 'out of memory|impossibly large|too large for 32-bit argmax' "$fcn" describe --config cfg.json --size 1000000 1000000
bad "describe --size 2^63-1 1" 'impossibly large' "$fcn" describe --config cfg.json --size 9223372036854775807 1
bad "bench --size 0 0" '--size: expected two positive integers' "$fcn" bench --config cfg.json --size 0 0
bad "bench --iters 0" '--iters: expected a positive integer' "$fcn" bench --config cfg.json --size 16 16 --iters 0
bad "bench --precision fp16" '^error: --precision: expected "fp32" or "bf16", got "fp16"' \
  "$fcn" bench --config cfg.json --size 16 16 --precision fp16
bad "bench --precision and --set model.precision disagree" '--precision bf16 and --set model\.precision=fp32 disagree' \
  "$fcn" bench --config cfg.json --size 16 16 --precision bf16 --set model.precision=fp32
bad "bench --threads -3" '--threads: expected 0' "$fcn" bench --config cfg.json --size 16 16 --threads -3
bad "bench --threads 100000 (libgomp stack overflow)" '--threads: expected 0' "$fcn" bench --config cfg.json --size 16 16 --threads 100000
bad "make-synthetic --size 0 0" '--size: height and width must be in' "$fcn" make-synthetic --out s --size 0 0
bad "make-synthetic --train 0" '--train/--val: need at least one image' "$fcn" make-synthetic --out s --train 0
bad "make-synthetic --classes 1000" '--classes: must be in 2\.\.' "$fcn" make-synthetic --out s --classes 1000
bad "make-synthetic --out a file" '/dev/null/JPEGImages: cannot create directory' "$fcn" make-synthetic --out /dev/null --train 1 --val 1
bad "explain: unknown topic" "explain: unknown topic 'nope'" "$fcn" explain nope
bad "explain --out a file" '/dev/null: cannot create directory' "$fcn" explain deconv --out /dev/null

echo "== forward: inputs and weights"
bad "forward: weights with a wrongly shaped tensor" \
  'param conv1\.weight has shape \[4, 3, 5, 5\] in conv5x5\.safetensors but the model expects \[4, 3, 3, 3\]' \
  "$fcn" forward --graph graph.json --input data=input.safetensors --weights conv5x5.safetensors --dump dump.safetensors
bad "forward: truncated weights" 'truncated\.safetensors: not a valid safetensors file' \
  "$fcn" forward --graph graph.json --input data=input.safetensors --weights truncated.safetensors --dump dump.safetensors
bad "forward: missing weights" 'nope\.safetensors: cannot open file' \
  "$fcn" forward --graph graph.json --input data=input.safetensors --weights nope.safetensors --dump dump.safetensors
bad "forward: weights not safetensors (JSON text)" 'text\.safetensors: not a valid safetensors file' \
  "$fcn" forward --graph graph.json --input data=input.safetensors --weights text.safetensors --dump dump.safetensors
bad "forward: 5-d input" "graph input 'data': expected shape \\[N, 3, H, W\\], got \\[1, 1, 3, 8, 8\\]" \
  "$fcn" forward --graph graph.json --input data=input5d.safetensors --dump dump.safetensors
bad "forward: input with 2 channels" "graph input 'data': expected shape \\[N, 3, H, W\\], got \\[1, 2, 8, 8\\]" \
  "$fcn" forward --graph graph.json --input data=input2c.safetensors --dump dump.safetensors
bad "forward: input of height 0" "layer 'conv1' \\(conv\\)" \
  "$fcn" forward --graph graph.json --input data=input0.safetensors --dump dump.safetensors --backward
bad "forward: input tensor not in the file" "input\\.safetensors: holds no tensor named 'label'" \
  "$fcn" forward --graph graph.json --input label=input.safetensors --dump dump.safetensors
bad "forward: --input without =" '--input data: expected name=FILE' "$fcn" forward --graph graph.json --input data --dump dump.safetensors
bad "forward: --dump into a missing directory" 'nope/dump\.safetensors: cannot write' \
  "$fcn" forward --graph graph.json --input data=input.safetensors --dump nope/dump.safetensors
bad "forward: --dump onto a directory" 'somedir' "$fcn" forward --graph graph.json --input data=input.safetensors --dump somedir

echo "== eval --pred-dir: predictions and ground truth"
mkdir pred
cp ds/SegmentationClass/val_0000[01].png pred/
pred_case() {  # pred_case NAME PATTERN FILE: FILE as the prediction for val_00000
  rm -rf pred/val_00000.png
  cp -r "$3" pred/val_00000.png
  bad "$1" "$2" "$fcn" eval --pred-dir pred --data ds --num-classes 5
  rm -rf pred/val_00000.png
  cp ds/SegmentationClass/val_00000.png pred/
}
good "eval --pred-dir on the ground truth itself" "$fcn" eval --pred-dir pred --data ds --num-classes 5
pred_case "prediction: truncated PNG" 'pred/val_00000\.png: invalid PNG' truncated.png
pred_case "prediction: not a PNG" 'pred/val_00000\.png: invalid PNG \(not a PNG file\)' garbage.jpg
pred_case "prediction: empty file" 'pred/val_00000\.png: invalid PNG' empty.jpg
pred_case "prediction: a directory" 'pred/val_00000\.png' somedir
pred_case "prediction: RGB PNG" 'pred/val_00000\.png: label PNG must be indexed \(palette\) or 8-bit grayscale, got RGB' rgb.png
pred_case "prediction: 16-bit PNG" 'pred/val_00000\.png: label PNG must be .* got 16-bit grayscale' gray16.png
pred_case "prediction: wrong size" 'pred/val_00000\.png: prediction is 12x10 but the ground truth is 32x32' small.png
pred_case "prediction: value 17 is not a class" 'pred/val_00000\.png: predicted value 17 .* not a class' value17.png
pred_case "prediction: value 255 is not a class" 'pred/val_00000\.png: predicted value 255 .* not a class' value255.png
rm pred/val_00000.png
bad "prediction: missing" 'pred/val_00000\.png: missing prediction for "val_00000"' "$fcn" eval --pred-dir pred --data ds --num-classes 5
cp ds/SegmentationClass/val_00000.png pred/
bad "eval: --data does not exist" 'nope/ImageSets/Segmentation/val\.txt: cannot open split list' \
  "$fcn" eval --pred-dir pred --data nope --num-classes 5
bad "eval: unknown split" 'ds/ImageSets/Segmentation/nosuch\.txt: cannot open split list' \
  "$fcn" eval --pred-dir pred --data ds --num-classes 5 --split nosuch
bad "eval: ground truth with values above --num-classes" 'ds/SegmentationClass/val_00000\.png: label value [0-9]+ .* neither a class \(0\.\.1\)' \
  "$fcn" eval --pred-dir pred --data ds --num-classes 2
bad "eval: --class-names count" '--class-names: has 2 names but --num-classes is 5' \
  "$fcn" eval --pred-dir pred --data ds --num-classes 5 --class-names a,b
bad "eval: --json into a missing directory" 'nope/x\.json: cannot write' \
  "$fcn" eval --pred-dir pred --data ds --num-classes 5 --json nope/x.json
usage "eval: --num-classes 0" "$fcn" eval --pred-dir pred --data ds --num-classes 0

# corrupt COPY: a fresh copy of the dataset in bad/ with cfg_bad.json pointing at it
corrupt() {
  rm -rf bad
  cp -r ds bad
  sed 's#"root": "ds"#"root": "bad"#' cfg.json >cfg_bad.json
}
corrupt
mkpng bad/SegmentationClass/val_00001.png palette 32 32 17
bad "ground truth: label value 17 (neither class nor 255)" \
  'bad/SegmentationClass/val_00001\.png: label value 17 at \(x=0, y=0\) is neither a class \(0\.\.4\) nor the ignore label 255' \
  "$fcn" eval --pred-dir pred --data bad --num-classes 5
corrupt
mkpng bad/SegmentationClass/val_00001.png palette 20 20 1
bad "ground truth: wrong size" 'pred/val_00001\.png: prediction is 32x32 but the ground truth is 20x20' \
  "$fcn" eval --pred-dir pred --data bad --num-classes 5
corrupt
echo ghost >>bad/ImageSets/Segmentation/val.txt
bad "list entry with no files (eval)" 'bad/SegmentationClass/ghost\.png: no such file \(listed as "ghost" in .*val\.txt line 3\)' \
  "$fcn" eval --pred-dir bad/SegmentationClass --data bad --num-classes 5
corrupt
: >bad/ImageSets/Segmentation/val.txt
bad "empty split (eval)" 'bad/ImageSets/Segmentation/val\.txt: split "val" lists no images' \
  "$fcn" eval --pred-dir pred --data bad --num-classes 5

echo "== train: data errors"
corrupt
mkpng bad/SegmentationClass/train_00001.png palette 20 20 1
bad "train: label of the wrong size" 'bad/SegmentationClass/train_00001\.png: label is 20x20 but its image is 32x32' \
  "$fcn" train --config cfg_bad.json --out r --overwrite
corrupt
for i in 0 1 2 3; do mkpng bad/SegmentationClass/train_0000$i.png palette 32 32 17; done
bad "train: label value 17" 'bad/SegmentationClass/train_0000[0-3]\.png: label value 17 .* neither a class' \
  "$fcn" train --config cfg_bad.json --out r --overwrite
corrupt
echo ghost >>bad/ImageSets/Segmentation/train.txt
bad "train: list entry with no files" 'bad/JPEGImages/ghost\.jpg: no such file \(listed as "ghost" in .*train\.txt line 5\)' \
  "$fcn" train --config cfg_bad.json --out r --overwrite
corrupt
rm bad/JPEGImages/train_00002.jpg
bad "train: missing image" 'bad/JPEGImages/train_00002\.jpg: no such file' "$fcn" train --config cfg_bad.json --out r --overwrite
corrupt
: >bad/ImageSets/Segmentation/train.txt
bad "train: empty split" 'bad/ImageSets/Segmentation/train\.txt: split "train" lists no images' \
  "$fcn" train --config cfg_bad.json --out r --overwrite
corrupt
for i in 0 1 2 3; do cp truncated.jpg bad/JPEGImages/train_0000$i.jpg; done
bad "train: truncated images (on_error stop)" 'bad/JPEGImages/train_0000[0-3]\.jpg: truncated JPEG' \
  "$fcn" train --config cfg_bad.json --out r --overwrite
bad "train: nothing loadable (on_error skip)" 'bad/JPEGImages/train_0000[0-3]\.jpg: truncated JPEG' \
  "$fcn" train --config cfg_bad.json --out r --overwrite --set data.on_error=skip
corrupt
echo "garbage" >bad/JPEGImages/train_00003.jpg
bad "train: undecodable image" 'bad/JPEGImages/train_00003\.jpg' "$fcn" train --config cfg_bad.json --out r --overwrite
bad "train: --data root missing" 'nope/ImageSets/Segmentation/train\.txt: cannot open split list' \
  "$fcn" train --config cfg.json --out r --overwrite --set data.root=nope
bad "train: data.root of the wrong type" 'data\.root: expected a string' "$fcn" train --config cfg.json --out r --overwrite --set data.root=5
good "describe ignores the data section" "$fcn" describe --config cfg.json --set data.root=5 --size 8 8
bad "train: data.root on a config with data.train and data.val (the VOC recipes)" \
  'voc-fcn32s\.json: data\.root: not with data\.train and data\.val .*--set data\.train\.root=DIR --set data\.val\.root=DIR$' \
  "$fcn" train --config "$repo/configs/voc-fcn32s.json" --out r_forms --set data.root=/data/voc
config_with '{"model": {"arch": "fcn32s"}, "data": {"root": "ds", "train": {"root": "a"}, "val": {"root": "b"}}}'
bad "inspect-data: a config file that mixes data.root with data.train and data.val" \
  'c\.json: data\.root: not with data\.train and data\.val .*--set data\.train\.root=DIR' \
  "$fcn" inspect-data --config c.json
bad "train: data.train on a single-root config" \
  'data\.val: missing: data\.train and data\.val come together .*--set data\.root=DIR' \
  "$fcn" train --config cfg.json --out r_forms --set data.train.root=ds

# SBD labels (.mat): a 4-byte edit of a fixture that crashed libmatio's Mat_VarGetStructFieldByName
cp -r "$repo/tests/fixtures/data/sbd" sbd
/usr/bin/python3 -c "
import sys
b = bytearray(open('sbd/cls/s1.mat', 'rb').read())
b[245:249] = bytes([0xce, 0xed, 0xe2, 0x1b])
open('sbd/cls/s1.mat', 'wb').write(b)"
sed 's#"format": "voc", "root": "ds"#"format": "sbd", "root": "sbd"#' cfg.json >cfg_sbd.json
bad "train: corrupt SBD .mat label" 'sbd/cls/s1\.mat: ' "$fcn" train --config cfg_sbd.json --out r --overwrite
echo "not a mat file" >sbd/cls/s1.mat
bad "train: SBD label that is not a .mat file" 'sbd/cls/s1\.mat: cannot open as a MATLAB file' "$fcn" train --config cfg_sbd.json --out r --overwrite

echo "== train: weights, resume, output"
bad "train --resume missing file" 'nope\.safetensors: cannot open file' "$fcn" train --config cfg.json --out r_resume --resume nope.safetensors
bad "train --resume truncated" 'truncated\.safetensors: not a valid safetensors file' \
  "$fcn" train --config cfg.json --out r_resume --resume truncated.safetensors
bad "train --resume from another width" 'param conv1_1\.weight has shape \[4, 3, 3, 3\] .* expects \[8, 3, 3, 3\]' \
  "$fcn" train --config cfg.json --out r_resume --resume "$weights" --set model.width=0.125
bad "train --init not safetensors" 'garbage\.jpg: not a valid safetensors file' \
  "$fcn" train --config cfg.json --out r --overwrite --init garbage.jpg
bad "train --out a file" '/dev/null/checkpoints: cannot create the directory' "$fcn" train --config cfg.json --out /dev/null

echo "== eval --weights (model evaluation)"
for w in nope.safetensors truncated.safetensors tiny.safetensors text.safetensors empty.safetensors garbage.jpg; do
  bad "eval --weights $w" "${w//./\\.}: (cannot open file|not a valid safetensors file)" \
    "$fcn" eval --config cfg.json --weights "$w"
done
bad "eval --weights a directory" 'somedir' "$fcn" eval --config cfg.json --weights somedir
bad "eval --weights of another width: names the param and both shapes" \
  'param conv1_1\.weight has shape \[4, 3, 3, 3\] in .*final\.safetensors but the model expects \[8, 3, 3, 3\]' \
  "$fcn" eval --config cfg.json --weights "$weights" --set model.width=0.125
bad "eval --weights of another arch" 'final\.safetensors: .*score_pool4' \
  "$fcn" eval --config cfg.json --weights "$weights" --set model.arch=fcn8s
corrupt
: >bad/ImageSets/Segmentation/val.txt
bad "eval --weights with an empty val split" 'bad/ImageSets/Segmentation/val\.txt: split "val" lists no images' \
  "$fcn" eval --config cfg_bad.json --weights "$weights"

echo "== predict"
good "predict one image" "$fcn" predict --config cfg.json --weights "$weights" --image "$jpeg" --out mask.png
for image in truncated.jpg garbage.jpg empty.jpg truncated.png nope.jpg; do
  bad "predict --image $image" "${image//./\\.}: (truncated JPEG|cannot decode image|empty file|no such file)" \
    "$fcn" predict --config cfg.json --weights "$weights" --image "$image" --out mask.png
done
mkdir -p images emptydir
cp "$jpeg" truncated.jpg images/
bad "predict a directory holding a truncated image" 'images/truncated\.jpg: truncated JPEG' \
  "$fcn" predict --config cfg.json --weights "$weights" --image images --out masks
bad "predict an empty directory" 'emptydir: no image files' \
  "$fcn" predict --config cfg.json --weights "$weights" --image emptydir --out masks
bad "predict --out a directory for one image" '--out somedir: is a directory' \
  "$fcn" predict --config cfg.json --weights "$weights" --image "$jpeg" --out somedir
bad "predict --out into a missing directory" 'nope/mask\.png' \
  "$fcn" predict --config cfg.json --weights "$weights" --image "$jpeg" --out nope/mask.png
bad "predict --weights truncated" 'truncated\.safetensors: not a valid safetensors file' \
  "$fcn" predict --config cfg.json --weights truncated.safetensors --image "$jpeg" --out mask.png
bad "predict --weights of another width" 'param conv1_1\.weight has shape \[4, 3, 3, 3\] .* expects \[8, 3, 3, 3\]' \
  "$fcn" predict --config cfg.json --weights "$weights" --image "$jpeg" --out mask.png --set model.width=0.125

echo "== settings that must agree, environment"
bad "model.ignore_label and data.ignore_label differ" \
  'model\.ignore_label \(254\) and data\.ignore_label \(255\) differ' \
  "$fcn" train --config cfg.json --out r_ignore --set model.ignore_label=254 --set data.ignore_label=255
bad "FCN_WINOGRAD=off (a typo is not a silent default)" 'FCN_WINOGRAD=off: expected one of 0, 2, 4' \
  env FCN_WINOGRAD=off "$fcn" describe --config cfg.json
bad "FCN_ALLREDUCE_OVERLAP=false" 'FCN_ALLREDUCE_OVERLAP=false: expected one of 0, 1' \
  env FCN_ALLREDUCE_OVERLAP=false "$fcn" train --config cfg.json --out r_env

echo "== import-caffe and export-onnx"
printf '' > empty.caffemodel
head -c 2000 /dev/urandom > random.caffemodel
bad "import-caffe: empty file" 'empty\.caffemodel: not a Caffe model .*byte offset 0' \
  "$fcn" import-caffe empty.caffemodel --out imp_empty
bad "import-caffe: random bytes" 'random\.caffemodel: .*byte offset' "$fcn" import-caffe random.caffemodel --out imp_rand
bad "import-caffe: missing file" 'nope\.caffemodel: cannot open' "$fcn" import-caffe nope.caffemodel --out imp_nope
bad "import-caffe: a config as the model" 'cfg\.json: .*byte offset' "$fcn" import-caffe cfg.json --out imp_cfg
bad "export-onnx: missing weights file" 'nope\.safetensors' \
  "$fcn" export-onnx --config cfg.json --weights nope.safetensors --out m.onnx
bad "export-onnx: existing --out" 'cfg\.json: exists; choose another --out or delete it' \
  "$fcn" export-onnx --config cfg.json --weights run/final.safetensors --out cfg.json
bad "export-onnx: --size 0 5" '--size: expected two positive integers' \
  "$fcn" export-onnx --config cfg.json --weights run/final.safetensors --out m.onnx --size 0 5
usage "import-caffe without --out" "$fcn" import-caffe empty.caffemodel

echo "== inspect-data and make-synthetic --rare-class"
bad "inspect-data: missing config" 'nope\.json: cannot open file' "$fcn" inspect-data --config nope.json
bad "inspect-data: mistyped data key" 'data\.roott: unknown key; did you mean "root"' \
  "$fcn" inspect-data --config cfg.json --set data.roott=ds
bad "make-synthetic --rare-class beyond the classes" '--rare-class: must be a foreground class \(1\.\.4\)' \
  "$fcn" make-synthetic --out rare --classes 5 --rare-class 5
usage "inspect-data --threads -1" "$fcn" inspect-data --config cfg.json --threads -1

echo "== report"
mkdir -p not_a_run
bad "report: a directory without a run" 'not_a_run: holds no run \(no metrics\.jsonl, no config\.json\)' "$fcn" report not_a_run
bad "report: a missing directory" 'nope_run: no such run directory' "$fcn" report nope_run
usage "report without RUN_DIR" "$fcn" report

echo "== argument parsing (CLI11 wording)"
usage "no subcommand" "$fcn"
usage "unknown subcommand" "$fcn" frobnicate
usage "unknown option" "$fcn" describe --config cfg.json --frobnicate
usage "missing required option" "$fcn" train
usage "--size with one value" "$fcn" describe --config cfg.json --size 3
usage "--size not a number" "$fcn" describe --config cfg.json --size abc 3
usage "--size beyond int64" "$fcn" describe --config cfg.json --size 9223372036854775808 1
usage "garbage bytes as arguments" "$fcn" $'\xff\xfe' $'--\x01'

echo
echo "$cases cases, $failures failed"
((failures == 0)) || exit 1
echo "PASS"
