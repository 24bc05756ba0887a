#!/usr/bin/env python
"""MaskClass's evaluation protocol (specs §5), side by side with no imputation.

  .venv/bin/python bench/maskclass.py [--parts mse,clustering,runtime] [--cells 5000]
      [--epochs 300] [--runtime-cells 1000,5000,20000,100000] [--runtime-epochs 3]
      [--out bench/results/maskclass.json]

mse: the built-in simulator (`scdeep simulate`) at --cells cells and 1,100 genes, de.prob
0.1, dropout midpoint ~ U[1, 5] and shape ~ U[-1.5, -0.5] (drawn per scenario from a
fixed seed): Equal (2 types 50/50), Unequal (60/30/10), Rare (50/25/20/5), Batch
(40/30/30 over 3 batches with per-batch dropout). `scdeep run -m maskclass` imputes; the
truth is log2(1 + true counts normalised to their median library size), over the kept
cells and the imputed genes, the observed values are the method's own log2(1 + x)
normalisation. MSE over every entry, dropout-MSE over observed zeros with true counts
> 0, biozero-MSE over true zeros; "none" is the observed matrix.
clustering: on darmanis and pollen, PCA (D = max(2, min(50, N, G))) + K-means with k =
#labels (scikit-learn, 5 seeds) on the imputed matrix and on the observed log2 values of
the same genes; ARI, NMI, purity, ASW.
runtime: seconds per epoch and peak RSS at each size (--runtime-epochs epochs; the total
for the default 300 epochs is extrapolated and marked so).
"""
import argparse
import json
import os
import sys
import tempfile

import anndata as ad
import numpy as np
import scanpy as sc
import scipy.sparse as sp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_benchmarks import measure  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
BIN = os.path.join(TARGET, "release", "scdeep")
DATA = os.path.join(ROOT, "..", "shared", "data")
SCENARIOS = {"equal": ([0.5, 0.5], None), "unequal": ([0.6, 0.3, 0.1], None), "rare": ([0.5, 0.25, 0.2, 0.05], None),
             "batch": ([0.4, 0.3, 0.3], 3)}
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


def simulate(path, n_cells, groups, batches, seed):
    rng = np.random.default_rng(seed)
    nb = batches or 1
    mid = rng.uniform(1, 5, nb).round(3).tolist()
    shape = rng.uniform(-1.5, -0.5, nb).round(3).tolist()
    cmd = [BIN, "simulate", "-q", "--out", path, "--n-cells", str(n_cells), "--n-genes", "1100", "--de-prob", "0.1",
           "--groups", ",".join(map(str, groups)), "--seed", str(seed),
           "--dropout-type", "batch" if batches else "experiment",
           "--dropout-mid", ",".join(map(str, mid)), "--dropout-shape", ",".join(map(str, shape))]
    if batches:
        sizes = [n_cells // batches] * batches
        sizes[-1] += n_cells - sum(sizes)
        cmd += ["--batches", ",".join(map(str, sizes))]
    measure(cmd, ENV)
    return {"dropout_mid": mid, "dropout_shape": shape}


def run_maskclass(h5, out, epochs, label_key="group"):
    wall, rss, _ = measure([BIN, "run", "-q", "-i", h5, "--label-key", label_key, "-m", "maskclass", "--device", "cpu",
                            "--threads", "1", "--seed", "0", "--epochs", str(epochs), "--imputed-mtx", "--out", out], ENV)
    imp = sc.read_10x_mtx(os.path.join(out, "imputed"))
    return imp, wall, rss, json.load(open(os.path.join(out, "run.json"))), json.load(open(os.path.join(out, "history.json")))


def log2_norm(m):
    m = np.asarray(m, dtype=np.float64)
    lib = m.sum(1, keepdims=True)
    target = np.median(lib[lib > 0])
    return np.log2(1 + np.divide(m * target, lib, out=np.zeros_like(m), where=lib > 0))


def observed_log2(counts, gene_idx):
    """The method's own log2 values of `gene_idx`: libraries over the genes its recipe keeps
    (expressed in >= 3 cells)."""
    expressed = (counts > 0).sum(0) >= 3
    return log2_norm(counts[:, expressed])[:, np.searchsorted(np.flatnonzero(expressed), gene_idx)]


def mse_part(a, res):
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, (groups, batches)) in enumerate(SCENARIOS.items()):
            h5 = os.path.join(tmp, f"{name}.h5ad")
            sim = simulate(h5, a.cells, groups, batches, seed=100 + i)
            out = os.path.join(tmp, name)
            imp, wall, rss, info, hist = run_maskclass(h5, out, a.epochs)
            src = ad.read_h5ad(h5)
            cells = imp.obs_names
            genes = imp.var_names
            src = src[cells]
            obs_counts = src.X.toarray().astype(np.float64)
            true_counts = src.layers["true_counts"].toarray().astype(np.float64)
            gene_idx = src.var_names.get_indexer(genes)
            x_log = observed_log2(obs_counts, gene_idx)
            t_log = log2_norm(true_counts)[:, gene_idx]
            obs_sel = obs_counts[:, gene_idx]
            tru_sel = true_counts[:, gene_idx]
            imp_x = imp.X.toarray().astype(np.float64)
            drop = (obs_sel == 0) & (tru_sel > 0)
            bio = tru_sel == 0
            row = {"scenario": name, "cells": len(cells), "genes": len(genes), **sim, "train_s": info["timings_s"]["train"],
                   "wall_s": wall, "peak_rss_mb": round(rss, 1), "loss_mask_first_last": [hist[0]["loss_mask"], hist[-1]["loss_mask"]],
                   "observed_log_max_abs_diff": float(np.abs(x_log - imp_x)[obs_sel > 0].max()) if (obs_sel > 0).any() else 0.0,
                   "dropout_fraction": float(drop.sum() / max(1, (tru_sel > 0).sum()))}
            for label, m in [("none", x_log), ("maskclass", imp_x)]:
                d = (m - t_log) ** 2
                row[label] = {"mse": float(d.mean()), "dropout_mse": float(d[drop].mean()) if drop.any() else None,
                              "biozero_mse": float(d[bio].mean()) if bio.any() else None}
            row["mse_ratio"] = row["maskclass"]["mse"] / row["none"]["mse"]
            print(json.dumps(row), file=sys.stderr)
            rows.append(row)
    res["mse"] = rows


