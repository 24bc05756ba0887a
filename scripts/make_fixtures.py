#!/usr/bin/env python
"""Regenerate tests/fixtures/ with the reference tools (scanpy, scikit-learn, skmisc, harmonypy).

Run with `make fixtures`. Reads ../shared/data; writes JSON (and one small 10x .h5)
that the Rust tests compare against.
"""
import json
import os
import sys

import h5py
import numpy as np
import scanpy as sc
import scipy.sparse as sp
from sklearn import metrics as skm
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "..", "shared", "data")
OUT = os.path.join(ROOT, "tests", "fixtures")
os.makedirs(OUT, exist_ok=True)


def dump(name, obj):
    with open(os.path.join(OUT, name), "w") as f:
        json.dump(obj, f, separators=(",", ":"))
    print("wrote", name, file=sys.stderr)


def f(x):
    return [float("%.9g" % v) if np.isfinite(v) else None for v in np.asarray(x, dtype=np.float64).ravel()]


# ------------------------------------------------------------------ metrics
def metric_fixtures():
    rng = np.random.default_rng(0)
    cases = []
    for n, kt, kp, noise in [(50, 3, 3, 0.2), (300, 5, 7, 0.5), (1000, 8, 8, 0.1), (200, 2, 4, 0.9), (120, 6, 1, 0.0), (500, 10, 12, 0.3)]:
        truth = rng.integers(0, kt, n)
        pred = truth % kp if kp > 1 else np.zeros(n, dtype=int)
        flip = rng.random(n) < noise
        pred = np.where(flip, rng.integers(0, kp, n), pred)
        d = 5
        x = rng.normal(size=(n, d)) + truth[:, None] * 1.5
        case = {"truth": truth.tolist(), "pred": pred.tolist(), "x": f(x), "d": d,
                "ari": skm.adjusted_rand_score(truth, pred),
                "homogeneity": skm.homogeneity_score(truth, pred),
                "completeness": skm.completeness_score(truth, pred),
                "v_measure": skm.v_measure_score(truth, pred)}
        for avg in ["arithmetic", "geometric", "max", "min"]:
            case["nmi_" + avg] = skm.normalized_mutual_info_score(truth, pred, average_method=avg)
            case["ami_" + avg] = skm.adjusted_mutual_info_score(truth, pred, average_method=avg)
        if len(set(truth)) > 1:
            case["silhouette_truth"] = skm.silhouette_score(x, truth)
            case["ch_truth"] = skm.calinski_harabasz_score(x, truth)
        cm = skm.cluster.contingency_matrix(truth, pred)
        case["purity"] = cm.max(axis=0).sum() / n
        from scipy.optimize import linear_sum_assignment
        r, c = linear_sum_assignment(-cm)
        case["acc"] = cm[r, c].sum() / n
        cases.append(case)
    dump("metrics.json", cases)


