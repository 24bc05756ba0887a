#!/usr/bin/env python
"""Issue 24 item 3, exploration: internal indices for k on the consensus embedding (the
members' embeddings from bench/studies/consensus/consensus_members.py, each centred and scaled to unit mean
squared norm, side by side). For k in 2..25: K-means (6 single starts, the lowest inertia
kept), its silhouette (2000 sampled cells), Calinski-Harabasz, Davies-Bouldin (negated) and
the mean ARI between the 6 starts (stability); prints the k each index picks.

  .venv/bin/python bench/studies/k_estimate/consensus_k_indices.py DATASETS SEEDS > bench/studies/k_estimate/results/consensus_k_indices.txt
"""
import itertools, os, sys
import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score as ari, silhouette_score, calinski_harabasz_score, davies_bouldin_score
W = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))), "target", "consensus_members"); M = ["pca", "scmae", "mask-sc-mlp", "contrastive-sc"]
for d in sys.argv[1].split(","):
  for s in range(int(sys.argv[2])):
    xs = {}
    for m in M:
        out = f"{W}/{m}_{d}_s{s}"; truth = [l.rstrip("\n").split("\t")[1] for l in open(out + "/truth.tsv")][1:]
        xs[m] = np.load(out + "/embedding.npy").astype(np.float64)
    kt = len(set(truth)); n = len(truth)
    z = {m: (xs[m] - xs[m].mean(0)) / np.sqrt(((xs[m] - xs[m].mean(0))**2).sum(1).mean()) for m in M}
    x = np.hstack([z[m] for m in M])
    samp = np.random.RandomState(0).choice(n, min(n, 2000), replace=False)
    rows = []
    for k in range(2, min(26, n // 3)):
        runs = [KMeans(k, n_init=1, random_state=i).fit(x) for i in range(6)]
        best = min(runs, key=lambda r: r.inertia_)
        stab = np.mean([ari(a.labels_, b.labels_) for a, b in itertools.combinations(runs, 2)])
        sil = silhouette_score(x[samp], best.labels_[samp])
        rows.append((k, sil, stab, calinski_harabasz_score(x, best.labels_), -davies_bouldin_score(x, best.labels_), best.inertia_))
    pick = lambda j: max(rows, key=lambda r: r[j])[0]
    print(d, s, "true", kt, "sil", pick(1), "stab", pick(2), "ch", pick(3), "db", pick(4), "| sil", " ".join(f"{r[0]}:{r[1]:.2f}" for r in rows), "| stab", " ".join(f"{r[0]}:{r[2]:.2f}" for r in rows), flush=True)
