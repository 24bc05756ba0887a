#!/usr/bin/env python
"""Issue 40: batches. Does the correction mix the batches and keep the cell types?

  .venv/bin/python bench/batch.py run [--jobs 2] [--arms pca,pca+harmony,...]
  .venv/bin/python bench/batch.py report          # bench/results/batch.json

Data: the shared sets with obs['batch'] (baron_mouse: 2 donors; kolodziejczyk: 2
batches; cider_pancreas: 6 donors of two species) and simulated sets (`scdeep simulate`,
3 batches of 700 cells, 5 types) whose batches differ by nothing (`sim_none`: the cost of
correcting where there is nothing to correct), a weak, a medium and a strong effect
(splatter's batch.facLoc / facScale 0.05, 0.15, 0.3).

Arms, each with k from the labels and 5 seeds:
- scdeep: `scdeep run --batch-key batch` with `--batch-correction none|harmony`, for PCA
  and for the default (the consensus);
- scanpy (normalize_total, log1p, 2000 HVGs, scale, 50 PCs) alone and followed by
  harmonypy (`run_harmony(..., random_state=seed)`), then K-means (10 starts, the seed).

Every arm is scored by the same code: ARI / NMI against the labels (scikit-learn) and the
batch metrics of the embedding the cells were clustered on (`scdeep evaluate --batches`:
scIB's batch ASW, iLISI, cLISI, graph connectivity, checked against scib-metrics in
core/tests/reference.rs). scVI is not measured here: scvi-tools is not installed in the
benchmark venv (see the closing note of issue 40).
Medians over the seeds with their ranges. Run folders under target/batch/ are reused.
"""
import argparse
import concurrent.futures as cf
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
BIN = os.environ.get("SCDEEP_BIN", os.path.join(TARGET, "release", "scdeep"))
DATA = os.path.join(ROOT, "..", "shared", "data")
WORK = os.path.join(TARGET, "batch")
OUT = os.path.join(ROOT, "bench", "results", "batch.json")
SEEDS = range(5)
REAL = ["baron_mouse", "kolodziejczyk", "cider_pancreas"]
# batch effect (splatter's batch.facLoc = batch.facScale) of each simulated set
SIMULATED = {"sim_none": 0.0, "sim_weak": 0.05, "sim_medium": 0.15, "sim_strong": 0.3}
ARMS = ["pca", "pca+harmony", "default", "default+harmony", "scanpy", "scanpy+harmonypy"]


def input_of(name):
    if name in SIMULATED:
        return os.path.join(WORK, "data", f"{name}.h5ad"), "group"
    return os.path.join(DATA, name, f"{name}.h5ad"), "cell_type"


def simulate(name):
    path, _ = input_of(name)
    if os.path.exists(path):
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    f = SIMULATED[name]
    params = os.path.join(WORK, "data", f"{name}.json")
    json.dump({"batch_fac_loc": f, "batch_fac_scale": f}, open(params, "w"))
    subprocess.run([BIN, "simulate", "-q", "--n-cells", "2100", "--n-genes", "2000", "--groups", "0.35,0.25,0.2,0.12,0.08",
                    "--batches", "700,700,700", "--de-prob", "0.1", "--seed", "7", "--params", params, "--no-true-counts",
                    "-o", path], check=True)


def scdeep_arm(name, arm, seed):
    out = os.path.join(WORK, "runs", name, arm, f"s{seed}")
    if os.path.exists(os.path.join(out, "wall.json")):
        return json.load(open(os.path.join(out, "wall.json")))
    h5, key = input_of(name)
    method = "pca" if arm.startswith("pca") else "consensus"
    cmd = [BIN, "run", "-q", "-i", h5, "--label-key", key, "--batch-key", "batch", "-m", method,
           "--batch-correction", "harmony" if arm.endswith("harmony") else "none", "--seed", str(seed), "--threads", "1",
           "--device", "cpu", "--no-h5ad", "--overwrite", "--out", out]
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        return {"error": p.stderr.strip()[-400:]}
    r = {"wall_s": round(time.perf_counter() - t, 2)}
    json.dump(r, open(os.path.join(out, "wall.json"), "w"))
    return r