# ------------------------------------------------------------- preprocessing
def prep_fixture(name, n_top):
    a = sc.read_h5ad(os.path.join(DATA, name, name + ".h5ad"))
    a.X = sp.csr_matrix(a.X, dtype=np.float32)
    sc.pp.filter_genes(a, min_counts=1)
    sc.pp.filter_cells(a, min_counts=1)
    counts = a.copy()
    sc.pp.normalize_total(a)
    sc.pp.log1p(a)
    rng = np.random.default_rng(1)
    cells = sorted(set(list(range(5)) + rng.choice(a.n_obs, 15, replace=False).tolist()))
    rows = a.X[cells]
    log_rows = [{"idx": rows[i].indices.tolist(), "val": f(rows[i].data)} for i in range(len(cells))]
    out = {"name": name, "n_top": n_top, "n_cells": a.n_obs, "n_genes": a.n_vars, "cells": cells, "log_rows": log_rows}
    for flavor in ["seurat", "cell_ranger"]:
        h = sc.pp.highly_variable_genes(a, flavor=flavor, n_top_genes=n_top, inplace=False)
        out[flavor] = {"selected": np.flatnonzero(h["highly_variable"].values).tolist(),
                       "dispersions_norm": f(h["dispersions_norm"].values)}
    h = sc.pp.highly_variable_genes(counts, flavor="seurat_v3", n_top_genes=n_top, inplace=False)
    out["seurat_v3"] = {"selected": np.flatnonzero(h["highly_variable"].values).tolist(),
                        "variances_norm": f(h["variances_norm"].values)}
    # skmisc loess with the exact ("direct") surface, on the same inputs scanpy uses.
    from skmisc.loess import loess
    X = counts.X
    mean = np.asarray(X.mean(axis=0)).ravel()
    var = np.asarray(X.multiply(X).mean(axis=0)).ravel() - mean ** 2
    var *= X.shape[0] / (X.shape[0] - 1)
    nc = var > 0
    lx, ly = np.log10(mean[nc]), np.log10(var[nc])
    m = loess(lx, ly, span=0.3, degree=2, surface="direct")
    m.fit()
    out["loess_direct"] = {"fitted": f(m.outputs.fitted_values)}
    # DCA recipe tail: 'seurat' HVGs subset + scale (ddof 1, no clip), sampled rows
    b = a.copy()
    sc.pp.highly_variable_genes(b, flavor="seurat", n_top_genes=n_top, subset=True)
    sc.pp.scale(b)
    out["scaled_rows"] = f(np.asarray(b.X)[cells])
    out["scaled_genes"] = int(b.n_vars)
    return out


def hvg_batch_fixture(name, n_top):
    """scanpy's HVGs per batch (`batch_key='batch'`, `n_top_genes`) of a shared set with
    obs['batch']: 'seurat' and 'cell_ranger' on the log values, 'seurat_v3' on the counts,
    after the same filters as `prep_fixture`. Where scanpy fails (skmisc's loess on a batch
    of a few cells: 'reciprocal condition number') the fixture records its error."""
    a = sc.read_h5ad(os.path.join(DATA, name, name + ".h5ad"))
    a.X = sp.csr_matrix(a.X, dtype=np.float32)
    sc.pp.filter_genes(a, min_counts=1)
    sc.pp.filter_cells(a, min_counts=1)
    a.obs["batch"] = a.obs["batch"].astype(str).astype("category")
    counts = a.copy()
    sc.pp.normalize_total(a)
    sc.pp.log1p(a)
    out = {"name": name, "n_top": n_top, "n_cells": a.n_obs, "n_genes": a.n_vars}
    for flavor, data in [("seurat", a), ("cell_ranger", a), ("seurat_v3", counts)]:
        try:
            h = sc.pp.highly_variable_genes(data, flavor=flavor, n_top_genes=n_top, batch_key="batch", inplace=False)
        except ValueError as e:
            out[flavor] = {"error": str(e)}
            continue
        norm = "variances_norm" if flavor == "seurat_v3" else "dispersions_norm"
        out[flavor] = {"selected": np.flatnonzero(h["highly_variable"].values).tolist(), "norm": f(h[norm].values),
                       "nbatches": h["highly_variable_nbatches"].astype(int).tolist()}
    return out


def pca_kmeans_fixture():
    rng = np.random.default_rng(2)
    centers = rng.normal(scale=4.0, size=(6, 10))
    lab = rng.integers(0, 6, 3000)
    x = (centers[lab] + rng.normal(size=(3000, 10))).astype(np.float32)
    km = KMeans(6, n_init=10, random_state=0).fit(x)
    p = PCA(5).fit(x)
    dump("kmeans_pca.json", {"x": f(x), "n": 3000, "d": 10, "k": 6, "inertia": float(km.inertia_),
                             "labels": lab.tolist(), "ari_sklearn": skm.adjusted_rand_score(lab, km.labels_),
                             "pca_explained_variance": f(p.explained_variance_)})


