#!/usr/bin/env python
"""Issue 24 item 3: the number of clusters when neither k nor labels are given.

For each dataset and seed, two runs that see no labels:
- `scdeep run -m consensus` (k estimated: Leiden communities on the consensus embedding's
  kNN graph at resolution 1, then K-means with that k on the consensus embedding);
- `scdeep run -m scmae` (the single-method path without k: Leiden at resolution 1 on
  scMAE's embedding).
The labels (../shared/data/<name>/labels.tsv) are read only to score the result afterwards.

  .venv/bin/python bench/studies/k_estimate/consensus_k.py [--datasets a,b] [--seeds 5] [--jobs 2] [--out bench/studies/k_estimate/results/consensus_k.json]

Writes every run and, per dataset, the median estimated k / cluster count and ARI / NMI
over the seeds with their range, and how many datasets have the median estimate within
+-1 of the true number of types.
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

from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
BIN = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "scdeep")
DATA = os.path.join(ROOT, "..", "shared", "data")
DATASETS = ["10x_pbmc_top2000", "mouse_bladder_top2000", "mouse_bladder_select2100", "baron_mouse", "pollen_top1000hvg",
            "darmanis_top1000hvg", "yan", "blakeley"]


def read_tsv(path):
    rows = [line.rstrip("\n").split("\t") for line in open(path)][1:]
    return {r[0]: r[1] for r in rows}


def run_one(method, dataset, seed):
    h5 = os.path.join(DATA, dataset, f"{dataset}.h5ad")
    truth = read_tsv(os.path.join(DATA, dataset, "labels.tsv"))
    with tempfile.TemporaryDirectory() as out:
        cmd = [BIN, "run", "-q", "-i", h5, "-m", method, "--seed", str(seed), "--threads", "1", "--device", "cpu",
               "--out", out, "--no-h5ad"]
        t = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t
        if p.returncode != 0:
            return {"method": method, "dataset": dataset, "seed": seed, "error": p.stderr.strip()[-500:]}
        pred = read_tsv(os.path.join(out, "labels.tsv"))
        info = json.load(open(os.path.join(out, "run.json")))
    cells = [c for c in pred if c in truth]
    t, q = [truth[c] for c in cells], [pred[c] for c in cells]
    r = {"method": method, "dataset": dataset, "seed": seed, "true_k": len(set(truth.values())), "k": len(set(q)),
         "ari": adjusted_rand_score(t, q), "nmi": normalized_mutual_info_score(t, q), "wall_s": round(wall, 2)}
    est = info["clustering"].get("k_estimate")
    if est:
        r["communities"] = est.get("communities")
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--methods", default="consensus,scmae")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "consensus_k.json"))
    a = ap.parse_args()
    jobs = [(m, d, s) for d in a.datasets.split(",") for m in a.methods.split(",") for s in range(a.seeds)]
    runs = []
    with cf.ThreadPoolExecutor(a.jobs) as ex:
        for r in ex.map(lambda j: run_one(*j), jobs):
            print(json.dumps(r), file=sys.stderr, flush=True)
            runs.append(r)
    summary, within = {}, {}
    for m in a.methods.split(","):
        within[m] = 0
        for d in a.datasets.split(","):
            ok = [r for r in runs if r["method"] == m and r["dataset"] == d and "ari" in r]
            if not ok:
                summary.setdefault(d, {})[m] = {"error": next(r["error"] for r in runs if r["method"] == m and r["dataset"] == d)}
                continue
            s = {"true_k": ok[0]["true_k"], "seeds": len(ok)}
            for key in ["k", "ari", "nmi", "wall_s"]:
                v = [r[key] for r in ok]
                s[key] = {"median": statistics.median(v), "min": min(v), "max": max(v)}
            s["within_1"] = abs(s["k"]["median"] - s["true_k"]) <= 1
            within[m] += s["within_1"]
            summary.setdefault(d, {})[m] = s
            print(d, m, "true", s["true_k"], "k", s["k"]["median"], "ARI %.3f (%.3f-%.3f)" % (s["ari"]["median"], s["ari"]["min"], s["ari"]["max"]),
                  flush=True)
    json.dump({"benchmark": "k unknown: consensus estimate vs Leiden resolution 1 (issue 24)", "threads_per_run": 1,
               "within_1_datasets": within, "n_datasets": len(a.datasets.split(",")), "summary": summary, "runs": runs},
              open(a.out, "w"), indent=1)
    print("within +-1:", within, "wrote", a.out)


if __name__ == "__main__":
    main()
