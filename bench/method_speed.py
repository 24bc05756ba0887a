#!/usr/bin/env python
"""Seconds per epoch and peak RSS of the deep methods on real data, 1 libtorch thread.

  .venv/bin/python bench/method_speed.py [--methods contrastive-sc,cicl] [--out bench/results/speed_methods.json]

Each run is its own `scdeep run` process under /usr/bin/time (peak RSS); seconds per
epoch are the median of history.json. Few epochs suffice for the per-epoch time, so
runs use --epochs as listed in EPOCHS (the accuracy bench uses the methods' defaults).
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from speed import DATA, run_scdeep  # noqa: E402

EPOCHS = {"contrastive-sc": 30, "cicl": 5, "scmae": 10}
DATASETS = ["10x_pbmc_top2000", "pollen_top1000hvg"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", default="contrastive-sc,cicl")
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "speed_methods.json"))
    a = ap.parse_args()
    runs = []
    for m in a.methods.split(","):
        for d in a.datasets.split(","):
            r = run_scdeep(os.path.join(DATA, d, f"{d}.h5ad"), 1, EPOCHS.get(m, 10), method=m)
            r["dataset"] = d
            print(json.dumps(r), file=sys.stderr)
            runs.append(r)
    result = {"benchmark": "method_speed", "device": "cpu", "threads": 1, "machine": "2-core VM", "runs": runs}
    with open(a.out, "w") as f:
        json.dump(result, f, indent=1)
    print("wrote", a.out, file=sys.stderr)


if __name__ == "__main__":
    main()
