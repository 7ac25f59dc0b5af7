#!/usr/bin/env bash
# Random FCN-shaped graphs: fcn forward --backward --dump vs PyTorch, blob by blob.
set -euo pipefail
exec /usr/bin/python3 tools/check_graph_parity.py "$1" --count 6 --seed 11
