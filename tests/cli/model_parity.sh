#!/usr/bin/env bash
# Whole-model parity: the zoo's FCN-32s/16s/8s/8s-atonce vs an independent
# Caffe-faithful PyTorch reference loaded with the same weights, run in
# float64: scores, loss, the gradient of every param and of every pool output
# (grad/pool1..pool5), each within 3x PyTorch float32's own error, on both
# convolution paths (FCN_WINOGRAD=0 and the default).
#   width 1/16, every net: 338x500 (a VOC photo: ceil mode's partial windows at
#   pool2/pool3's right edge and pool4's bottom row, next to the exact
#   max-pooling ties of conv1_1's 100-pixel padding), 58x90 (no partial
#   window anywhere), 37x45 (tiny, odd);
#   width 1/8, FCN-8s at 338x500: the 64-channel layers take the Winograd path;
#   there also `fcn forward` without --backward (F(4x4, 3x3) forward, as fcn
#   predict runs it): its scores within 5x PyTorch float32's own error (measured 2-4x).
set -uo pipefail
status=0
timeout 150 /usr/bin/python3 tools/check_model_parity.py "$1" --width 0.0625 --classes 5 \
  --sizes 338x500 58x90 37x45 || status=1
timeout 60 /usr/bin/python3 tools/check_model_parity.py "$1" --width 0.125 --classes 5 \
  --sizes 338x500 --variants fcn8s --paths im2col winograd inference || status=1
exit $status