def tenx_h5_fixture():
    """A small CellRanger>=3 style .h5 (fixed-length strings, as CellRanger writes)."""
    a = sc.read_h5ad(os.path.join(DATA, "pollen_top1000hvg", "pollen_top1000hvg.h5ad"))
    x = sp.csr_matrix(a.X[:40], dtype=np.float32)  # cells x genes == CSC genes x cells
    path = os.path.join(OUT, "tiny_10x.h5")
    with h5py.File(path, "w") as h:
        m = h.create_group("matrix")
        m["data"] = x.data.astype(np.int32)
        m["indices"] = x.indices.astype(np.int64)
        m["indptr"] = x.indptr.astype(np.int64)
        m["shape"] = np.array([a.n_vars, 40], dtype=np.int32)
        m["barcodes"] = np.array([s.encode() for s in a.obs_names[:40]], dtype="S")
        feats = m.create_group("features")
        feats["id"] = np.array([s.encode() for s in a.var_names], dtype="S")
        feats["name"] = np.array([s.encode() for s in a.var_names], dtype="S")
        feats["feature_type"] = np.array([b"Gene Expression"] * a.n_vars, dtype="S")
    dump("tiny_10x.json", {"n_cells": 40, "n_genes": int(a.n_vars), "total": float(x.sum()),
                           "first_barcode": a.obs_names[0], "last_gene": a.var_names[-1],
                           "row_sums": f(np.asarray(x.sum(axis=1)).ravel())})


def graph_fixture(name, n_pcs=20):
    """scanpy's kNN graph (UMAP connectivities) on a PCA, and leidenalg / igraph partitions
    of it: the oracles for our graph weights, Leiden and Louvain (GPL tools: oracles only)."""
    import igraph as ig
    import leidenalg as la
    a = sc.read_h5ad(os.path.join(DATA, name, f"{name}.h5ad"))
    sc.pp.filter_genes(a, min_counts=1)
    sc.pp.normalize_total(a)
    sc.pp.log1p(a)
    if a.n_vars > 2000:
        sc.pp.highly_variable_genes(a, flavor="seurat", n_top_genes=2000, subset=True)
    sc.pp.scale(a, max_value=10)
    sc.tl.pca(a, n_comps=n_pcs, random_state=0)
    x = np.round(a.obsm["X_pca"].astype(np.float32), 4)
    a.obsm["X_r"] = x
    # exact neighbours below 4096 cells in scanpy >= 1.10 (sklearn brute force)
    sc.pp.neighbors(a, n_neighbors=15, use_rep="X_r")
    c = sp.csr_matrix(a.obsp["connectivities"])
    src, dst = c.nonzero()
    keep = src < dst
    g = ig.Graph(n=a.n_obs, edges=list(zip(src[keep].tolist(), dst[keep].tolist())), directed=False)
    g.es["weight"] = np.asarray(c[src[keep], dst[keep]]).ravel().tolist()
    out = {"name": name, "n": int(a.n_obs), "d": n_pcs, "x": f(x),
           "indptr": c.indptr.tolist(), "indices": c.indices.tolist(), "data": f(c.data), "leiden": {}, "cpm": {}}
    truth = a.obs["cell_type"].astype(str).to_numpy()
    for res in (0.5, 1.0):
        p = la.find_partition(g, la.RBConfigurationVertexPartition, weights="weight", resolution_parameter=res, n_iterations=-1, seed=0)
        out["leiden"][str(res)] = {"membership": list(p.membership), "modularity": g.modularity(p.membership, weights="weight", resolution=res),
                                   "n_clusters": len(set(p.membership)), "ari_truth": skm.adjusted_rand_score(truth, p.membership)}
    m = g.community_multilevel(weights="weight", resolution=1.0)
    out["louvain"] = {"membership": list(m.membership), "modularity": g.modularity(m.membership, weights="weight")}
    p = la.find_partition(g, la.CPMVertexPartition, weights="weight", resolution_parameter=0.05, n_iterations=-1, seed=0)
    out["cpm"] = {"resolution": 0.05, "membership": list(p.membership), "quality": p.quality(), "n_clusters": len(set(p.membership))}
    return out