def clustering_part(a, res):
    from sklearn import metrics as skm
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    rows = []
    for d in ["darmanis_top1000hvg", "pollen_top1000hvg"]:
        h5 = os.path.join(DATA, d, f"{d}.h5ad")
        with tempfile.TemporaryDirectory() as out:
            imp, wall, rss, info, _ = run_maskclass(h5, out, a.epochs, label_key="cell_type")
            src = ad.read_h5ad(h5)[imp.obs_names]
        truth = src.obs["cell_type"].astype(str).to_numpy()
        k = len(set(truth))
        counts = src.X.toarray() if sp.issparse(src.X) else np.asarray(src.X)
        observed = observed_log2(counts, src.var_names.get_indexer(imp.var_names))
        for label, m in [("none", observed), ("maskclass", imp.X.toarray())]:
            dim = max(2, min(50, m.shape[0], m.shape[1]))
            z = PCA(n_components=dim, random_state=0).fit_transform(m)
            per = []
            for seed in range(5):
                p = KMeans(k, n_init=10, random_state=seed).fit_predict(z)
                cm = skm.cluster.contingency_matrix(truth, p)
                per.append({"ari": skm.adjusted_rand_score(truth, p), "nmi": skm.normalized_mutual_info_score(truth, p),
                            "purity": cm.max(0).sum() / cm.sum(), "asw": float(skm.silhouette_score(z, p))})
            row = {"dataset": d, "input": label, **{m_: float(np.mean([r[m_] for r in per])) for m_ in per[0]},
                   **{m_ + "_sd": float(np.std([r[m_] for r in per])) for m_ in per[0]}}
            if label == "maskclass":
                row["train_s"] = info["timings_s"]["train"]
            print(json.dumps(row), file=sys.stderr)
            rows.append(row)
    res["clustering"] = rows


def runtime_part(a, res):
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in map(int, a.runtime_cells.split(",")):
            h5 = os.path.join(tmp, f"sim{n}.h5ad")
            simulate(h5, n, [0.5, 0.25, 0.2, 0.05], None, seed=7)
            out = os.path.join(tmp, f"out{n}")
            epochs = a.runtime_epochs
            wall, rss, _ = measure([BIN, "run", "-q", "-i", h5, "--label-key", "group", "-m", "maskclass", "--device", "cpu",
                                    "--threads", "1", "--epochs", str(epochs), "--no-h5ad", "--out", out], ENV)
            hist = json.load(open(os.path.join(out, "history.json")))
            info = json.load(open(os.path.join(out, "run.json")))
            spe = float(np.median([h["seconds"] for h in hist]))
            t = info["timings_s"]
            row = {"cells": n, "epochs_run": epochs, "seconds_per_epoch": spe, "wall_s": wall, "peak_rss_mb": round(rss, 1),
                   "seconds": {k: round(v, 3) for k, v in t.items()},
                   "extrapolated_300_epochs_s": round(wall - t["train"] + 300 * spe, 1)}
            print(json.dumps(row), file=sys.stderr)
            rows.append(row)
    res["runtime"] = rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--parts", default="mse,clustering,runtime")
    ap.add_argument("--cells", type=int, default=5000)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--runtime-cells", default="1000,5000,20000,100000")
    ap.add_argument("--runtime-epochs", type=int, default=3)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "maskclass.json"))
    a = ap.parse_args()
    res = {"benchmark": "maskclass", "device": "cpu", "threads": 1, "epochs": a.epochs}
    if os.path.exists(a.out):
        old = json.load(open(a.out))
        res.update({k: v for k, v in old.items() if k in ("mse", "clustering", "runtime")})
    parts = {"mse": mse_part, "clustering": clustering_part, "runtime": runtime_part}
    for p in a.parts.split(","):
        parts[p](a, res)
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    print("wrote", a.out, file=sys.stderr)


if __name__ == "__main__":
    main()
