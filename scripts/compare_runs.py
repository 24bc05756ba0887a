"""Compare two `scdeep run` output folders: the same files, byte for byte, except run
times (timings_s, history's seconds, the same in the .h5ad's uns). Used to show that a
refactoring changed no result: run the same command before and after, then
    .venv/bin/python scripts/compare_runs.py BEFORE_DIR AFTER_DIR
Exit status 1 when anything else differs."""
import filecmp
import json
import os
import sys

import h5py
import numpy as np

TIMES = ("timings_s", "seconds", "wall_s")


def strip(v):
    if isinstance(v, dict):
        return {k: strip(x) for k, x in v.items() if not any(k.startswith(t) for t in TIMES)}
    if isinstance(v, list):
        return [strip(x) for x in v]
    return v


def h5_diffs(pa, pb):
    out = []
    with h5py.File(pa) as a, h5py.File(pb) as b:
        def visit(name, obj):
            if not isinstance(obj, h5py.Dataset) or any(t in name for t in TIMES):
                return
            if name not in b:
                out.append(name)
                return
            x, y = obj[()], b[name][()]
            if isinstance(x, bytes) and x[:1] == b"{":
                if strip(json.loads(x)) != strip(json.loads(y)):
                    out.append(name)
                return
            x, y = np.asarray(x), np.asarray(y)
            same = np.array_equal(x, y, equal_nan=True) if x.dtype.kind == "f" else np.array_equal(x, y)
            if not same:
                out.append(name)
        a.visititems(visit)
    return out


def main(a, b):
    bad = []
    fa, fb = sorted(os.listdir(a)), sorted(os.listdir(b))
    if fa != fb:
        bad.append(f"files: {fa} vs {fb}")
    for f in sorted(set(fa) & set(fb)):
        pa, pb = os.path.join(a, f), os.path.join(b, f)
        if os.path.isdir(pa):
            d = filecmp.dircmp(pa, pb)
            verdict = "identical" if not (d.diff_files or d.left_only or d.right_only) else "DIFFERENT"
        elif filecmp.cmp(pa, pb, shallow=False):
            verdict = "identical"
        elif f.endswith(".json"):
            verdict = "identical but for run times" if strip(json.load(open(pa))) == strip(json.load(open(pb))) else "DIFFERENT"
        elif f.endswith(".h5ad"):
            d = h5_diffs(pa, pb)
            verdict = "identical but for run times" if not d else "DIFFERENT: " + ", ".join(d[:5])
        else:
            verdict = "DIFFERENT"
        print(f"{f}: {verdict}")
        if verdict.startswith("DIFFERENT"):
            bad.append(f)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
