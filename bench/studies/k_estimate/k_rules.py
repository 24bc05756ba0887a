#!/usr/bin/env python
"""Issue 39 item 4, exploration: label-free rules for k on the consensus embedding of the
members' runs that bench/generalization.py leaves under target/generalization/runs (run its
`simulate` and `members` first). Per (set, seed) it caches the evidence of every rule, then
scores each rule against the true number of types (within max(1, 20 %)) and the ARI of
K-means with the estimated k, against scanpy's Leiden at resolution 1; a rule with a free
parameter gets it chosen leave-one-dataset-out.

Rules measured:
- leiden:r       Leiden communities at resolution r on the 15-NN graph (today's default, r=0.2)
- plateau        the k >= 2 that Leiden keeps over the widest span of log-resolution
- agree          the k whose K-means partitions of the members' embeddings agree most
                 (mean pairwise ARI between members)
- eigengap       the largest gap among the smallest eigenvalues of the kNN graph's
                 normalised Laplacian
- stab:r         Leiden on two halves-overlapping 80 % subsamples at resolution r, the
                 resolution whose partitions agree most on the shared cells

  .venv/bin/python bench/studies/k_estimate/k_rules.py [--jobs 2]

Writes bench/studies/k_estimate/results/k_rules.json.
"""
import argparse
import concurrent.futures as cf
import itertools
import json
import os
import statistics
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import generalization as g  # noqa: E402

CACHE = os.path.join(g.WORK, "k_rules")
OUT = os.path.join(HERE, "results", "k_rules.json")
GRID = list(np.round(np.exp(np.linspace(np.log(0.02), np.log(4.0), 41)), 4))
K_MAX = 30


def knn_graph(x, seed):
    import anndata
    import scanpy as sc
    n = len(x)
    ad = anndata.AnnData(np.zeros((n, 1), dtype=np.float32))
    ad.obsm["X_c"] = x.astype(np.float32)
    sc.pp.neighbors(ad, n_neighbors=min(15, n - 1), use_rep="X_c", random_state=seed)
    return ad.obsp["connectivities"].tocsr()


def igraph_of(conn):
    import igraph as ig
    c = conn.tocoo()
    m = c.row < c.col
    return ig.Graph(n=conn.shape[0], edges=np.c_[c.row[m], c.col[m]], edge_attrs={"weight": c.data[m]})


def leiden(gr, r, seed):
    import leidenalg
    p = leidenalg.find_partition(gr, leidenalg.RBConfigurationVertexPartition, weights="weight",
                                 resolution_parameter=r, n_iterations=2, seed=seed)
    return np.array(p.membership)


