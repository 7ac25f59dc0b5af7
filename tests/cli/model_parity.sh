#!/usr/bin/env bash
# Whole-model parity: the zoo's FCN-32s/16s/8s/8s-atonce (width 1/16, 5
# classes, odd input sizes) vs an independent Caffe-faithful PyTorch
# reference loaded with the same weights: scores, loss and param gradients.
set -euo pipefail
exec timeout 120 /usr/bin/python3 tools/check_model_parity.py "$1" --width 0.0625 --classes 5 --sizes 37x45 51x33
