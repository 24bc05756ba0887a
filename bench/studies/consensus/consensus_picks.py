#!/usr/bin/env python
"""Issue 24: label-free ways to combine the members' embeddings, compared on the embeddings
bench/studies/consensus/consensus_members.py leaves in --work (run it first). Per dataset and seed, K-means
(k = number of types, n_init 10) on each member, then:
- pick_<rule>: the member partition chosen by a label-free rule: `agree_nmi` / `agree_ari`
  (mean NMI / ARI to the other members' partitions), `stab` (mean ARI between 10
  single-start runs), `own_sil` (silhouette on its own embedding, each embedding centred
  and scaled to unit mean squared norm), `cross_sil` (mean silhouette over every member's
  embedding), `medoid` (mean NMI to all members' single-start runs);
- concat: K-means on the members' scaled embeddings side by side (what `--method
  consensus` does, with 10 starts here); concat_n30: with 30 starts; cat_agree: each block
  weighted by the member's agree_nmi.
ARI against the labels, which no choice reads.

  .venv/bin/python bench/studies/consensus/consensus_picks.py [--datasets a,b] [--seeds 5] [--work target/consensus_members]

Writes bench/studies/consensus/results/consensus_picks.json (medians and ranges over seeds, and the picks).
"""
import argparse
import itertools
import json
import os
import statistics

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score as ari
from sklearn.metrics import normalized_mutual_info_score as nmi
from sklearn.metrics import silhouette_score

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
M = ["pca", "scmae", "mask-sc-mlp", "contrastive-sc"]
DATASETS = ["10x_pbmc_top2000", "mouse_bladder_top2000", "mouse_bladder_select2100", "baron_mouse", "pollen_top1000hvg",
            "darmanis_top1000hvg", "blakeley"]


def load(work, m, d, s):
    out = os.path.join(work, f"{m}_{d}_s{s}")
    truth = [line.rstrip("\n").split("\t")[1] for line in open(os.path.join(out, "truth.tsv"))][1:]
    return np.load(os.path.join(out, "embedding.npy")).astype(np.float64), truth


def scaled(x):
    c = x - x.mean(0)
    return c / np.sqrt((c ** 2).sum(1).mean())


def one(work, d, s):
    xs = {}
    for m in M:
        xs[m], truth = load(work, m, d, s)
    k, n = len(set(truth)), len(truth)
    r, picks = {}, {}
    part, runs = {}, {}
    for m in M:
        part[m] = KMeans(k, n_init=10, random_state=s).fit(xs[m]).labels_
        runs[m] = [KMeans(k, n_init=1, random_state=1000 * s + i).fit(xs[m]).labels_ for i in range(10)]
        r["km_" + m] = ari(truth, part[m])
    allruns = [p for m in M for p in runs[m]]
    z = {m: scaled(xs[m]) for m in M}
    samp = np.random.RandomState(0).choice(n, min(n, 2000), replace=False)
    rules = {
        "cross_sil": {m: np.mean([silhouette_score(z[o][samp], part[m][samp]) for o in M]) for m in M},
        "own_sil": {m: silhouette_score(z[m][samp], part[m][samp]) for m in M},
        "agree_nmi": {m: np.mean([nmi(part[m], part[o]) for o in M if o != m]) for m in M},
        "agree_ari": {m: np.mean([ari(part[m], part[o]) for o in M if o != m]) for m in M},
        "stab": {m: np.mean([ari(a, b) for a, b in itertools.combinations(runs[m], 2)]) for m in M},
        "medoid": {m: np.mean([nmi(part[m], p) for p in allruns]) for m in M},
    }
    for name, sc in rules.items():
        pick = max(M, key=lambda m: sc[m])
        r["pick_" + name], picks[name] = r["km_" + pick], pick
    cat = lambda w: np.hstack([z[m] * np.sqrt(w[m]) for m in M])
    r["concat"] = ari(truth, KMeans(k, n_init=10, random_state=s).fit(cat({m: 1 for m in M})).labels_)
    r["concat_n30"] = ari(truth, KMeans(k, n_init=30, random_state=s).fit(cat({m: 1 for m in M})).labels_)
    r["cat_agree"] = ari(truth, KMeans(k, n_init=10, random_state=s).fit(cat(rules["agree_nmi"])).labels_)
    r["best_member"] = max(r["km_" + m] for m in M)
    return r, picks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--work", default=os.path.join(ROOT, "target", "consensus_members"))
    ap.add_argument("--out", default=os.path.join(HERE, "results", "consensus_picks.json"))
    a = ap.parse_args()
    summary, all_picks = {}, {}
    for d in a.datasets.split(","):
        rs = [one(a.work, d, s) for s in range(a.seeds)]
        keys = rs[0][0].keys()
        summary[d] = {key: {"median": statistics.median(x[0][key] for x in rs), "min": min(x[0][key] for x in rs),
                            "max": max(x[0][key] for x in rs)} for key in keys}
        all_picks[d] = [x[1] for x in rs]
        print(d, " ".join(f"{key}={v['median']:.3f}" for key, v in summary[d].items()), flush=True)
    json.dump({"benchmark": "label-free combinations of member embeddings (issue 24)", "members": M, "seeds": a.seeds,
               "summary": summary, "picks": all_picks}, open(a.out, "w"), indent=1)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