def evidence(name, seed):
    path = os.path.join(CACHE, f"{name}_s{seed}.json")
    if os.path.exists(path):
        return json.load(open(path))
    from scipy.sparse import csgraph
    from scipy.sparse.linalg import eigsh
    run = g.load_run(name, seed)
    x, truth = run["x"], run["truth"]
    n = len(x)
    kmax = min(K_MAX, n // 3)
    conn = knn_graph(x, seed)
    ev = {"n": n, "true_k": len(set(truth))}
    # Leiden over the resolution grid
    gr = igraph_of(conn)
    ev["leiden_k"] = [int(len(set(leiden(gr, r, seed)))) for r in GRID]
    # K-means of the concatenation for every k (the ARI any rule's k gets) and of each member
    ev["ari_k"], agree = {}, {}
    rng = np.random.RandomState(seed)
    sub = rng.choice(n, min(n, 2000), replace=False)
    blocks = {m: x[:, a:b] for m, (a, b) in run["blocks"].items()}
    for k in range(2, kmax + 1):
        ev["ari_k"][k] = g.ari(truth, g.kmeans(x, k, seed, n_init=4))
        parts = [g.kmeans(b[sub], k, seed, n_init=2) for b in blocks.values()]
        agree[k] = float(np.mean([g.ari(p, q) for p, q in itertools.combinations(parts, 2)]))
    ev["agree"] = agree
    # eigengap of the normalised Laplacian
    lap = csgraph.laplacian(conn, normed=True)
    nev = min(kmax + 2, n - 2)
    vals = np.sort(eigsh(lap, k=nev, which="SM", tol=1e-4, maxiter=5000)[0]) if n > 50 else np.sort(np.linalg.eigvalsh(lap.toarray()))[:nev]
    ev["eig"] = [float(v) for v in vals]
    # subsample stability per resolution (two 80 % subsamples, ARI on the shared cells)
    reps = []
    for rep in range(3):
        rs = np.random.RandomState(1000 * seed + rep)
        a = np.sort(rs.choice(n, int(0.8 * n), replace=False))
        b = np.sort(rs.choice(n, int(0.8 * n), replace=False))
        shared = np.intersect1d(a, b)
        reps.append((igraph_of(knn_graph(x[a], seed)), igraph_of(knn_graph(x[b], seed)), np.searchsorted(a, shared), np.searchsorted(b, shared)))
    stab = []
    for r in GRID[::4]:
        stab.append(float(np.mean([g.ari(leiden(ga, r, seed)[ia], leiden(gb, r, seed)[ib]) for ga, gb, ia, ib in reps])))
    ev["stab"] = stab
    os.makedirs(CACHE, exist_ok=True)
    json.dump(ev, open(path, "w"))
    return ev


# ---------------------------------------------------------------- rules


def clamp(k, ev):
    return int(min(max(k, 2), min(K_MAX, ev["n"] // 3)))


def rule_leiden(i):
    return lambda ev: clamp(ev["leiden_k"][i], ev)


def rule_plateau(min_res_idx=0):
    def f(ev):
        runs = {}
        ks = ev["leiden_k"][min_res_idx:]
        for k, grp in itertools.groupby(ks):
            n = len(list(grp))
            if k >= 2:
                runs[k] = max(runs.get(k, 0), n)
        if not runs:
            return clamp(2, ev)
        best = max(runs.values())
        return clamp(max(k for k, n in runs.items() if n == best), ev)
    return f


def rule_agree(ev):
    a = {int(k): v for k, v in ev["agree"].items()}
    return clamp(max(a, key=a.get), ev)


def rule_agree_tol(tol):
    def f(ev):
        a = {int(k): v for k, v in ev["agree"].items()}
        top = max(a.values())
        return clamp(max(k for k, v in a.items() if v >= top - tol), ev)
    return f


def rule_eigengap(ev):
    v = ev["eig"]
    gaps = {k: v[k] - v[k - 1] for k in range(2, len(v))}
    return clamp(max(gaps, key=gaps.get), ev)


def rule_stab(tol):
    def f(ev):
        s = ev["stab"]
        ks = ev["leiden_k"][::4]
        ok = [i for i in range(len(s)) if ks[i] >= 2]
        if not ok:
            return clamp(2, ev)
        top = max(s[i] for i in ok)
        i = max(i for i in ok if s[i] >= top - tol)
        return clamp(ks[i], ev)
    return f


def rule_median(*fs):
    return lambda ev: clamp(int(round(statistics.median(f(ev) for f in fs))), ev)


def rules():
    out = {}
    for i, r in enumerate(GRID):
        out[f"leiden:{r}"] = rule_leiden(i)
    out["plateau"] = rule_plateau()
    for i in (5, 10, 15):
        out[f"plateau_from:{GRID[i]}"] = rule_plateau(i)
    out["agree"] = rule_agree
    for t in (0.01, 0.02, 0.05, 0.1):
        out[f"agree_tol:{t}"] = rule_agree_tol(t)
    out["eigengap"] = rule_eigengap
    for t in (0.0, 0.02, 0.05, 0.1):
        out[f"stab_tol:{t}"] = rule_stab(t)
    out["median3"] = rule_median(rule_plateau(), rule_agree, rule_eigengap)
    return out


def score(evs, scanpy):
    rs = rules()
    per = {}
    for s, runs in evs.items():
        true_k = runs[0]["true_k"]
        per[s] = {}
        for name, f in rs.items():
            ks = [f(ev) for ev in runs]
            aris = [ev["ari_k"][str(k)] if str(k) in ev["ari_k"] else ev["ari_k"][k] for ev, k in zip(runs, ks)]
            km = statistics.median(ks)
            per[s][name] = {"ks": ks, "within": g.within(km, true_k), "ari": statistics.median(aris)}
    fams = {}
    for n in rs:
        fams.setdefault(n.split(":")[0], []).append(n)
    sets = list(per)

    def frac(rows, key):
        real = [s for s in rows if s not in g.SIMULATED]
        sim = [s for s in rows if s in g.SIMULATED]
        sp = [s for s in rows if s in scanpy]
        return {"within_real": round(sum(rows[s]["within"] for s in real) / len(real), 3),
                "within_simulated": round(sum(rows[s]["within"] for s in sim) / max(len(sim), 1), 3),
                "ari_ge_scanpy": round(sum(rows[s]["ari"] >= statistics.median(v["ari"] for v in scanpy[s]) for s in sp) / len(sp), 3),
                "mean_ari": round(statistics.mean(rows[s]["ari"] for s in rows), 4)}

    summary = {}
    for fam, vs in fams.items():
        rows = {}
        for s in sets:
            if len(vs) > 1:
                others = [o for o in sets if o != s]
                v = max(vs, key=lambda v: (sum(per[o][v]["within"] for o in others) + sum(
                    per[o][v]["ari"] >= statistics.median(x["ari"] for x in scanpy[o]) for o in others if o in scanpy),
                    statistics.mean(per[o][v]["ari"] for o in others)))
            else:
                v = vs[0]
            rows[s] = {"chosen": v, **per[s][v]}
        summary[fam + (" (leave-one-out)" if len(vs) > 1 else "")] = {**frac(rows, None), "per_set": rows}
    sp_rows = {s: {"within": g.within(statistics.median(v["k"] for v in scanpy[s]), evs[s][0]["true_k"]),
                   "ari": statistics.median(v["ari"] for v in scanpy[s])} for s in sets if s in scanpy}
    summary["scanpy_leiden_res1"] = frac(sp_rows, None)
    return per, summary


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args()
    jobs = [(s, seed) for s in g.all_sets() for seed in g.SEEDS if os.path.exists(os.path.join(g.WORK, "runs", s, f"s{seed}", "run.json"))]
    with cf.ProcessPoolExecutor(a.jobs) as ex:
        evs_flat = list(ex.map(evidence, *zip(*jobs)))
    evs = {}
    for (s, _), ev in zip(jobs, evs_flat):
        evs.setdefault(s, []).append(ev)
    per, summary = score(evs, g.scanpy_results())
    for n, v in summary.items():
        print(f"{n:32s}", {k: x for k, x in v.items() if k != "per_set"})
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    json.dump({"grid": GRID, "summary": summary, "per_set": per}, open(OUT, "w"), indent=1)


if __name__ == "__main__":
    main()
