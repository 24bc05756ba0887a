#!/usr/bin/env python
"""Clustering accuracy of scdeep methods on every count dataset in ../shared/data (the
leave-one-dataset-out comparison of the default's rules is bench/generalization.py).

  .venv/bin/python bench/accuracy.py [--methods scmae,pca] [--seeds 5] [--datasets a,b]
      [--set KEY=VALUE ...] [--label NAME] [--merge] [--jobs 2] [--out bench/results/accuracy.json]

Each (method, dataset, seed) is one `scdeep run` with the method's defaults and
1 libtorch thread; `--jobs` runs that many at once. Writes per-seed ARI/NMI and the
median over seeds, next to the numbers CATALOG.md reports for the same cells. NMI is
arithmetic (scikit-learn's default); nmi_geometric is the older default some papers use.
By default yan is left out (it holds RPKM values, not counts); name it in --datasets
for methods whose losses do not assume counts (CICL). `--label` files the results under
another name (an ablation: `--methods cicl --set params.lambda=0 --label cicl_lambda0`);
`--merge` keeps the results already in the output file for every (name, dataset, seed)
this run does not redo, and recomputes the medians over all of them. `--combine a.json,b.json`
runs nothing: it merges the runs of those files (benchmarks run side by side, each with
its own --out) into --out the same way.
"""
import argparse
import concurrent.futures as cf
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
BIN = os.path.join(TARGET, "release", "scdeep")
DATA = os.path.join(ROOT, "..", "shared", "data")
# Every labelled set of ../shared/data but yan (RPKM, not counts).
COUNT_DATASETS = sorted(d for d in os.listdir(DATA) if d != "yan" and os.path.isfile(os.path.join(DATA, d, f"{d}.h5ad"))) \
    if os.path.isdir(DATA) else []
# CATALOG.md, "Measured here" (median ARI / NMI of 3 seeds), for comparison.
REFERENCE = {
    "scmae_authors": {"10x_pbmc_top2000": [0.757, 0.767], "mouse_bladder_top2000": [0.472, 0.740], "baron_mouse": [0.889, 0.860],
                      "pollen_top1000hvg": [0.959, 0.948], "darmanis_top1000hvg": [0.875, 0.870]},
    "scanpy_pca_kmeans": {"10x_pbmc_top2000": [0.673, 0.760], "mouse_bladder_top2000": [0.627, 0.793], "baron_mouse": [0.912, 0.870],
                          "pollen_top1000hvg": [0.956, 0.948], "darmanis_top1000hvg": [0.659, 0.795]},
}


def run_one(method, dataset, seed, sets):
    h5 = os.path.join(DATA, dataset, f"{dataset}.h5ad")
    with tempfile.TemporaryDirectory() as out:
        cmd = [BIN, "run", "-q", "-i", h5, "--label-key", "cell_type", "-m", method, "--seed", str(seed),
               "--threads", "1", "--device", "cpu", "--out", out, "--no-h5ad"]
        for s in sets:
            cmd += ["--set", s]
        t = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t
        if p.returncode != 0:
            return {"method": method, "dataset": dataset, "seed": seed, "error": p.stderr.strip()[-500:]}
        return record(method, dataset, seed, out, wall)


def record(method, dataset, seed, out, wall):
    """The result of one run from its --out folder (metrics.json, run.json)."""
    m = json.load(open(os.path.join(out, "metrics.json")))
    info = json.load(open(os.path.join(out, "run.json")))
    # NMI with the geometric mean of the entropies (scikit-learn < 0.22, used by the scRAE
    # paper) is sqrt(homogeneity * completeness); the arithmetic one is the V-measure.
    return {"method": method, "dataset": dataset, "seed": seed, "ari": m["ari"], "nmi": m["nmi"],
            "nmi_geometric": (m["homogeneity"] * m["completeness"]) ** 0.5,
            "wall_s": round(wall, 2), "train_s": round(info["timings_s"].get("train", 0.0), 2)}


def name(r):
    """The name a run is filed under: its --label, else its method."""
    return r.get("label", r["method"])


def summarize(rs):
    """Medians over the seeds of one (name, dataset); the error when every run failed."""
    ok = [r for r in rs if "ari" in r]
    if not ok:
        return {"error": rs[0]["error"]}
    out = {"median_ari": round(statistics.median(r["ari"] for r in ok), 4),
           "median_nmi": round(statistics.median(r["nmi"] for r in ok), 4),
           "seeds": len(ok), "median_wall_s": round(statistics.median(r["wall_s"] for r in ok), 2)}
    if all("nmi_geometric" in r for r in ok):  # older runs did not record it
        out["median_nmi_geometric"] = round(statistics.median(r["nmi_geometric"] for r in ok), 4)
    return out


def run_all(a):
    """Run every (method, dataset, seed) of the arguments; the runs and their overlays."""
    seeds = [int(x) for x in a.seed_list.split(",")] if a.seed_list else range(a.seeds)
    jobs = [(m, d, s) for m in a.methods.split(",") for d in a.datasets.split(",") for s in seeds]
    runs = []
    with cf.ThreadPoolExecutor(a.jobs) as ex:
        for r in ex.map(lambda j: run_one(*j, a.set), jobs):
            print(json.dumps(r), file=sys.stderr)
            runs.append(r)
    for r in runs:
        r["set"] = a.set
        if a.label:
            r["label"] = a.label
    return runs, {a.label or m: a.set for m in a.methods.split(",")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", default="scmae,pca")
    ap.add_argument("--datasets", default=",".join(COUNT_DATASETS))
    ap.add_argument("--seeds", type=int, default=5, help="seeds 0 .. N-1")
    ap.add_argument("--seed-list", help="these seeds instead, e.g. 2,3,4")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], help="config overlay passed to every run")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "accuracy.json"))
    ap.add_argument("--label", help="file the results under this name (one method only)")
    ap.add_argument("--merge", action="store_true", help="keep the results in --out that this run does not redo")
    ap.add_argument("--combine", help="run nothing; merge the runs of these result files (comma-separated) into --out")
    a = ap.parse_args()
    if a.label and "," in a.methods:
        ap.error("--label needs a single method")
    if a.combine:
        runs, overlays = [], {}
        for f in a.combine.split(","):
            part = json.load(open(f))
            runs += part["runs"]
            overlays.update(part.get("overlays", {}))
    else:
        runs, overlays = run_all(a)
    if (a.merge or a.combine) and os.path.exists(a.out):
        # keep every (name, dataset, seed) of the old file that this run did not redo
        old = json.load(open(a.out))
        redone = {(name(r), r["dataset"], r["seed"]) for r in runs}
        runs = [r for r in old.get("runs", []) if (name(r), r["dataset"], r["seed"]) not in redone] + runs
        overlays = {**old.get("overlays", {}), **overlays}
    groups = {}
    for r in runs:
        groups.setdefault(name(r), {}).setdefault(r["dataset"], []).append(r)
    summary = {n: {d: summarize(rs) for d, rs in per.items()} for n, per in groups.items()}
    result = {"benchmark": "accuracy", "threads_per_run": 1, "overlays": overlays, "summary": summary,
              "reference_catalog": REFERENCE, "runs": runs}
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(summary, indent=1))
    print("wrote", a.out, file=sys.stderr)


if __name__ == "__main__":
    main()
