#!/usr/bin/env python
"""Issue 24, exploration: can partitions of several embeddings be combined into one that
is at least as good as the best member's, without labels? For each dataset, one
embedding per method (`scdeep run -m METHOD --seed S`, kept in --work and reused), then
K-means (n_init 10, scikit-learn) on each, and combinations of 10 single-start K-means
runs per embedding: the co-association cut (kNN edges weighted by (agree + 1/2) / (runs +
1), Leiden RB-configuration with the resolution bisected to k, as `cluster.algorithm =
consensus` does) on the PCA and the scMAE kNN graphs, the same with PCA and scMAE runs
only, exact average linkage on the full co-association matrix (EAC), and the member whose
K-means partition has the highest mean NMI to the other members' (a label-free pick).
ARI against the labels, which no choice uses.

  .venv/bin/python bench/studies/consensus/consensus_members.py [--datasets a,b] [--seeds 5] [--jobs 2] [--work DIR]

Writes bench/studies/consensus/results/consensus_members.json: every (dataset, seed) and the medians over
seeds with their range.
"""
import argparse
import json
import os
import statistics
import subprocess
from concurrent.futures import ThreadPoolExecutor

import igraph as ig
import leidenalg as la
import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score as ari
from sklearn.metrics import normalized_mutual_info_score as nmi
from sklearn.neighbors import NearestNeighbors

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
BIN = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "scdeep")
DATA = os.path.join(ROOT, "..", "shared", "data")
METHODS = ["pca", "scmae", "mask-sc-mlp", "contrastive-sc"]
DATASETS = ["10x_pbmc_top2000", "mouse_bladder_top2000", "mouse_bladder_select2100", "baron_mouse", "pollen_top1000hvg",
            "darmanis_top1000hvg", "blakeley"]


def embedding(work, method, dataset, seed):
    out = os.path.join(work, f"{method}_{dataset}_s{seed}")
    if not os.path.exists(os.path.join(out, "embedding.npy")):
        h5 = os.path.join(DATA, dataset, f"{dataset}.h5ad")
        subprocess.run([BIN, "run", "-q", "-i", h5, "--label-key", "cell_type", "-m", method, "--seed", str(seed), "--threads", "1",
                        "--device", "cpu", "--out", out, "--no-h5ad", "--overwrite"], check=True)
    truth = [line.rstrip("\n").split("\t")[1] for line in open(os.path.join(out, "truth.tsv"))][1:]
    return np.load(os.path.join(out, "embedding.npy")).astype(np.float64), truth


def knn_edges(x, k=15):
    idx = NearestNeighbors(n_neighbors=k).fit(x).kneighbors(x, return_distance=False)
    return np.array(sorted({(min(i, j), max(i, j)) for i in range(len(x)) for j in idx[i] if i != j}))


def cut(n, edges, parts, k, seed):
    p = np.array(parts)
    w = ((p[:, edges[:, 0]] == p[:, edges[:, 1]]).sum(0) + 0.5) / (len(p) + 1)
    g = ig.Graph(n=n, edges=edges.tolist())
    lo, hi, r, best = None, None, 1.0, None
    for _ in range(14):
        m = np.array(la.find_partition(g, la.RBConfigurationVertexPartition, weights=w, resolution_parameter=r, seed=seed).membership)
        nc = len(set(m))
        if best is None or abs(nc - k) < abs(best[0] - k):
            best = (nc, m)
        if nc == k:
            break
        lo, hi = (r, hi) if nc < k else (lo, r)
        r = (lo * hi) ** 0.5 if lo and hi else (r * 2 if hi is None else r / 2)
    return best[1]


def eac_average(parts, k):
    p = np.array(parts)
    co = np.zeros((p.shape[1], p.shape[1]), dtype=np.float32)
    for row in p:
        co += row[:, None] == row[None, :]
    d = 1 - co / len(p)
    np.fill_diagonal(d, 0)
    return fcluster(linkage(squareform(d, checks=False), "average"), k, "maxclust")


def evaluate(work, d, seed):
    """ARIs of the members and of the combinations on one dataset and seed."""
    xs, truth = {}, None
    for m in METHODS:
        xs[m], truth = embedding(work, m, d, seed)
    k, n = len(set(truth)), len(truth)
    r = {"dataset": d, "seed": seed, "k": k}
    parts, member = [], {}
    for m in METHODS:
        member[m] = KMeans(k, n_init=10, random_state=seed).fit(xs[m]).labels_
        r[f"kmeans_{m}"] = ari(truth, member[m])
        parts += [KMeans(k, n_init=1, random_state=1000 * seed + i).fit(xs[m]).labels_ for i in range(10)]
    for g in ["pca", "scmae"]:
        r[f"cut_all_on_{g}_graph"] = ari(truth, cut(n, knn_edges(xs[g]), parts, k, seed))
    r["cut_pca_scmae_on_pca_graph"] = ari(truth, cut(n, knn_edges(xs["pca"]), parts[:20], k, seed))
    r["eac_average_all"] = ari(truth, eac_average(parts, k))
    r["best_member"] = max(r[f"kmeans_{m}"] for m in METHODS)
    agree = {m: float(np.mean([nmi(member[m], member[o]) for o in METHODS if o != m])) for m in METHODS}
    r["member_mean_nmi_to_others"] = agree
    r["picked_by_agreement"] = max(METHODS, key=lambda m: agree[m])
    r["picked_ari"] = r[f"kmeans_{r['picked_by_agreement']}"]
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--seeds", type=int, default=1, help="seeds 0 .. N-1")
    ap.add_argument("--jobs", type=int, default=2, help="scdeep runs side by side (1 thread each)")
    ap.add_argument("--work", default=os.path.join(ROOT, "target", "consensus_members"))
    ap.add_argument("--out", default=os.path.join(HERE, "results", "consensus_members.json"))
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    datasets = a.datasets.split(",")
    jobs = [(m, d, seed) for d in datasets for seed in range(a.seeds) for m in METHODS]
    with ThreadPoolExecutor(a.jobs) as pool:
        list(pool.map(lambda j: embedding(a.work, *j), jobs))
    results = []
    for d in datasets:
        for seed in range(a.seeds):
            results.append(evaluate(a.work, d, seed))
    columns = [c for c in results[0] if isinstance(results[0][c], float)]
    summary = {}
    for d in datasets:
        rs = [r for r in results if r["dataset"] == d]
        summary[d] = {c: {"median": statistics.median(r[c] for r in rs), "min": min(r[c] for r in rs), "max": max(r[c] for r in rs)}
                      for c in columns}
        print(d, {c: round(v["median"], 3) for c, v in summary[d].items()}, flush=True)
    json.dump({"benchmark": "consensus over embeddings (issue 24, exploration)", "methods": METHODS, "seeds": a.seeds,
               "summary": summary, "runs": results},
              open(a.out, "w"), indent=1)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
