#!/usr/bin/env bash
# Side-by-side speed and memory of fcn and PyTorch on the same CPU.
#
# Builds Release, measures the machine's sgemm peak (tools/sgemm_peak) and the
# GEMM-only floor of an FCN-8s train step (tools/gemm_floor), then runs
# `fcn bench` and ../shared/bench/torch_fcn.py (the same nets in PyTorch) one
# after the other on FCN-32s/16s/8s at 500x500 and on a quarter-width FCN-8s
# at 256x256, and prints a table of train-step and inference times (medians),
# their ratios, GFLOP/s and peak RSS. The VGG16 cases (batch 1) are also run
# in ONNX Runtime (../shared/bench/ort_fcn.sh: the PyTorch net exported to
# ONNX, npm onnxruntime-node), the inference column users deploy with.
#
# Where the CPU computes bf16 (fcn --version: "bf16: oneDNN ..."), every case
# also runs with model.precision bf16, the VGG16 batch-1 cases in PyTorch
# under bf16 autocast (PRECISION=bf16), and tools/bf16_peak measures the
# bf16 yardstick (one large oneDNN convolution, fcn's bf16 GEMMs).
#
# Usage: tools/bench.sh [--threads T (2)] [--iters N (3)] [--cases "fcn32s:500:1 ..."] [--resnet] [--no-torch]
#                       [--no-ort] [--no-bf16]
# A case is ARCH:SIZE:WIDTH_DIV[:BATCH]; ARCH is a VGG16 net (fcn32s, fcn16s,
# fcn8s), a ResNet-backbone one (fcn8s-resnet18, fcn16s-resnet50, ...) or
# torchvision's fcn_resnet50 / fcn_resnet101. The ResNet cases run against
# tools/torch_resnet_fcn.py (torchvision's model code; WIDTH_DIV 1 only).
# --resnet adds the ResNet cases of the issue's table to the cases.
# Environment: BUILD_DIR (build), TORCH_FCN (path of torch_fcn.py), ORT_FCN
# (path of ort_fcn.sh; its npm package is cached in FCN_BENCH_CACHE). The raw
# results (one JSON object per line) are written to $BUILD_DIR/bench.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."

threads=2
iters=3
cases="fcn32s:500:1 fcn16s:500:1 fcn8s:500:1 fcn8s:256:4"
resnet_cases="fcn8s-resnet18:500:1 fcn8s-resnet50:500:1 fcn_resnet50:500:1 fcn8s-resnet18:320:1:4 fcn8s-resnet50:320:1:4 fcn_resnet50:320:1:4"
torch=1
ort=1
bf16=1
while (($#)); do
  case "$1" in
    --threads) threads="$2"; shift 2 ;;
    --iters) iters="$2"; shift 2 ;;
    --cases) cases="$2"; shift 2 ;;
    --resnet) cases="$cases $resnet_cases"; shift ;;
    --no-torch) torch=0; shift ;;
    --no-ort) ort=0; shift ;;
    --no-bf16) bf16=0; shift ;;
    -h|--help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

source tools/deps.sh
fcn_install_deps

build_dir="${BUILD_DIR:-build}"
torch_fcn="${TORCH_FCN:-../shared/bench/torch_fcn.py}"
ort_fcn="${ORT_FCN:-$(dirname "$torch_fcn")/ort_fcn.sh}"
python=/usr/bin/python3
if ((torch)) && [[ ! -f "$torch_fcn" ]]; then
  echo "bench.sh: $torch_fcn not found (set TORCH_FCN or pass --no-torch)" >&2
  exit 2
fi

echo "building Release in $build_dir ..." >&2
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build_dir" -j 2 --target fcn sgemm_peak gemm_floor bf16_peak >/dev/null

results="$build_dir/bench.jsonl"
: >"$results"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
last_line() { tail -n 1 "$1"; }

echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | sed -n 1p), $threads threads" >&2
echo "sgemm peak ..." >&2
"$build_dir/sgemm_peak" --threads "$threads" >"$tmp/sgemm.txt"
cat "$tmp/sgemm.txt" >&2
cpu_peak=$(sed -n 's/.*(\([0-9.]*\) from CPU time).*/\1/p' "$tmp/sgemm.txt" | sort -g | tail -n 1)
echo "{\"tool\": \"sgemm_peak\", \"cpu_peak_gflops\": ${cpu_peak:-0}, \"result\": $(last_line "$tmp/sgemm.txt")}" >>"$results"
version=$("$build_dir/fcn" --version)
if ((bf16)) && [[ "$version" != *"bf16: oneDNN"* ]]; then
  echo "no bf16 columns: $(sed -n 's/^bf16: //p' <<<"$version")" >&2
  bf16=0
