#!/usr/bin/env python
"""Atlas scale: scdeep and scanpy side by side from 10k to 1M simulated cells (issue 22).

  .venv/bin/python bench/scale.py                       # every size (hours on 2 cores)
  .venv/bin/python bench/scale.py --sizes 10000,30000,100000 --no-wide

Data: `scdeep simulate` (8 groups of unequal size, 2000 genes; with --wide also 100k and
300k cells x 20 000 genes of which most are not differentially expressed), written once
to target/scale/ as .h5ad without true counts. Runs per size, each in its own process
under /usr/bin/time (wall time, peak RSS), all with BENCH_THREADS threads (default 1):
  scdeep  run --method pca -k 8 --cluster kmeans
  scdeep  run --method pca --cluster leiden (no k; resolution 1), default kNN
  scdeep  (20 000 genes) K-means again with the input read whole (--stream-min-nnz none)
  scdeep  the same with exact kNN (up to --exact-max cells)
  scdeep  run --method scmae -k 8 --epochs 1 (seconds per epoch; up to --scmae-max cells)
  scanpy  normalize_total, log1p, HVG (seurat), scale, PCA (50), neighbors, Leiden;
          scikit-learn K-means (k 8) on the PCA (up to --scanpy-max cells)
Per stage times come from run.json (scdeep) and from the script (scanpy); ARI of every
partition against the simulated groups. Fitted exponents of time against cells (log-log
least squares, sizes 30k-300k) per stage. Writes bench/results/scale.json (merged with
what an earlier run measured at other sizes).
"""
import argparse
import json
import math
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_benchmarks import BIN, PY, ROOT, TARGET, measure  # noqa: E402

RESULTS = os.path.join(ROOT, "bench", "results", "scale.json")
WORK = os.path.join(TARGET, "scale")
THREADS = os.environ.get("BENCH_THREADS", "1")
ENV = dict(os.environ, OMP_NUM_THREADS=THREADS, OPENBLAS_NUM_THREADS=THREADS, MKL_NUM_THREADS=THREADS, NUMBA_NUM_THREADS=THREADS)
GROUPS = "0.25,0.2,0.15,0.12,0.1,0.08,0.06,0.04"
# Library sizes near 10x data (~5 000 counts, ~220 non-zeros per cell of 2000 genes).
SIM = {"lib_loc": 8.5, "de_prob": 0.2, "de_fac_loc": 0.5}

SCANPY = r"""
import sys, time, json, os
import numpy as np, scanpy as sc
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score as ari
import scipy.sparse as sp
# scanpy 1.11.5 calls csr_array.getnnz, which scipy 1.17 removed (as in bench/graph.py)
if not hasattr(sp.csr_array, "getnnz"):
    sp.csr_array.getnnz = lambda self, axis=None: np.diff(self.indptr) if axis == 1 else self.nnz
path, k = sys.argv[1], int(sys.argv[2])
t = {}
t0 = time.time(); a = sc.read_h5ad(path); t["read"] = time.time() - t0
truth = a.obs["group"].astype(str).values
t0 = time.time()
sc.pp.normalize_total(a); sc.pp.log1p(a)
sc.pp.highly_variable_genes(a, flavor="seurat", n_top_genes=2000, subset=True)
sc.pp.scale(a, max_value=10)
t["preprocess"] = time.time() - t0
t0 = time.time(); sc.pp.pca(a, n_comps=50, random_state=0); t["pca"] = time.time() - t0
t0 = time.time(); sc.pp.neighbors(a, n_neighbors=15, random_state=0); t["neighbors"] = time.time() - t0
t0 = time.time(); sc.tl.leiden(a, resolution=1.0, random_state=0, flavor="igraph", n_iterations=-1, directed=False); t["leiden"] = time.time() - t0
t0 = time.time(); km = KMeans(n_clusters=k, n_init=10, random_state=0).fit(a.obsm["X_pca"]); t["kmeans"] = time.time() - t0
print(json.dumps({"times_s": t, "ari_leiden": ari(truth, a.obs["leiden"].values), "leiden_clusters": int(a.obs["leiden"].nunique()),
                  "ari_kmeans": ari(truth, km.labels_)}))
"""


def simulate(n, genes):
    os.makedirs(WORK, exist_ok=True)
    path = os.path.join(WORK, f"sim_{n}x{genes}.h5ad")
    if os.path.exists(path):
        return path, None
    sim = dict(SIM)
    if genes > 2000:
        sim["de_prob"] = SIM["de_prob"] * 2000 / genes  # as many DE genes as with 2000
    pj = os.path.join(WORK, f"sim_{genes}.json")
    with open(pj, "w") as f:
        json.dump(sim, f)
    wall, rss, _ = measure([BIN, "simulate", "-q", "--out", path, "--params", pj, "--n-cells", str(n), "--n-genes", str(genes),
                            "--groups", GROUPS, "--seed", "1", "--no-true-counts"], env=ENV)
    return path, {"seconds": wall, "peak_rss_mb": round(rss)}


def csr_bytes(path):
    import h5py

    with h5py.File(path, "r") as f:
        x = f["X"]
        nnz, n = x["data"].shape[0], x["indptr"].shape[0] - 1
    return nnz * 8 + (n + 1) * 8, nnz  # f32 values + u32 indices, usize offsets (scdeep's CSR)


