#!/usr/bin/env bash
# The committed PyTorch/numpy fixtures are what the scripts in tools/ make:
# each tools/fixtures_*.py --check regenerates its files in a temporary folder
# and compares them with tests/fixtures/ (tools/fixture_output.py).
# Skips (exit 77) where python3-torch, numpy, scipy or PIL is missing.
set -uo pipefail
if ! /usr/bin/python3 -c "import torch, numpy, scipy.io, PIL" 2>/dev/null; then
  echo "SKIP: /usr/bin/python3 lacks torch, numpy, scipy or PIL (Debian: python3-torch python3-numpy python3-scipy python3-pil)"
  exit 77
fi
failed=0
for script in tools/fixtures_*.py; do
  if ! output=$(/usr/bin/python3 "$script" --check 2>&1); then
    failed=1
    echo "FAIL: $script --check"
  fi
  grep -E "FAIL|--check:|Error" <<<"$output"
done
exit $failed