def robust_fixture():
    """MaskClass's per-gene scaling (specs §5), written from the spec with numpy: winsorise
    to the 2nd-99.5th percentile (numpy's linear interpolation), z-score with the
    population std (std < 1e-8 -> 1), rescale to [-1, 1] by the gene's z range."""
    a = sc.read_h5ad(os.path.join(DATA, "pollen_top1000hvg", "pollen_top1000hvg.h5ad"))
    sc.pp.normalize_total(a)
    sc.pp.log1p(a, base=2)
    x = np.asarray(a.X[:, :100].toarray(), dtype=np.float32)
    lo = np.percentile(x.astype(np.float64), 2.0, axis=0)
    hi = np.percentile(x.astype(np.float64), 99.5, axis=0)
    w = np.clip(x.astype(np.float64), lo, hi)
    m = w.mean(0)
    sd = w.std(0)
    sd[sd < 1e-8] = 1.0
    z = (w - m) / sd
    zmin, zmax = z.min(0), z.max(0)
    rng = np.where(zmax - zmin > 0, zmax - zmin, 1.0)
    y = 2 * (z - zmin) / rng - 1
    dump("robust.json", {"n": x.shape[0], "g": x.shape[1], "x": f(x), "lo": f(lo), "hi": f(hi), "mean": f(m), "std": f(sd),
                         "zmin": f(zmin), "zmax": f(zmax), "y": f(y)})


def zinb_fixture():
    """ZINB negative log-likelihood (scRAE, specs §7). The reference is the formula in
    mpmath at 50 digits: log NB(x; μ, θ) = logΓ(x+θ) − logΓ(θ) − logΓ(x+1) + θ log(θ/(θ+μ))
    + x log(μ/(θ+μ)); π = expit(logit); log(π + (1−π)NB(0)) for x = 0, log(1−π) + log NB(x)
    otherwise. scipy.stats.nbinom.logpmf(x, θ, θ/(θ+μ)) is stored beside it: it agrees to
    1e-9 except where p = θ/(θ+μ) rounds towards 1 (μ/θ < ~1e-8), where its log1p(−p) loses
    digits (8e-4 at μ = 1e-8, θ = 1e6) and where its log-gamma difference cancels (θ = 1e10)."""
    import mpmath
    from scipy import special, stats
    mpmath.mp.dps = 50
    rows = []
    for x in [0.0, 1.0, 4.0, 37.0, 1000.0, 2.5]:
        for mu in [1e-8, 0.05, 1.0, 12.0, 3e4]:
            for theta in [1e-6, 0.1, 2.0, 50.0, 1e6, 1e10]:
                for logit in [-12.0, -1.0, 0.0, 2.5]:
                    X, M, T, L = (mpmath.mpf(v) for v in (x, mu, theta, logit))
                    lnb = (mpmath.loggamma(X + T) - mpmath.loggamma(T) - mpmath.loggamma(X + 1)
                           + T * mpmath.log(T / (T + M)) + X * mpmath.log(M / (T + M)))
                    pi = 1 / (1 + mpmath.exp(-L))
                    ll = mpmath.log(pi + (1 - pi) * mpmath.exp(lnb)) if x == 0 else mpmath.log(1 - pi) + lnb
                    sp_lnb = stats.nbinom.logpmf(x, theta, theta / (theta + mu)) if x.is_integer() else np.nan
                    sp_ll = (np.logaddexp(special.log_expit(logit), special.log_expit(-logit) + sp_lnb) if x == 0
                             else special.log_expit(-logit) + sp_lnb)
                    rows.append([x, mu, theta, logit, float(-ll), float(-sp_ll) if np.isfinite(sp_ll) else None])
    dump("zinb.json", {"columns": ["x", "mu", "theta", "logit", "nll", "scipy_nll"], "rows": rows})