def scdeep(path, out, *args):
    cmd = [BIN, "run", "-q", "-i", path, "--label-key", "group", "--threads", THREADS, "--no-h5ad", "--overwrite", "--out", out, *args]
    wall, rss, _ = measure(cmd, env=ENV)
    run = json.load(open(os.path.join(out, "run.json")))
    m = json.load(open(os.path.join(out, "metrics.json")))
    m = m.get("scores", m)
    r = {"wall_s": round(wall, 2), "peak_rss_mb": round(rss), "stages_s": {k: round(v, 2) for k, v in run["timings_s"].items()},
         "ari": m.get("ari"), "n_clusters": run.get("n_clusters")}
    knn = run.get("clustering", {}).get("knn")
    if knn:
        r["knn"] = knn
    return r


def exponent(points):
    """Least-squares slope of log(time) on log(cells)."""
    pts = [(math.log(n), math.log(t)) for n, t in points if t and t > 0]
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    return round(sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx, 3) if sxx else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,30000,100000,300000,1000000")
    ap.add_argument("--no-wide", action="store_true", help="skip the 20 000-gene inputs")
    ap.add_argument("--wide-only", action="store_true", help="only the 20 000-gene inputs (of the sizes given)")
    ap.add_argument("--exact-max", type=int, default=100_000, help="largest size run with exact kNN too")
    ap.add_argument("--scmae-max", type=int, default=1_000_000)
    ap.add_argument("--scanpy-max", type=int, default=300_000)
    a = ap.parse_args()
    cases = [(int(n), 2000) for n in a.sizes.split(",")]
    if not a.no_wide:
        cases += [(n, 20000) for n in (100_000, 300_000) if n <= max(c[0] for c in cases)]
    if a.wide_only:
        cases = [c for c in cases if c[1] > 2000]
    res = json.load(open(RESULTS)) if os.path.exists(RESULTS) else {}
    res.setdefault("runs", {})
    res["threads"] = int(THREADS)
    res["simulation"] = {"groups": GROUPS, "params": SIM, "seed": 1}
    for n, genes in cases:
        key = f"{n}x{genes}"
        print(f"== {key}", flush=True)
        path, sim = simulate(n, genes)
        r = res["runs"].get(key, {})
        if sim:
            r["simulate"] = sim
        r["csr_bytes"], r["nnz"] = csr_bytes(path)
        out = os.path.join(WORK, "out")
        r["pca_kmeans"] = scdeep(path, out, "--method", "pca", "-k", "8", "--cluster", "kmeans")
        r["pca_leiden"] = scdeep(path, out, "--method", "pca", "--cluster", "leiden", "--resolution", "1")
        if genes > 2000:
            # the wide input is preprocessed in row blocks by default; read whole for comparison
            r["pca_kmeans_read_whole"] = scdeep(path, out, "--method", "pca", "-k", "8", "--cluster", "kmeans", "--stream-min-nnz", "none")
        if n <= a.exact_max:
            r["pca_leiden_exact_knn"] = scdeep(path, out, "--method", "pca", "--cluster", "leiden", "--resolution", "1", "--set", 'cluster.knn="exact"')
        if n <= a.scmae_max and genes == 2000:
            s = scdeep(path, out, "--method", "scmae", "-k", "8", "--epochs", "1")
            s["seconds_per_epoch"] = s["stages_s"].get("train")
            r["scmae_1_epoch"] = s
        if n <= a.scanpy_max:
            try:
                wall, rss, stdout = measure([PY, "-c", SCANPY, path, "8"], env=ENV)
                sp = json.loads(stdout.strip().splitlines()[-1])
                sp.update({"wall_s": round(wall, 2), "peak_rss_mb": round(rss)})
                r["scanpy"] = sp
                r["ratio_scdeep_pca_leiden_to_scanpy_wall"] = round(r["pca_leiden"]["wall_s"] / wall, 3)
            except RuntimeError as e:
                r["scanpy"] = {"error": str(e)[-500:]}
        r["peak_rss_over_csr"] = {k: round(v["peak_rss_mb"] * 2**20 / r["csr_bytes"], 2) for k, v in r.items() if isinstance(v, dict) and "peak_rss_mb" in v and k != "simulate"}
        res["runs"][key] = r
        print(json.dumps(r, indent=1), flush=True)
        with open(RESULTS, "w") as f:
            json.dump(res, f, indent=1)
    # exponents per stage between 30k and 300k cells (2000 genes)
    exps = {}
    for run in ("pca_kmeans", "pca_leiden", "scmae_1_epoch"):
        stages = set()
        for key, r in res["runs"].items():
            if key.endswith("x2000") and run in r:
                stages |= set(r[run]["stages_s"])
        for st in sorted(stages):
            pts = [(int(key.split("x")[0]), r[run]["stages_s"].get(st)) for key, r in res["runs"].items()
                   if key.endswith("x2000") and run in r and 30_000 <= int(key.split("x")[0]) <= 300_000]
            exps[f"{run}.{st}"] = exponent(pts)
    res["exponents_30k_300k"] = exps
    with open(RESULTS, "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(exps, indent=1))


if __name__ == "__main__":
    main()
