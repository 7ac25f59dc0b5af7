"""Where a tools/fixtures_*.py script writes, and its --check mode.

    OUT = fixture_output.directory("tests/fixtures")

Without arguments the script writes into the committed folder. With --check
it writes into a temporary folder instead and, when it finishes, compares
every file it wrote with the committed one: safetensors files tensor by
tensor (names, dtypes, shapes exact; floating values within rtol 1e-5 and
atol 1e-6, since PyTorch's float rounding may differ by CPU), JSON files value
by value with the same tolerance, MAT files byte for byte after their dated
header, anything else byte for byte. It prints one
line per difference and exits 1 if there is any, 0 otherwise.
"""
import atexit
import json
import math
import os
import shutil
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_np  # noqa: E402

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
RTOL, ATOL = 1e-5, 1e-6


def _close(a, b):
    return math.isclose(a, b, rel_tol=RTOL, abs_tol=ATOL) or (math.isnan(a) and math.isnan(b))


def _json_diff(a, b, path):
    if isinstance(a, bool) or isinstance(b, bool) or isinstance(a, str) or a is None:
        return [] if a == b else [f"{path}: {a!r} != {b!r}"]
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return [] if _close(float(a), float(b)) else [f"{path}: {a!r} != {b!r}"]
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{path}: keys differ ({sorted(set(a) ^ set(b))[:5]})"]
        return [d for k in a for d in _json_diff(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: length {len(a)} != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _json_diff(x, y, f"{path}[{i}]")][:5]
    return [f"{path}: {type(a).__name__} != {type(b).__name__}"]


def _safetensors_diff(new_path, old_path):
    new_tensors, new_meta = safetensors_np.load(new_path)
    old_tensors, old_meta = safetensors_np.load(old_path)
    diffs = []
    if new_meta != old_meta:
        diffs.append("metadata differs")
    if new_tensors.keys() != old_tensors.keys():
        return diffs + [f"tensor names differ: {sorted(set(new_tensors) ^ set(old_tensors))[:5]}"]
    for name, new in new_tensors.items():
        old = old_tensors[name]
        if new.dtype != old.dtype or new.shape != old.shape:
            diffs.append(f"{name}: {new.dtype}{list(new.shape)} != {old.dtype}{list(old.shape)}")
        elif np.issubdtype(new.dtype, np.floating):
            if not np.allclose(new, old, rtol=RTOL, atol=ATOL, equal_nan=True):
                worst = float(np.max(np.abs(new.astype(np.float64) - old)))
                diffs.append(f"{name}: values differ (max abs {worst:.3g})")
        elif not np.array_equal(new, old):
            diffs.append(f"{name}: values differ")
    return diffs


def _file_diff(new_path, old_path):
    if not os.path.exists(old_path):
        return ["not committed"]
    if new_path.endswith(".safetensors"):
        return _safetensors_diff(new_path, old_path)
    if new_path.endswith(".json"):
        with open(new_path) as f_new, open(old_path) as f_old:
            return _json_diff(json.load(f_new), json.load(f_old), "$")
    with open(new_path, "rb") as f_new, open(old_path, "rb") as f_old:
        new, old = f_new.read(), f_old.read()
    if new_path.endswith(".mat"):
        # MAT v5: the first 116 bytes are descriptive text with the creation time
        new, old = new[116:], old[116:]
    return [] if new == old else ["bytes differ"]


_script_failed = False


def _note_failure(kind, value, traceback):
    global _script_failed
    _script_failed = True
    sys.__excepthook__(kind, value, traceback)


def _compare(scratch, committed):
    if _script_failed:
        shutil.rmtree(os.path.dirname(scratch), ignore_errors=True)
        print(f"FAIL {os.path.basename(sys.argv[0])} --check: the script stopped with an error")
        sys.stdout.flush()
        os._exit(1)
    checked, failures = 0, 0
    for root, _, files in os.walk(scratch):
        for name in sorted(files):
            new_path = os.path.join(root, name)
            relative = os.path.relpath(new_path, scratch)
            old_path = os.path.join(committed, relative)
            shown = os.path.relpath(old_path, REPO)
            checked += 1
            for diff in _file_diff(new_path, old_path):
                failures += 1
                print(f"FAIL {shown}: {diff}")
    shutil.rmtree(os.path.dirname(scratch), ignore_errors=True)
    script = os.path.basename(sys.argv[0])
    if checked == 0:
        print(f"FAIL {script} --check: the script wrote no files")
        os._exit(1)
    print(f"{script} --check: {checked} files regenerated, {failures} differences from the committed ones")
    sys.stdout.flush()
    os._exit(1 if failures else 0)


def directory(committed):
    """The folder to write into: `committed` (a path, absolute or relative to
    the repository), or a temporary one under --check."""
    committed = os.path.normpath(os.path.join(REPO, committed))
    args = [a for a in sys.argv[1:]]
    if args not in ([], ["--check"]):
        sys.exit(f"usage: {os.path.basename(sys.argv[0])} [--check]")
    if not args:
        return committed
    scratch = os.path.join(tempfile.mkdtemp(prefix="fcn_fixtures_"), os.path.basename(committed))
    os.makedirs(scratch)
    sys.excepthook = _note_failure
    atexit.register(_compare, scratch, committed)
    return scratch
