#!/usr/bin/env python
"""Issue 24 item 3, exploration: label-free estimates of the number of clusters on the
embeddings that bench/studies/consensus/consensus_members.py leaves in target/consensus_members (run it
first), against the true number of types and against what scdeep does today without k
(Leiden at resolution 1 on the 15-NN graph, `scdeep cluster --cluster leiden`).
Estimates over k = 2 .. 25: the k whose K-means partition has the highest silhouette (on
at most 2000 cells), and the k > 2 whose 6 single-start K-means runs agree most (mean
pairwise ARI).

  .venv/bin/python bench/studies/k_estimate/k_estimate.py [--methods scmae,pca] [--seed 0]

Writes bench/studies/k_estimate/results/k_estimate.json.
"""
import argparse
import itertools
import json
import os
import subprocess
import tempfile

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score as ari
from sklearn.metrics import silhouette_score

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
BIN = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "scdeep")
WORK = os.path.join(ROOT, "target", "consensus_members")
DATASETS = ["10x_pbmc_top2000", "mouse_bladder_top2000", "mouse_bladder_select2100", "baron_mouse", "pollen_top1000hvg",
            "darmanis_top1000hvg", "blakeley"]


def leiden_clusters(emb, seed):
    with tempfile.TemporaryDirectory() as t:
        out = os.path.join(t, "labels.tsv")
        subprocess.run([BIN, "cluster", "-q", "-e", emb, "--cluster", "leiden", "--resolution", "1", "--seed", str(seed), "-o", out],
                       check=True)
        return len({line.rstrip("\n").split("\t")[1] for line in list(open(out))[1:]})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", default="scmae,pca")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "k_estimate.json"))
    a = ap.parse_args()
    rows = []
    for m in a.methods.split(","):
        for d in DATASETS:
            folder = os.path.join(WORK, f"{m}_{d}_s{a.seed}")
            x = np.load(os.path.join(folder, "embedding.npy")).astype(np.float64)
            truth = [line.rstrip("\n").split("\t")[1] for line in open(os.path.join(folder, "truth.tsv"))][1:]
            sil, stab = {}, {}
            for k in range(2, min(26, len(x) - 1)):
                runs = [KMeans(k, n_init=1, random_state=r).fit(x).labels_ for r in range(6)]
                sil[k] = float(silhouette_score(x, runs[0], sample_size=min(2000, len(x)), random_state=0))
                stab[k] = float(np.mean([ari(p, q) for p, q in itertools.combinations(runs, 2)]))
            r = {"method": m, "dataset": d, "true_k": len(set(truth)), "silhouette_k": max(sil, key=sil.get),
                 "stability_k": max((k for k in stab if k > 2), key=stab.get),
                 "leiden_resolution_1": leiden_clusters(os.path.join(folder, "embedding.npy"), a.seed), "silhouette": sil, "stability": stab}
            print({key: v for key, v in r.items() if key not in ("silhouette", "stability")}, flush=True)
            rows.append(r)
    within = {c: {m: sum(abs(r[c] - r["true_k"]) <= 1 for r in rows if r["method"] == m) for m in a.methods.split(",")}
              for c in ("silhouette_k", "stability_k", "leiden_resolution_1")}
    print("within +-1 of the true k, of", len(DATASETS), ":", within)
    json.dump({"benchmark": "k estimation (issue 24 item 3, exploration)", "seed": a.seed, "within_1": within, "runs": rows},
              open(a.out, "w"), indent=1)


if __name__ == "__main__":
    main()
