#!/usr/bin/env python
"""Issue 39 item 3, exploration: with k given, pick one partition among the members' and
the concatenation's by a label-free score computed on each candidate's own embedding, on
the members' runs that bench/generalization.py leaves under target/generalization/runs.

Scores (higher is better):
- restart: mean pairwise ARI of 8 single-start K-means runs (random seeds)
- boot:    mean ARI on the shared cells of K-means on two 80 % subsamples (3 pairs)
- sil:     silhouette of the candidate's partition on its embedding (2000 cells at most)
Rules: the concatenation unless another candidate's score is higher by more than tol
(tol chosen leave-one-dataset-out). Regret = best single member's median ARI - the rule's.

  .venv/bin/python bench/studies/consensus/pick_rules.py [--jobs 1]

Writes bench/studies/consensus/results/pick_rules.json.
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

CACHE = os.path.join(g.WORK, "pick_rules")
OUT = os.path.join(HERE, "results", "pick_rules.json")


def scores(name, seed):
    path = os.path.join(CACHE, f"{name}_s{seed}.json")
    if os.path.exists(path):
        return json.load(open(path))
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score
    run = g.load_run(name, seed)
    x, k, n = run["x"], run["k"], len(run["x"])
    cands = {m: (x[:, a:b], run["member_labels"][m]) for m, (a, b) in run["blocks"].items()}
    cands["concat"] = (x, run["concat"])
    out = {}
    rng = np.random.RandomState(seed)
    sub = rng.choice(n, min(n, 2000), replace=False)
    for c, (e, lab) in cands.items():
        e = e - e.mean(0)
        runs = [KMeans(k, n_init=1, init="random", random_state=1000 + i).fit(e).labels_ for i in range(8)]
        restart = float(np.mean([g.ari(p, q) for p, q in itertools.combinations(runs, 2)]))
        boot = []
        for rep in range(3):
            rs = np.random.RandomState(100 * seed + rep)
            a = np.sort(rs.choice(n, int(0.8 * n), replace=False))
            b = np.sort(rs.choice(n, int(0.8 * n), replace=False))
            sh = np.intersect1d(a, b)
            la = KMeans(k, n_init=3, random_state=rep).fit(e[a]).labels_
            lb = KMeans(k, n_init=3, random_state=rep).fit(e[b]).labels_
            boot.append(g.ari(la[np.searchsorted(a, sh)], lb[np.searchsorted(b, sh)]))
        lab = np.array(lab)
        sil = float(silhouette_score(e[sub], lab[sub])) if len(set(lab[sub])) > 1 else 0.0
        out[c] = {"restart": restart, "boot": float(np.mean(boot)), "sil": sil, "ari": g.ari(run["truth"], lab)}
    os.makedirs(CACHE, exist_ok=True)
    json.dump(out, open(path, "w"))
    return out


def pick(sc, key, tol):
    best = max(sc, key=lambda c: sc[c][key])
    return best if sc[best][key] > sc["concat"][key] + tol else "concat"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=1)
    a = ap.parse_args()
    jobs = [(s, seed) for seed in g.SEEDS for s in g.all_sets() if os.path.exists(os.path.join(g.WORK, "runs", s, f"s{seed}", "run.json"))]
    with cf.ProcessPoolExecutor(a.jobs) as ex:
        flat = list(ex.map(scores, *zip(*jobs)))
    per = {}
    for (s, _), sc in zip(jobs, flat):
        per.setdefault(s, []).append(sc)
    rules = {"concat": lambda sc: "concat"}
    for key in ("restart", "boot", "sil"):
        for tol in (0.0, 0.02, 0.05, 0.1, 0.2):
            rules[f"{key}:{tol}"] = (lambda key, tol: lambda sc: pick(sc, key, tol))(key, tol)
    table = {}
    for s, scs in per.items():
        best = max(statistics.median(sc[m]["ari"] for sc in scs) for m in scs[0] if m != "concat")
        table[s] = {r: round(best - statistics.median(sc[f(sc)]["ari"] for sc in scs), 4) for r, f in rules.items()}
    fams = {}
    for r in rules:
        fams.setdefault(r.split(":")[0], []).append(r)
    summary = {}
    for fam, vs in fams.items():
        reg = {}
        for s in table:
            others = [o for o in table if o != s]
            v = min(vs, key=lambda v: (statistics.mean(table[o][v] for o in others), max(table[o][v] for o in others)))
            reg[s] = (v, table[s][v])
        rs = [r for _, r in reg.values()]
        summary[fam] = {"mean_regret": round(statistics.mean(rs), 4), "max_regret": round(max(rs), 4),
                        "chosen": {s: v for s, (v, _) in reg.items()}, "regret": {s: r for s, (_, r) in reg.items()}}
        print(f"{fam:10s} mean {summary[fam]['mean_regret']:.4f} max {summary[fam]['max_regret']:.4f}",
              sorted(((r, s) for s, r in summary[fam]["regret"].items()), reverse=True)[:4])
    for r in rules:
        reg = [table[s][r] for s in table]
        print(f"  {r:14s} mean {statistics.mean(reg):.4f} max {max(reg):.4f}")
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    json.dump({"sets": list(per), "per_set": table, "summary": summary, "scores": per}, open(OUT, "w"), indent=1)


if __name__ == "__main__":
    main()
