"""Fixtures for the core tests (safetensors dtypes). Run: /usr/bin/python3 tools/fixtures_core.py [--check]"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_output  # noqa: E402
import safetensors_np  # noqa: E402

OUT = fixture_output.directory("tests/fixtures")


def main():
    os.makedirs(OUT, exist_ok=True)
    safetensors_np.save(os.path.join(OUT, "safetensors_dtypes.safetensors"), {
        "f64": (np.arange(6, dtype=np.float64) * 0.25 - 1).reshape(2, 3),
        "i64": np.array([-2, 0, 7, 255], dtype=np.int64),
        "u8": np.array([0, 1, 21, 255], dtype=np.uint8).reshape(1, 1, 2, 2),
    }, {"note": "dtypes"})


if __name__ == "__main__":
    main()
