#!/usr/bin/env bash
# fcn inspect-data on a fresh synthetic dataset and broken copies of it: a
# clean set passes with a row per class (and --json counts equal to numpy's
# count of the label PNGs); a label value outside the classes, a label of the
# wrong size, a missing image and a missing split list fail (exit 1) naming
# the value and the ids; an id in both train and val is a warning (exit 0).
# Usage: tests/cli/inspect_data.sh path/to/fcn
set -euo pipefail
fcn=$1
fail() { echo "FAIL: $*" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$fcn" make-synthetic --out "$work/data" --train 12 --val 4 --size 40 48 --classes 5 --seed 4 >/dev/null
cat >"$work/cfg.json" <<EOF
{"model": {"arch": "fcn32s", "num_classes": 5, "width": 0.0625},
 "data": {"format": "voc", "root": "$work/data", "class_names": ["background", "disk", "square", "triangle", "ring"]}}
EOF

# inspect ROOT [ARGS...]: inspect-data on a copy of the dataset at ROOT; sets rc, out.txt, err.txt
inspect() {
  local root=$1
  shift
  rc=0
  "$fcn" inspect-data --config "$work/cfg.json" --set "data.root=$root" --threads 2 "$@" \
    >"$work/out.txt" 2>"$work/err.txt" || rc=$?
}
expect() {  # expect RC PATTERN...: exit status and extended regexes that out.txt must match
  local want=$1
  shift
  ((rc == want)) || fail "exit $rc, expected $want: $(cat "$work/out.txt" "$work/err.txt")"
  for pattern in "$@"; do
    grep -Eq -- "$pattern" "$work/out.txt" || fail "no line matches /$pattern/: $(cat "$work/out.txt")"
  done
}
copy() { rm -rf "$work/$1" && cp -r "$work/data" "$work/$1"; }

# 1. Clean: exit 0, sizes, a row per class, progress on stderr, JSON = numpy.
inspect "$work/data" --json "$work/report.json"
expect 0 "^train \(voc .* train\): 12 images$" "^val \(voc .* val\): 4 images$" \
  "image size \(H x W\): min 40 x 48, median 40 x 48, max 40 x 48" \
  "^ +0  background +[0-9]+ +[0-9.]+% +12 " "^ +1  disk " "^ +2  square " "^ +3  triangle " "^ +4  ring " \
  "^verdict: ready to train"
grep -q "inspect train 12/12" "$work/err.txt" || fail "no progress line: $(cat "$work/err.txt")"
/usr/bin/python3 - "$work" <<'PY'
import json, os, sys
import numpy as np
from PIL import Image
work = sys.argv[1]
report = json.load(open(os.path.join(work, "report.json")))
assert report["ok"] is True and report["problems"] == [], report
for split in ("train", "val"):
    ids = open(os.path.join(work, "data/ImageSets/Segmentation", split + ".txt")).read().split()
    pixels, images = np.zeros(5, dtype=np.int64), np.zeros(5, dtype=np.int64)
    for i in ids:
        label = np.array(Image.open(os.path.join(work, "data/SegmentationClass", i + ".png")))
        counts = np.bincount(label.ravel(), minlength=256)
        pixels += counts[:5]
        images += counts[:5] > 0
    got = report[split]["per_class"]
    assert [c["pixels"] for c in got] == pixels.tolist(), (split, got, pixels)
    assert [c["images"] for c in got] == images.tolist(), (split, got, images)
    assert report[split]["num_images"] == len(ids), report[split]
assert len(report["class_weights"]["weights"]) == 5, report
PY

# 2. A label value 7 in a 5-class set.
copy value
/usr/bin/python3 - "$work/value/SegmentationClass/train_00003.png" <<'PY'
import sys
import numpy as np
from PIL import Image
image = Image.open(sys.argv[1])
label = np.array(image)
label[:3, :4] = 7
out = Image.fromarray(label, mode="P")
out.putpalette(image.getpalette())
out.save(sys.argv[1])
PY
inspect "$work/value"
expect 1 "^problem: train: label value 7 \(12 pixels, e\.g\. train_00003\)" "^  value 7: 12 pixels, e\.g\. train_00003$" \
  "^verdict: 1 problems would stop training"

# 3. A label of the wrong size.
copy size
/usr/bin/python3 - "$work/size/SegmentationClass/train_00005.png" <<'PY'
import sys
from PIL import Image
image = Image.open(sys.argv[1])
image.crop((0, 0, 48, 30)).save(sys.argv[1])
PY
inspect "$work/size"
expect 1 "^problem: train: 1 labels differ in size from their image \(train_00005\)" \
  "train_00005: image 40 x 48, label 30 x 48"

# 4. A missing image and a missing split list.
copy missing
rm "$work/missing/JPEGImages/val_00002.jpg"
inspect "$work/missing" --set data.train_split=nosuch
expect 1 "^problem: train: .*nosuch\.txt: cannot open split list" \
  "^problem: val: 1 of 4 entries have missing or unreadable files \(first: val_00002: image .*val_00002\.jpg: no such file\)" \
  "^verdict: 2 problems"

# 5. An id in both train and val: a warning, exit 0.
copy duplicate
echo train_00001 >>"$work/duplicate/ImageSets/Segmentation/val.txt"
inspect "$work/duplicate" --json -
expect 0 "^warning: 1 ids are in both train and val \(1 of them the same image file; train_00001\)" \
  "^verdict: ready to train \(1 warnings\)"
tail -1 "$work/out.txt" | /usr/bin/python3 -c "
import json, sys
r = json.load(sys.stdin)
assert r['duplicates'] == [{'id': 'train_00001', 'same_file': True}], r['duplicates']
assert r['val']['num_images'] == 5, r['val']"
echo "inspect-data: ok"
