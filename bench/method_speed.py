#!/usr/bin/env python
"""Seconds per epoch and peak RSS of the deep methods on real data, 1 libtorch thread.

  .venv/bin/python bench/method_speed.py [--methods contrastive-sc,cicl] [--datasets 10x_pbmc_top2000,sim100000]
      [--merge] [--out bench/results/speed_methods.json]

Each run is its own `scdeep run` process under /usr/bin/time (peak RSS); seconds per
epoch are the median of history.json. Few epochs suffice for the per-epoch time, so
runs use --epochs as listed in EPOCHS (the accuracy bench uses the methods' defaults).
A dataset named `sim<N>` is simulated first (`scdeep simulate`, N cells, 2000 genes, 5
groups). `--merge` keeps the runs already in the output file for every (method or label,
dataset) this run does not redo.
`--set KEY=VALUE` passes a config overlay to every run and `--label NAME` files the runs
under that name (one method), e.g. `--methods mask-sc --set params.target=\"seqfeat\"
--label mask-sc_seqfeat --merge`.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from accuracy import name  # noqa: E402
from speed import BIN, DATA, run_scdeep  # noqa: E402

EPOCHS = {"contrastive-sc": 30, "cicl": 5, "scmae": 10, "scrae": 3, "maskclass": 3, "mask-sc": 1}
DATASETS = ["10x_pbmc_top2000", "pollen_top1000hvg"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", default="contrastive-sc,cicl")
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--merge", action="store_true")
    ap.add_argument("--set", action="append", default=[], help="config overlay passed to every run")
    ap.add_argument("--label", help="file the runs under this name (one method only)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "speed_methods.json"))
    a = ap.parse_args()
    methods = a.methods.split(",")
    if a.label and len(methods) > 1:
        ap.error("--label needs a single method")
    names = [a.label] if a.label else methods
    runs = []
    if a.merge and os.path.exists(a.out):
        redo = {(n, d) for n in names for d in a.datasets.split(",")}
        runs = [r for r in json.load(open(a.out))["runs"] if (name(r), r["dataset"]) not in redo]
    with tempfile.TemporaryDirectory() as tmp:
        for d in a.datasets.split(","):
            if d.startswith("sim"):
                h5 = os.path.join(tmp, f"{d}.h5ad")
                subprocess.run([BIN, "simulate", "-q", "--out", h5, "--n-cells", d[3:], "--n-genes", "2000", "--seed", "1"], check=True)
                # the simulator's labels are obs['group']; the runs read obs['cell_type']
                subprocess.run([sys.executable, "-c", "import anndata as ad, sys; a = ad.read_h5ad(sys.argv[1]); "
                                "a.obs['cell_type'] = a.obs['group']; a.write_h5ad(sys.argv[1])", h5], check=True)
            else:
                h5 = os.path.join(DATA, d, f"{d}.h5ad")
            for m in methods:
                r = run_scdeep(h5, 1, EPOCHS.get(m, 10), method=m, sets=a.set)
                r["dataset"] = d
                if a.set:
                    r["set"] = a.set
                if a.label:
                    r["label"] = a.label
                print(json.dumps(r), file=sys.stderr)
                runs.append(r)
    result = {"benchmark": "method_speed", "device": "cpu", "threads": 1, "machine": "2-core VM", "runs": runs}
    with open(a.out, "w") as f:
        json.dump(result, f, indent=1)
    print("wrote", a.out, file=sys.stderr)


if __name__ == "__main__":
    main()
