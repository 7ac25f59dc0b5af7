#!/usr/bin/python3
"""The dependency arrow between fcn's source folders, checked.

Each folder of src/ (mirrored by include/fcn/) is one layer of the
architecture; a file may include its own folder's headers and those of the
folders below it, never one above it or a sibling on its level:

    cli -> api -> train -> eval, explain -> model -> graph -> layers -> cpu -> core
                                            model -> data -> io -> core

Also checked: every library .cpp has a header of its name (cli holds the
commands only; api's one file, fcn.cpp, is the public include/fcn/fcn.hpp). Prints the #include graph by folder (edges with counts).
Usage: tools/check_layering.py [REPO]   (exit 1 on a violation)
"""
import collections
import os
import re
import sys

# rank of each folder: an include must point to a lower rank
RANKS = {
    "core": 0,
    "cpu": 1, "io": 1,
    "data": 2, "layers": 2,
    "graph": 3,
    "model": 4,
    "eval": 5, "explain": 5,
    "train": 6,
    "api": 7,
    "cli": 8,
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"(?:fcn/)?([a-z_]+)/[^"]+"', re.M)
# the public API's header, the api folder's (include/fcn/fcn.hpp)
PUBLIC_HEADER = re.compile(r'^\s*#\s*include\s+"fcn/fcn\.hpp"', re.M)


def source_files(repo):
    for top in ("src", os.path.join("include", "fcn")):
        root = os.path.join(repo, top)
        for folder in sorted(os.listdir(root)):
            path = os.path.join(root, folder)
            if not os.path.isdir(path):
                continue
            for name in sorted(os.listdir(path)):
                if name.endswith((".cpp", ".hpp")):
                    yield folder, os.path.join(path, name)


def main():
    repo = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    problems = []
    edges = collections.Counter()
    for folder, path in source_files(repo):
        relative = os.path.relpath(path, repo)
        if folder not in RANKS:
            problems.append(f"{relative}: folder '{folder}' has no place in the arrow (tools/check_layering.py)")
            continue
        with open(path, encoding="utf-8") as f:
            text = f.read()
        targets = ["api"] * len(PUBLIC_HEADER.findall(text)) + INCLUDE.findall(PUBLIC_HEADER.sub("", text))
        for target in targets:
            if target == folder:
                continue
            if target not in RANKS:
                problems.append(f"{relative}: includes from unknown folder '{target}'")
                continue
            edges[(folder, target)] += 1
            if RANKS[target] >= RANKS[folder]:
                kind = "a sibling" if RANKS[target] == RANKS[folder] else "up"
                problems.append(f"{relative}: {folder} -> {target} points {kind}")
    for folder in RANKS:
        if folder == "cli":
            continue
        src = os.path.join(repo, "src", folder)
        for name in sorted(os.listdir(src)) if os.path.isdir(src) else []:
            if folder == "api" and name == "fcn.cpp":
                continue
            if name.endswith(".cpp"):
                header = os.path.join(repo, "include", "fcn", folder, name[:-4] + ".hpp")
                if not os.path.exists(header):
                    problems.append(f"src/{folder}/{name}: no header include/fcn/{folder}/{name[:-4]}.hpp")
    print("#include graph by folder (count of includes):")
    for folder in sorted(RANKS, key=lambda f: (-RANKS[f], f)):
        targets = [f"{t} ({n})" for (s, t), n in sorted(edges.items(), key=lambda e: (RANKS[e[0][1]], e[0][1])) if s == folder]
        print(f"  {folder:8s} -> {', '.join(reversed(targets)) or '(nothing)'}")
    if not edges:
        problems.append("no includes found: the scan is broken")
    for problem in problems:
        print("FAIL: " + problem, file=sys.stderr)
    print(f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