def scanpy_arms(name, seed):
    """scanpy's PCA and harmonypy's correction of it, K-means with k from the labels."""
    out = os.path.join(WORK, "runs", name, "scanpy", f"s{seed}")
    if os.path.exists(os.path.join(out, "done.json")):
        return json.load(open(os.path.join(out, "done.json")))
    import anndata as ad
    import harmonypy
    import scanpy as sc
    from sklearn.cluster import KMeans
    os.makedirs(out, exist_ok=True)
    h5, key = input_of(name)
    a = ad.read_h5ad(h5)
    a.X = a.X.astype(np.float32)
    sc.pp.normalize_total(a)
    sc.pp.log1p(a)
    sc.pp.highly_variable_genes(a, n_top_genes=min(2000, a.n_vars - 1))
    a = a[:, a.var.highly_variable].copy()
    sc.pp.scale(a, max_value=10)
    sc.pp.pca(a, n_comps=min(50, a.n_obs - 1, a.n_vars - 1), random_state=seed)
    k = a.obs[key].nunique()
    walls = {}
    t = time.perf_counter()
    h = harmonypy.run_harmony(a.obsm["X_pca"], a.obs, "batch", random_state=seed, verbose=False)
    walls["harmonypy_s"] = round(time.perf_counter() - t, 2)
    z = np.asarray(h.Z_corr)
    z = z.T if z.shape[0] != a.n_obs else z
    for arm, x in [("scanpy", a.obsm["X_pca"]), ("scanpy+harmonypy", z)]:
        d = os.path.join(WORK, "runs", name, arm, f"s{seed}")
        os.makedirs(d, exist_ok=True)
        np.save(os.path.join(d, "embedding.npy"), np.ascontiguousarray(x, dtype=np.float32))
        lab = KMeans(k, n_init=10, random_state=seed).fit_predict(x)
        with open(os.path.join(d, "labels.tsv"), "w") as f:
            f.write("cell\tcluster\n" + "".join(f"{c}\t{l}\n" for c, l in zip(a.obs_names, lab)))
    json.dump(walls, open(os.path.join(out, "done.json"), "w"))
    return walls


def cells_tsv(name, column):
    """truth.tsv / batches.tsv of a set (all its cells, in its order)."""
    path = os.path.join(WORK, "data", f"{name}.{column}.tsv")
    if not os.path.exists(path):
        import anndata as ad
        h5, key = input_of(name)
        a = ad.read_h5ad(h5, backed="r")
        col = key if column == "truth" else "batch"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(f"cell\t{column}\n" + "".join(f"{c}\t{v}\n" for c, v in zip(a.obs_names, a.obs[col].astype(str))))
    return path


