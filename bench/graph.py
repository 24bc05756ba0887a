#!/usr/bin/env python
"""kNN graph + Leiden: scdeep vs scanpy (pp.neighbors + tl.leiden), same embedding.

  .venv/bin/python bench/graph.py [--sizes 50000,200000] [--threads 1]

The inputs are simulated embeddings (20 Gaussian cell types in 50 dimensions, the shape
of a PCA); both tools read the same .npy and use 15 neighbours (UMAP weights) and
resolution 1.0. Each side runs in its own process under /usr/bin/time (wall, peak RSS).
scanpy uses pynndescent above 4096 cells; scdeep uses exact kNN up to 20 000 cells and an
inverted file (K-means lists, matrix products) above. scanpy runs Leiden with
flavor="igraph" (its future default; the leidenalg flavor fails here with scipy 1.17:
csr_array has no getnnz, which the script patches back for pp.neighbors). Writes bench/results/graph.json.
"""
import argparse
import json
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_benchmarks import BIN, RESULTS, measure  # noqa: E402

SCANPY = r"""
import sys, time, json, numpy as np, anndata as ad, scanpy as sc, scipy.sparse as sp
# scanpy 1.11.5 calls csr_array.getnnz, which scipy 1.17 removed (pynndescent path, > 4096 cells)
if not hasattr(sp.csr_array, "getnnz"):
    sp.csr_array.getnnz = lambda self, axis=None: np.diff(self.indptr) if axis == 1 else self.nnz
x = np.load(sys.argv[1]); out = sys.argv[2]
a = ad.AnnData(np.zeros((x.shape[0], 1), dtype=np.float32)); a.obsm["X_emb"] = x
t = time.perf_counter(); sc.pp.neighbors(a, n_neighbors=15, use_rep="X_emb", random_state=0); t_knn = time.perf_counter() - t
t = time.perf_counter(); sc.tl.leiden(a, resolution=1.0, random_state=0, flavor="igraph", n_iterations=-1, directed=False); t_leiden = time.perf_counter() - t
np.savetxt(out, a.obs["leiden"].astype(int).to_numpy(), fmt="%d")
print(json.dumps({"knn_s": t_knn, "leiden_s": t_leiden}))
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="50000,200000")
    ap.add_argument("--threads", default="1")
    a = ap.parse_args()
    from sklearn.metrics import adjusted_rand_score
    env = dict(os.environ, OMP_NUM_THREADS=a.threads, MKL_NUM_THREADS=a.threads, NUMBA_NUM_THREADS=a.threads, OPENBLAS_NUM_THREADS=a.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in [int(s) for s in a.sizes.split(",")]:
            rng = np.random.default_rng(0)
            centers = rng.normal(scale=2.0, size=(20, 50))
            truth = rng.integers(0, 20, n)
            x = (centers[truth] + rng.normal(size=(n, 50))).astype(np.float32)
            npy = os.path.join(tmp, f"emb{n}.npy")
            np.save(npy, x)
            lab_s = os.path.join(tmp, f"scanpy{n}.txt")
            wall_s, rss_s, out = measure([sys.executable, "-c", SCANPY, npy, lab_s], env)
            stages = json.loads(out.strip().splitlines()[-1])
            lab_d = os.path.join(tmp, f"scdeep{n}.tsv")
            wall_d, rss_d, _ = measure([BIN, "cluster", "-q", "--embedding", npy, "--cluster", "leiden", "--resolution", "1.0",
                                        "--threads", a.threads, "--device", "cpu", "--out", lab_d], env)
            ls = np.loadtxt(lab_s, dtype=int)
            ld = np.array([int(l.split("\t")[1]) for l in open(lab_d).read().splitlines()[1:]])
            r = {"n_cells": n, "threads": int(a.threads),
                 "scanpy": {"wall_s": wall_s, "peak_rss_mb": round(rss_s, 1), **stages, "n_clusters": int(len(set(ls))), "ari_truth": adjusted_rand_score(truth, ls)},
                 "scdeep": {"wall_s": wall_d, "peak_rss_mb": round(rss_d, 1), "n_clusters": int(len(set(ld))), "ari_truth": adjusted_rand_score(truth, ld)},
                 "speedup": round(wall_s / wall_d, 2), "ari_between": adjusted_rand_score(ls, ld)}
            print(json.dumps(r), file=sys.stderr)
            rows.append(r)
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, "graph.json")
    with open(path, "w") as f:
        json.dump({"benchmark": "knn + leiden vs scanpy", "runs": rows}, f, indent=1)
    print("wrote", path, file=sys.stderr)


if __name__ == "__main__":
    main()
