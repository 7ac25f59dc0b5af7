#!/usr/bin/env bash
# fcn report in a real browser: a short real run (make-synthetic + train with
# two validations), fcn report, then headless Chromium renders the page at
# desktop and phone width (the screenshots are not blank), its DOM has one
# table#per-class row per class and one .val-point per validation record of
# metrics.jsonl, and its network log shows no http(s)/ws request. Exits 77
# (skipped) without chromium.
# Usage (from the repo root): bash tests/cli/report_chromium.sh path/to/fcn
set -euo pipefail
fcn=$(realpath "$1")
command -v chromium >/dev/null || { echo "SKIP: chromium is not installed (tools/deps.sh)"; exit 77; }
python=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

fail() { echo "FAIL: $*" >&2; exit 1; }
# browse OUT-PREFIX PAGE ARGS...: headless Chromium on PAGE, own profile, every host unresolvable
browse() {
  local prefix=$1 page=$2
  shift 2
  timeout 120 chromium --headless --no-sandbox --disable-gpu --no-first-run --disable-extensions \
    --user-data-dir="$tmp/profile-$prefix" --host-resolver-rules="MAP * ~NOTFOUND" \
    --log-net-log="$tmp/$prefix.netlog.json" "$@" "file://$tmp/$page" 2>"$tmp/$prefix.chromium.log"
}

echo "== a short real run"
"$fcn" make-synthetic --out data --train 12 --val 4 --size 64 64 >/dev/null
cat > tiny.json <<'JSON'
{"model": {"arch": "fcn8s", "num_classes": 5, "width": 0.125, "normalize": "valid", "ignore_label": 255},
 "data": {"format": "voc", "root": "data", "input_scale": 0.017,
          "class_names": ["background", "disk", "square", "triangle", "ring"], "seed": 3},
 "solver": {"base_lr": 0.01, "momentum": 0.9, "max_iter": 20, "snapshot_every": 0, "test_every": 10,
            "display_every": 5, "threads": 1, "seed": 7}}
JSON
"$fcn" train --config tiny.json --out run 2>train.log || { cat train.log; fail "train"; }

echo "== fcn report"
[[ $("$fcn" report run) == "run/report.html" ]] || fail "fcn report did not print the page's path"
[[ -s run/report.html ]] || fail "no run/report.html"
echo "page: $(( $(stat -c %s run/report.html) / 1024 )) KB"
validations=$(grep -c '"val"' run/metrics.jsonl)
(( validations >= 2 )) || fail "expected 2+ validations in metrics.jsonl, got $validations"

echo "== desktop and phone screenshots"
browse desktop run/report.html --screenshot="$tmp/desktop.png" --window-size=1280,2400 >/dev/null || fail "chromium (desktop)"
browse phone run/report.html --screenshot="$tmp/phone.png" --window-size=390,2000 >/dev/null || fail "chromium (phone)"
$python - desktop.png phone.png <<'PY'
import sys
from PIL import Image
for path in sys.argv[1:]:
    image = Image.open(path).convert("RGB")
    pixels = list(image.getdata())
    colours = len(set(pixels))
    ink = sum(1 for p in pixels if min(p) < 200) / len(pixels)
    print(f"{path}: {image.size[0]}x{image.size[1]}, {colours} colours, {ink:.1%} ink")
    if colours < 50 or ink < 0.02:
        sys.exit(f"FAIL: {path} looks blank")
PY

# check_dom RUN: the rendered DOM of RUN/report.html has one .val-point per validation record of
# RUN/metrics.jsonl, one table#per-class body row per class of the last one, and #confusion when
# that record has a confusion matrix
check_dom() {
  browse "dom-$1" "$1/report.html" --dump-dom >"$1.dom.html" || fail "chromium (dump-dom of $1)"
  $python - "$1.dom.html" "$1/metrics.jsonl" <<'PY'
import json, sys
from html.parser import HTMLParser

class Counter(HTMLParser):
    def __init__(self):
        super().__init__()
        self.in_per_class = self.in_body = False
        self.rows = self.points = 0
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and a.get("id") == "per-class":
            self.in_per_class = True
        if self.in_per_class and tag == "tbody":
            self.in_body = True
        if self.in_body and tag == "tr":
            self.rows += 1
        if "val-point" in (a.get("class") or "").split():
            self.points += 1
    def handle_endtag(self, tag):
        if tag == "table":
            self.in_per_class = self.in_body = False

dom = open(sys.argv[1]).read()
vals = [r["val"] for r in map(json.loads, open(sys.argv[2])) if "val" in r]
classes, confusion = len(vals[-1].get("per_class", [])), "confusion" in vals[-1]
c = Counter()
c.feed(dom)
drawn = 'id="confusion"' in dom
print(f"{sys.argv[1]}: per-class rows {c.rows} (classes {classes}), val-points {c.points} (validations {len(vals)}), "
      f"confusion matrix {drawn} ({confusion})")
if classes == 0 or c.rows != classes or c.points != len(vals):
    sys.exit("FAIL: the rendered page does not match metrics.jsonl")
if confusion != drawn:
    sys.exit(f"FAIL: the rendered page {'lacks' if confusion else 'has'} a confusion matrix")
PY
}

echo "== the rendered DOM"
check_dom run
grep -q '"per_class"' run/metrics.jsonl || fail "fcn train logged no per-class scores"
grep -q '"confusion"' run/metrics.jsonl || fail "fcn train logged no confusion matrix"

echo "== no network"
# page_requests NETLOG...: the http(s)/ws requests made for the file:// page. Chromium's own
# background traffic (component updates, accounts) is not the page's: it has no file:// frame.
page_requests() {
  $python - "$@" <<'PY'
import json, sys
for path in sys.argv[1:]:
    text = open(path).read().rstrip().rstrip(",")
    log = json.loads(text if text.endswith("}") else text + "]}")  # the log of a killed browser is unterminated
    names = {number: name for name, number in log["constants"]["logEventTypes"].items()}
    for event in log["events"]:
        params = event.get("params", {})
        url = params.get("url", "")
        if names.get(event["type"]) != "URL_REQUEST_START_JOB" or not url.startswith(("http:", "https:", "ws:", "wss:")):
            continue
        if "file://" in params.get("network_isolation_key", "") or params.get("initiator") not in (None, "not an origin"):
            print(f"{path}: {url}")
PY
}
# the check itself, on a page that does fetch
echo '<html><body><img src="http://canary.invalid/x.png"></body></html>' > canary.html
browse canary canary.html --dump-dom >/dev/null || fail "chromium (canary)"
grep -q 'http://canary.invalid/x.png' <<<"$(page_requests canary.netlog.json)" ||
  fail "the net-log check does not see a page's request"
found=$(page_requests desktop.netlog.json phone.netlog.json dom-*.netlog.json)
[[ -z $found ]] || fail "the report made requests: $found"
echo "no http(s)/ws requests from the page"
echo "all report checks passed"