def score(name, arm, seed):
    """ARI, NMI and the batch metrics of one run folder (scdeep's or scanpy's)."""
    d = os.path.join(WORK, "runs", name, arm, f"s{seed}")
    cache = os.path.join(d, "scores.json")
    if os.path.exists(cache):
        return json.load(open(cache))
    if not os.path.exists(os.path.join(d, "labels.tsv")):
        return None
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
    truth = dict(line.split("\t") for line in open(cells_tsv(name, "truth")).read().splitlines()[1:])
    pred = [line.split("\t") for line in open(os.path.join(d, "labels.tsv")).read().splitlines()[1:]]
    cells = [c for c, _ in pred]
    t = [truth[c] for c in cells]
    p = [l for _, l in pred]
    # the embedding's rows are the labels' cells: a truth file in that order for `evaluate`
    tsv = os.path.join(d, "truth_rows.tsv")
    with open(tsv, "w") as f:
        f.write("cell\ttruth\n" + "".join(f"{c}\t{v}\n" for c, v in zip(cells, t)))
    r = subprocess.run([BIN, "evaluate", "--labels", os.path.join(d, "labels.tsv"), "--truth", tsv,
                        "--embedding", os.path.join(d, "embedding.npy"), "--batches", cells_tsv(name, "batch")],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return {"error": r.stderr.strip()[-300:]}
    b = json.loads(r.stdout)["batch"]
    s = {"ari": adjusted_rand_score(t, p), "nmi": normalized_mutual_info_score(t, p),
         "batch_silhouette": b["silhouette_batch"], "ilisi": b["ilisi"], "clisi": b["clisi"],
         "graph_connectivity": b["graph_connectivity"]}
    wall = os.path.join(d, "wall.json")
    if os.path.exists(wall):
        s["wall_s"] = json.load(open(wall)).get("wall_s")
    json.dump(s, open(cache, "w"))
    return s


def summary(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    return {"median": round(statistics.median(xs), 4), "min": round(min(xs), 4), "max": round(max(xs), 4), "n": len(xs)}


def report():
    sets = REAL + list(SIMULATED)
    per = {}
    for name in sets:
        per[name] = {}
        for arm in ARMS:
            rows = [score(name, arm, s) for s in SEEDS]
            rows = [r for r in rows if r and "error" not in r]
            if rows:
                per[name][arm] = {m: summary([r.get(m) for r in rows]) for m in
                                  ["ari", "nmi", "batch_silhouette", "ilisi", "clisi", "graph_connectivity", "wall_s"]}
    checks = {}
    for name in sets:
        p = per[name]
        med = lambda arm, m: (p.get(arm) or {}).get(m, {}) and p[arm][m]["median"]
        c = {}
        for ours, base in [("pca+harmony", "pca"), ("default+harmony", "default")]:
            if ours in p and base in p:
                c[f"{ours} - {base} ARI"] = round(med(ours, "ari") - med(base, "ari"), 4)
                c[f"{ours} - {base} iLISI"] = round(med(ours, "ilisi") - med(base, "ilisi"), 4)
        if "scanpy+harmonypy" in p:
            for ours in ["pca+harmony", "default+harmony"]:
                if ours in p:
                    c[f"{ours} - scanpy+harmonypy ARI"] = round(med(ours, "ari") - med("scanpy+harmonypy", "ari"), 4)
                    c[f"{ours} - scanpy+harmonypy iLISI"] = round(med(ours, "ilisi") - med("scanpy+harmonypy", "ilisi"), 4)
                    c[f"{ours} - scanpy+harmonypy batch ASW"] = round(
                        med(ours, "batch_silhouette") - med("scanpy+harmonypy", "batch_silhouette"), 4)
        checks[name] = c
    out = {
        "what": "issue 40: ARI/NMI and scIB batch metrics (batch ASW, iLISI, cLISI, graph connectivity) per dataset and arm; "
                "k from the labels; medians over seeds with ranges; scanpy 1.11.5 + harmonypy (pinned in scripts/constraints.txt)",
        "command": ".venv/bin/python bench/batch.py run --jobs 2 && .venv/bin/python bench/batch.py report",
        "machine": "2 cores, no GPU; runs on 1 thread each, two at a time (timings are not benchmarks)",
        "date": time.strftime("%Y-%m-%d"),
        "simulated_batch_effect": SIMULATED,
        "per_dataset": per,
        "differences_of_medians": checks,
        "not_measured": "scVI (scvi-tools is not installed in the benchmark venv); batch-conditioned training (not built)",
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    json.dump(out, open(OUT, "w"), indent=1)
    print(json.dumps(checks, indent=1))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["run", "report"])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--arms", default=",".join(ARMS))
    ap.add_argument("--sets", default=",".join(REAL + list(SIMULATED)))
    a = ap.parse_args()
    sets = a.sets.split(",")
    if a.what == "report":
        return report()
    for name in sets:
        if name in SIMULATED:
            simulate(name)
    arms = a.arms.split(",")
    jobs = [(name, arm, s) for name in sets for s in SEEDS for arm in arms if not arm.startswith("scanpy")]
    with cf.ThreadPoolExecutor(a.jobs) as ex:
        for j, r in zip(jobs, ex.map(lambda j: scdeep_arm(*j), jobs)):
            print(*j, json.dumps(r), file=sys.stderr, flush=True)
    if any(arm.startswith("scanpy") for arm in arms):
        for name in sets:
            for s in SEEDS:
                print(name, "scanpy", s, json.dumps(scanpy_arms(name, s)), file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