def adam_fixture():
    """torch.optim.Adam / AdamW (foreach=False) on fixed gradients: the parameters after
    each of 6 steps, for plain Adam, Adam with L2 weight decay, AdamW, GAN betas, and two
    parameter groups with their own learning rate and weight decay."""
    import torch
    g = torch.Generator().manual_seed(0)
    p0 = torch.randn(37, generator=g)
    grads = [torch.randn(37, generator=g) * s for s in (1.0, 0.1, 3.0, 1e-3, 1.0, 0.5)]
    cases = []
    for kind, lr, betas, wd in [("adam", 1e-2, (0.9, 0.999), 0.0), ("adam", 3e-3, (0.9, 0.999), 0.01),
                                ("adamw", 1e-2, (0.9, 0.95), 0.05), ("adam", 9e-5, (0.0, 0.9), 0.0)]:
        p = p0.clone().requires_grad_(True)
        cls = torch.optim.AdamW if kind == "adamw" else torch.optim.Adam
        opt = cls([p], lr=lr, betas=betas, weight_decay=wd, eps=1e-8, foreach=False)
        steps = []
        for gr in grads:
            opt.zero_grad()
            p.grad = gr.clone()
            opt.step()
            steps.append(f(p.detach().numpy()))
        cases.append({"kind": kind, "lr": lr, "beta1": betas[0], "beta2": betas[1], "weight_decay": wd, "steps": steps})
    # parameter groups as CICL's reference code sets them: the first 20 values ("encoder")
    # at 10x the base rate with L2 weight decay 1e-3, the rest ("proj") at the base rate
    enc, head = p0[:20].clone().requires_grad_(True), p0[20:].clone().requires_grad_(True)
    opt = torch.optim.Adam([{"params": [enc], "lr": 1e-4, "weight_decay": 1e-3}, {"params": [head]}], lr=1e-5, foreach=False)
    steps = []
    for gr in grads:
        opt.zero_grad()
        enc.grad, head.grad = gr[:20].clone(), gr[20:].clone()
        opt.step()
        steps.append(f(torch.cat([enc, head]).detach().numpy()))
    groups = {"lr": 1e-5, "split": 20, "lr_scale": 10.0, "weight_decay": 1e-3, "steps": steps}
    dump("adam.json", {"p0": f(p0.numpy()), "grads": [f(x.numpy()) for x in grads], "cases": cases, "groups": groups})


def scanpy_pcs(name):
    """A shared set and scanpy's 20 PCs of it (normalize_total, log1p, 2000 HVGs, scale)."""
    a = sc.read_h5ad(os.path.join(DATA, name, name + ".h5ad"))
    sc.pp.normalize_total(a, target_sum=1e4)
    sc.pp.log1p(a)
    sc.pp.highly_variable_genes(a, n_top_genes=2000)
    a = a[:, a.var.highly_variable].copy()
    sc.pp.scale(a, max_value=10)
    sc.tl.pca(a, n_comps=20, random_state=0)
    return a, np.ascontiguousarray(a.obsm["X_pca"], dtype=np.float32)


def harmony_fixture():
    """harmonypy (pinned in scripts/constraints.txt), defaults, on: separated blobs in
    three shifted batches (where Harmony's answer does not depend on its random draws),
    and scanpy's 20 PCs of the shared sets whose obs['batch'] holds donors (where it does:
    `seed_agreement` is the lowest per-dimension correlation between harmonypy's
    corrections with seeds 1 and 2 and with seed 0, the bar another implementation's
    draws can be held to)."""
    import harmonypy
    import pandas as pd

    def mincorr(a, z):
        return float(min(np.corrcoef(a[:, j], z[:, j])[0, 1] for j in range(a.shape[1])))

    inputs = []
    rng = np.random.default_rng(0)
    centres, shifts = rng.normal(0, 6, size=(4, 10)), rng.normal(0, 2, size=(3, 10))
    x, b = [], []
    for t in range(4):
        for k in range(3):
            n = 50 + 25 * ((t + k) % 3)
            x.append(centres[t] + shifts[k] + rng.normal(0, 1, size=(n, 10)))
            b += [str(k)] * n
    inputs.append(("blobs", np.vstack(x).astype(np.float32), b))
    for name in ("baron_mouse", "cider_pancreas"):
        a, pcs = scanpy_pcs(name)
        inputs.append((name, pcs, a.obs["batch"].astype(str).tolist()))
    cases = []
    for name, x, b in inputs:
        batch = pd.Categorical(b)
        meta = pd.DataFrame({"batch": batch})
        runs = [harmonypy.run_harmony(x, meta, "batch", random_state=rs, verbose=False) for rs in (0, 1, 2)]
        cases.append({"name": name, "dims": int(x.shape[1]), "x": f(x), "batch": batch.codes.astype(int).tolist(),
                      "corrected": f(runs[0].Z_corr), "n_clusters": int(runs[0].K),
                      "seed_agreement": min(mincorr(r.Z_corr, runs[0].Z_corr) for r in runs[1:]),
                      "input_agreement": mincorr(x, runs[0].Z_corr)})
    dump("harmony.json", cases)


