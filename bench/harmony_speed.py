#!/usr/bin/env python
"""Harmony's cost and agreement: scdeep's (core/examples/harmony_timing) against
harmonypy (pinned in scripts/constraints.txt), side by side on the same input, on
--threads threads each: blobs of cell types in shifted batches, 50 dimensions, at the
sizes given (default 10k and 100k cells, 4 batches). Both with their defaults.

  .venv/bin/python bench/harmony_speed.py [--cells 10000,100000] [--threads 2]

Writes bench/results/harmony_speed.json: per size, seconds of each, harmonypy's and our
rounds and clusters, and the lowest per-dimension correlation between the two
corrections (and of the input with harmonypy's, for scale)."""
import argparse
import datetime
import json
import os
import platform
import subprocess
import tempfile
import time

import numpy as np
import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "target", "release", "examples", "harmony_timing")


def blobs(n, dims=50, types=8, batches=4, seed=0):
    rng = np.random.default_rng(seed)
    centres, shifts = rng.normal(0, 6, size=(types, dims)), rng.normal(0, 2, size=(batches, dims))
    t, b = rng.integers(0, types, n), rng.integers(0, batches, n)
    return (centres[t] + shifts[b] + rng.normal(0, 1, size=(n, dims))).astype(np.float32), b


def mincorr(a, z):
    return float(min(np.corrcoef(a[:, j], z[:, j])[0, 1] for j in range(a.shape[1])))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", default="10000,100000")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "harmony_speed.json"))
    a = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "scdeep-core", "--example", "harmony_timing"], cwd=ROOT, check=True)
    import harmonypy
    rows = []
    for n in [int(c) for c in a.cells.split(",")]:
        x, b = blobs(n)
        with tempfile.TemporaryDirectory() as d:
            np.save(os.path.join(d, "x.npy"), x)
            with open(os.path.join(d, "b.txt"), "w") as f:
                f.write("\n".join(map(str, b)))
            out = os.path.join(d, "ours.npy")
            t = time.time()
            line = subprocess.run([EXAMPLE, os.path.join(d, "x.npy"), os.path.join(d, "b.txt"), str(a.threads), out],
                                  check=True, capture_output=True, text=True).stdout
            ours_wall = time.time() - t
            ours = json.loads(line)
            z_ours = np.load(out)
        t = time.time()
        ho = harmonypy.run_harmony(x, pd.DataFrame({"batch": pd.Categorical(b.astype(str))}), "batch", random_state=0,
                                   verbose=False, ncores=a.threads)
        hp_s = time.time() - t
        rows.append({"cells": n, "dims": x.shape[1], "batches": 4, "scdeep_s": ours["seconds"], "scdeep_wall_s": round(ours_wall, 3),
                     "scdeep_rounds": ours["rounds"], "scdeep_clusters": ours["clusters"],
                     "harmonypy_s": round(hp_s, 3), "harmonypy_rounds": len(ho.objective_harmony) - 1,
                     "harmonypy_clusters": int(ho.K), "min_corr_with_harmonypy": round(mincorr(z_ours, ho.Z_corr), 4),
                     "min_corr_input_with_harmonypy": round(mincorr(x, ho.Z_corr), 4)})
        print(json.dumps(rows[-1]))
    json.dump({"benchmark": "harmony_speed", "date": datetime.date.today().isoformat(), "threads": a.threads,
               "machine": f"{platform.machine()}, {os.cpu_count()} cores", "rows": rows}, open(a.out, "w"), indent=1)


if __name__ == "__main__":
    main()
