#!/usr/bin/env python
"""Issue 24's must-show table from bench/results/accuracy.json (no runs): per count dataset,
the consensus method's median ARI (range over seeds) against scMAE's, the best single scdeep
method's (every method and ablation in the file with 5 seeds, the consensus excluded) and
the best anchor the issue names; whether it is within 0.01 of the best single method, at
least the anchor, and narrower in seed-to-seed range than scMAE.

  .venv/bin/python bench/studies/consensus/consensus_table.py [--name consensus] [--acc bench/results/accuracy.json]

Prints a markdown table and writes bench/studies/consensus/results/consensus_table.json.
"""
import argparse
import json
import os
import statistics

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
# Issue 24, "the best anchors we know (ARI, k given)"; yan has no count data here.
ANCHORS = {"10x_pbmc_top2000": 0.81, "mouse_bladder_top2000": 0.66, "mouse_bladder_select2100": 0.66, "baron_mouse": 0.912,
           "pollen_top1000hvg": 0.959, "darmanis_top1000hvg": 0.875, "blakeley": None}


def spread(runs, name, d):
    a = [r["ari"] for r in runs if r.get("label", r["method"]) == name and r["dataset"] == d and "ari" in r]
    return (statistics.median(a), min(a), max(a), len(a)) if a else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", default="consensus")
    ap.add_argument("--acc", default=os.path.join(ROOT, "bench", "results", "accuracy.json"))
    ap.add_argument("--out", default=os.path.join(HERE, "results", "consensus_table.json"))
    a = ap.parse_args()
    acc = json.load(open(a.acc))
    runs = acc["runs"]
    names = {r.get("label", r["method"]) for r in runs} - {a.name}
    rows, table = [], {}
    print("| dataset | consensus | scMAE | best single (name) | anchor | >= best - 0.01 | >= anchor | narrower than scMAE |")
    print("|---|---|---|---|---|---|---|---|")
    for d in ANCHORS:
        c, s = spread(runs, a.name, d), spread(runs, "scmae", d)
        if not c or not s:
            continue
        singles = [(spread(runs, n, d), n) for n in names]
        best = max(((x[0], n) for x, n in singles if x and x[3] >= 5), default=(None, None))
        anchor = ANCHORS[d]
        row = {"consensus": c[:3], "scmae": s[:3], "best_single": best, "anchor": anchor,
               "within_0.01_of_best": best[0] is None or c[0] >= best[0] - 0.01,
               "at_least_anchor": None if anchor is None else c[0] >= anchor,
               "narrower_than_scmae": c[2] - c[1] < s[2] - s[1]}
        table[d] = row
        f = lambda x: "%.3f (%.3f-%.3f)" % x[:3]
        print(f"| {d} | {f(c)} | {f(s)} | {best[0]:.3f} ({best[1]}) | {anchor if anchor else '-'} | "
              f"{'yes' if row['within_0.01_of_best'] else 'no'} | {'-' if anchor is None else ('yes' if row['at_least_anchor'] else 'no')} | "
              f"{'yes' if row['narrower_than_scmae'] else 'no'} |")
    json.dump({"name": a.name, "source": os.path.relpath(a.acc, ROOT), "table": table}, open(a.out, "w"), indent=1)


if __name__ == "__main__":
    main()