def batch_metrics_fixture():
    """scib-metrics' batch metrics (scib-metrics==0.5.10 with jax, not in requirements.txt:
    `pip install scib-metrics==0.5.10` to regenerate) on an exact 90-NN graph (scikit-learn,
    each cell its own first neighbour): silhouette_batch, ilisi_knn and clisi_knn
    (perplexity 30, scaled), graph_connectivity. Inputs: blobs of 4 types in 3 batches,
    shifted apart (batches unmixed) and not (mixed), and scanpy's 20 PCs of cider_pancreas
    (6 donors)."""
    from scib_metrics import clisi_knn, graph_connectivity, ilisi_knn, silhouette_batch
    from scib_metrics.nearest_neighbors import NeighborsResults
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(1)
    centres, shifts = rng.normal(0, 6, size=(4, 10)), rng.normal(0, 3, size=(3, 10))
    inputs = []
    for name, shift in (("blobs_unmixed", 1.0), ("blobs_mixed", 0.0)):
        x, t, b = [], [], []
        for ti in range(4):
            for k in range(3):
                n = 40 + 20 * ((ti + k) % 3)
                x.append(centres[ti] + shift * shifts[k] + rng.normal(0, 1, size=(n, 10)))
                t += [f"type{ti}"] * n
                b += [f"b{k}"] * n
        inputs.append((name, np.vstack(x).astype(np.float32), t, b))
    a, pcs = scanpy_pcs("cider_pancreas")
    inputs.append(("cider_pancreas", pcs, a.obs["cell_type"].astype(str).tolist(), a.obs["batch"].astype(str).tolist()))
    cases = []
    for name, x, t, b in inputs:
        dist, idx = NearestNeighbors(n_neighbors=90).fit(x.astype(np.float64)).kneighbors(x.astype(np.float64))
        nn = NeighborsResults(indices=idx, distances=dist)
        t, b = np.array(t), np.array(b)
        cases.append({"name": name, "dims": int(x.shape[1]), "x": f(x), "labels": t.tolist(), "batches": b.tolist(),
                      "silhouette_batch": float(silhouette_batch(x, t, b)), "ilisi": float(ilisi_knn(nn, b)),
                      "clisi": float(clisi_knn(nn, t)), "graph_connectivity": float(graph_connectivity(nn, t))})
        print(name, {k: v for k, v in cases[-1].items() if k not in ("x", "labels", "batches")})
    dump("batch_metrics.json", cases)


GROUPS = {
    "adam": adam_fixture,
    "zinb": zinb_fixture,
    "robust": robust_fixture,
    "metrics": metric_fixtures,
    "preprocess": lambda: dump("preprocess.json", [prep_fixture("pollen_top1000hvg", 500), prep_fixture("10x_pbmc_top2000", 1000),
                                                   prep_fixture("baron_mouse", 2000)]),
    "kmeans": pca_kmeans_fixture,
    "tenx": tenx_h5_fixture,
    "harmony": harmony_fixture,
    "batch": batch_metrics_fixture,
    "hvg_batch": lambda: dump("hvg_batch.json", [hvg_batch_fixture("baron_mouse", 1000), hvg_batch_fixture("cider_pancreas", 1000)]),
    "graph": lambda: dump("graph.json", [graph_fixture("pollen_top1000hvg"), graph_fixture("darmanis_top1000hvg"),
                                         graph_fixture("baron_mouse")]),
}

if __name__ == "__main__":
    # `make_fixtures.py` regenerates everything; `make_fixtures.py graph kmeans` only those.
    for group in sys.argv[1:] or list(GROUPS):
        GROUPS[group]()