fi
if ((bf16)); then
  echo "bf16 peak ..." >&2
  OMP_NUM_THREADS="$threads" "$build_dir/bf16_peak" >"$tmp/bf16_peak.txt"
  cat "$tmp/bf16_peak.txt" >&2
  echo "{\"tool\": \"bf16_peak\", \"result\": $(last_line "$tmp/bf16_peak.txt")}" >>"$results"
fi

# {"arch", "backbone"?} of a case's ARCH (fcn8s-resnet18 -> fcn8s on resnet18)
model_keys() {
  case "$1" in
    *-resnet*) echo "\"arch\": \"${1%%-*}\", \"backbone\": \"${1#*-}\"" ;;
    *) echo "\"arch\": \"$1\"" ;;
  esac
}

# Runs $torch_script on the current case and appends {"tool": $1, ...} to the results.
run_torch() {
  echo "$(basename "$torch_script") $arch $size $div batch $batch ${PRECISION:-fp32} ..." >&2
  # torch_fcn.py times with time.perf_counter(); this wrapper also notes the
  # process CPU time at each of those calls, so the CPU seconds of the same
  # timed regions come out too (a busy machine stretches the wall times)
  $python - "$torch_script" "$arch" "$size" "$div" "$threads" "$iters" "$batch" >"$tmp/torch.txt" <<'PY'
import json, runpy, sys, time
marks, wall = [], time.perf_counter
def perf_counter():
    marks.append(time.process_time())
    return wall()
time.perf_counter = perf_counter
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
iters = int(sys.argv[5])
# the scripts' calls come in (t0, t1) pairs: the warm-up step, `iters` timed
# steps, then the inference runs
cpu = [b - a for a, b in zip(marks[0::2], marks[1::2])]
train, infer = sorted(cpu[1:iters + 1]), sorted(cpu[iters + 1:])
print(json.dumps({"train_step_cpu_s": train[len(train) // 2], "infer_cpu_s": infer[len(infer) // 2]}))
PY
  local line
  line=$(tail -n 2 "$tmp/torch.txt" | head -n 1)
  echo "  $line" >&2
  echo "{\"tool\": \"$1\", \"case\": \"$case\", \"line\": \"$line\", \"cpu\": $(last_line "$tmp/torch.txt")}" >>"$results"
}

for case in $cases; do
  IFS=: read -r arch size div batch <<<"$case"
  batch=${batch:-1}
  batch_args=()
  [[ "$batch" != 1 ]] && batch_args=(--batch "$batch")
  width=$($python -c "print(1.0 / $div)")
  torch_script="$torch_fcn"
  [[ "$arch" == *resnet* ]] && torch_script=tools/torch_resnet_fcn.py
  if [[ "$arch" == fcn8s && "$batch" == 1 ]]; then
    echo "GEMM floor $arch ${size}x$size width 1/$div ..." >&2
    "$build_dir/gemm_floor" --threads "$threads" --size "$size" --width-div "$div" >"$tmp/floor.txt"
    echo "{\"tool\": \"gemm_floor\", \"case\": \"$case\", \"result\": $(last_line "$tmp/floor.txt")}" >>"$results"
  fi
  echo "{\"model\": {$(model_keys "$arch"), \"width\": $width}}" >"$tmp/config.json"
  echo "fcn bench $arch ${size}x$size width 1/$div batch $batch ..." >&2
  "$build_dir/fcn" bench --config "$tmp/config.json" --size "$size" "$size" --iters "$iters" --threads "$threads" \
    ${batch_args[@]+"${batch_args[@]}"} --json >"$tmp/fcn.txt"
  echo "{\"tool\": \"fcn\", \"case\": \"$case\", \"result\": $(last_line "$tmp/fcn.txt")}" >>"$results"
  if ((bf16)); then
    echo "fcn bench $arch ${size}x$size width 1/$div batch $batch --precision bf16 ..." >&2
    "$build_dir/fcn" bench --config "$tmp/config.json" --size "$size" "$size" --iters "$iters" --threads "$threads" \
      ${batch_args[@]+"${batch_args[@]}"} --precision bf16 --json >"$tmp/fcn.txt"
    echo "{\"tool\": \"fcn_bf16\", \"case\": \"$case\", \"result\": $(last_line "$tmp/fcn.txt")}" >>"$results"
  fi
  if ((torch)) && [[ "$torch_script" == "$torch_fcn" && "$batch" != 1 ]]; then
    echo "  (torch_fcn.py runs batch 1 only: no PyTorch column for $case)" >&2
  elif ((torch)); then
    run_torch torch
    if ((bf16)) && [[ "$torch_script" == "$torch_fcn" ]]; then
      PRECISION=bf16 run_torch torch_bf16
    fi
  fi
  # ONNX Runtime: the VGG16 nets at batch 1 (what ort_fcn.sh exports); a
  # failure (no npm, no package) leaves the column empty, not the run
  if ((ort)) && [[ "$arch" != *resnet* && "$batch" == 1 && -f "$ort_fcn" ]]; then
    echo "ort_fcn.sh $arch $size $div ..." >&2
    if bash "$ort_fcn" "$arch" "$size" "$div" "$threads" "$((iters < 3 ? 3 : iters))" >"$tmp/ort.txt" 2>"$tmp/ort.err"; then
      line=$(last_line "$tmp/ort.txt")
      echo "  $line" >&2
      echo "{\"tool\": \"ort\", \"case\": \"$case\", \"line\": \"$line\"}" >>"$results"
    else
      echo "  ONNX Runtime did not run (column left empty): $(tail -n 1 "$tmp/ort.err")" >&2
    fi
  fi
done

$python - "$results" <<'EOF'
import json, re, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
sgemm = next(r for r in rows if r["tool"] == "sgemm_peak")
peak, cpu_peak = sgemm["result"]["sgemm_peak_gflops"], sgemm["cpu_peak_gflops"]
threads = sgemm["result"]["threads"]
floors = {r["case"]: r["result"] for r in rows if r["tool"] == "gemm_floor"}
fcn = {r["case"]: r["result"] for r in rows if r["tool"] == "fcn"}
def torch_rows(tool):
    out = {}
    for r in rows:
        if r["tool"] == tool:
            kv = dict(re.findall(r"(\S+)=(\S+)", r["line"]))
            out[r["case"]] = {"train": float(kv["train_step_s(median)"]), "infer": float(kv["infer_s"]),
                              "rss": float(kv["peakRSS_MB"]), "train_cpu": r["cpu"]["train_step_cpu_s"],
                              "infer_cpu": r["cpu"]["infer_cpu_s"]}
    return out
torch, torch_bf16 = torch_rows("torch"), torch_rows("torch_bf16")
fcn_bf16 = {r["case"]: r["result"] for r in rows if r["tool"] == "fcn_bf16"}
bf16_peak = next((r["result"] for r in rows if r["tool"] == "bf16_peak"), None)
ort = {}
for r in rows:
    if r["tool"] == "ort":
        kv = dict(re.findall(r"(\S+)=(\S+)", r["line"]))
        ort[r["case"]] = {"infer": float(kv["infer_s(median)"]), "rss": float(kv["peakRSS_MB"])}

def table(title, head, lines):
    print(f"\n{title}\n")
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for cells in lines: print("| " + " | ".join(cells) + " |")

def ratio(a, b): return f"{a / b:.2f}" if a and b else "-"
def num(x, fmt=".2f"): return format(x, fmt) if x else "-"
def name(case):
    arch, size, div, batch = (case.split(":") + ["1"])[:4]
    return arch + ("" if div == "1" else f" w1/{div}"), f"{size}x{size}" + ("" if batch == "1" else f" x{batch}")

print(f"sgemm peak {peak:.1f} GFLOP/s wall-clock, {cpu_peak:.1f} from CPU time "
      f"({sgemm['result']['kernel']}, {threads} threads)")
if fcn: print(f"fcn BLAS: {next(iter(fcn.values()))['kernel']}")
wall, cpu, rates = [], [], []
for case, f in fcn.items():
    t = torch.get(case, {})
    o = ort.get(case, {})
    floor = floors.get(case, {})
    wall.append([*name(case), num(f["train_step_s"]), num(t.get("train")), ratio(f["train_step_s"], t.get("train")),
                 num(f["infer_s"]), num(t.get("infer")), ratio(f["infer_s"], t.get("infer")),
                 num(o.get("infer")), ratio(f["infer_s"], o.get("infer")),
                 num(f["peak_rss_mb"], ".0f"), num(t.get("rss"), ".0f"), ratio(f["peak_rss_mb"], t.get("rss"))])
    cpu.append([*name(case), num(f["train_step_cpu_s"]), num(t.get("train_cpu")),
                ratio(f["train_step_cpu_s"], t.get("train_cpu")), num(f["infer_cpu_s"]), num(t.get("infer_cpu")),
                ratio(f["infer_cpu_s"], t.get("infer_cpu"))])
    cpu_rate = f["gflop"] / f["train_step_cpu_s"] * f["threads"]
    rates.append([*name(case), f"{f['gflop']:.0f}", f"{f['gflops']:.0f}", f"{100 * f['gflops'] / peak:.0f}%",
                  f"{cpu_rate:.0f}", f"{100 * cpu_rate / cpu_peak:.0f}%" if cpu_peak else "-",
                  num(floor.get("gemm_floor_s"))])
table("Wall clock (median seconds; ratio = fcn / PyTorch, fcn / ONNX Runtime)",
      ("model", "size", "train s", "torch", "ratio", "infer s", "torch", "ratio", "ORT infer s", "ratio",
       "peak RSS MiB", "torch", "ratio"),
      wall)
table("Process CPU time (median CPU-seconds, all threads; steadier on a busy machine)",
      ("model", "size", "train", "torch", "ratio", "infer", "torch", "ratio"), cpu)
table("Train-step FLOP rate (3x forward FLOPs; % of the sgemm peak measured above)",
      ("model", "size", "GFLOP", "GFLOP/s", "% peak", "GFLOP/s from CPU time", "% CPU peak", "GEMM floor s"), rates)
if fcn_bf16:
    conv_peak = bf16_peak["bf16_conv_gflops"] if bf16_peak else 0
    if bf16_peak:
        print(f"\nbf16 peak ({bf16_peak['kernel']}, {bf16_peak['threads']} threads): one 256->256 3x3 convolution "
              f"at 128x128 in oneDNN {conv_peak:.0f} GFLOP/s; fcn's bf16 GEMMs up to {bf16_peak['bf16_gemm_gflops']:.0f}")
    lines, rates = [], []
    for case, b in fcn_bf16.items():
        f, t, tb, o = fcn.get(case, {}), torch.get(case, {}), torch_bf16.get(case, {}), ort.get(case, {})
        lines.append([*name(case), num(f.get("train_step_s")), num(b["train_step_s"]),
                      ratio(b["train_step_s"], f.get("train_step_s")), num(tb.get("train")),
                      ratio(b["train_step_s"], tb.get("train")), num(f.get("infer_s")), num(b["infer_s"]),
                      ratio(b["infer_s"], f.get("infer_s")), num(tb.get("infer")), ratio(b["infer_s"], tb.get("infer")),
                      ratio(b["infer_s"], o.get("infer")), num(b["peak_rss_mb"], ".0f"),
                      ratio(b["peak_rss_mb"], t.get("rss"))])
        rate = b["gflop"] / b["train_step_s"]
        rates.append([*name(case), f"{b['gflop']:.0f}", f"{rate:.0f}", f"{b['gflop'] / 3 / b['infer_s']:.0f}",
                      f"{100 * rate / conv_peak:.0f}%" if conv_peak else "-"])
    table("bf16 (model.precision bf16; PyTorch under bf16 autocast; median seconds)",
          ("model", "size", "fcn fp32 train", "fcn bf16 train", "bf16/fp32", "torch bf16", "fcn/torch bf16",
           "fcn fp32 infer", "fcn bf16 infer", "bf16/fp32", "torch bf16", "fcn/torch bf16", "fcn bf16/ORT fp32",
           "bf16 peak RSS MiB", "/ torch fp32 RSS"), lines)
    table("bf16 effective rate (train GFLOP = 3x forward; % of the one-convolution bf16 peak above)",
          ("model", "size", "GFLOP", "train GFLOP/s", "infer GFLOP/s", "% conv peak"), rates)
EOF
