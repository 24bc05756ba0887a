#!/usr/bin/env python
"""Issue 24: wall time and peak RSS of `--method consensus` against scMAE, one after the
other in one script, 1 thread each:
- PBMC (10x_pbmc_top2000, k from the labels), every method's defaults;
- 100k simulated cells x 2000 genes (bench/scale.py's simulation, 8 groups, -k 8), with
  `--epochs 2` for both (scMAE's 81 default epochs take about half an hour at 100k on one
  CPU thread; the consensus's train.epochs reaches every deep member), so the comparison
  is of everything but the epochs: preprocessing per member, embedding, clustering.

- 100k simulated cells x 20 000 genes (`wide100k`, as bench/scale.py's wide input: every
  member's gene selection keeps at most half of the genes), `--epochs 2`;
- 1M simulated cells x 2000 genes with `--epochs 1` for both (about an hour for the three
  runs; not run by default).

Each simulated set also runs the consensus with `--stream-min-nnz none`
(`consensus_whole_read`): the input read once and shared by the members, where by default
each member reads the .h5ad again in blocks of rows (io::MemberReads), so the two differ
only in how the input is held.

  .venv/bin/python bench/consensus_speed.py [--sets pbmc,100k,wide100k,1m] [--methods scmae,consensus,consensus_whole_read]

Entries of --out for sets and variants not run are kept.
Writes bench/results/consensus_speed.json (wall s, peak RSS MiB, the runs' timings, ARI).
"""
import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_benchmarks import BIN, ROOT, measure  # noqa: E402
from scale import simulate  # noqa: E402

PBMC = os.path.join(ROOT, "..", "shared", "data", "10x_pbmc_top2000", "10x_pbmc_top2000.h5ad")


def run(path, method, extra):
    with tempfile.TemporaryDirectory() as out:
        cmd = [BIN, "run", "-q", "-i", path, "-m", method, "--threads", "1", "--device", "cpu", "--seed", "0", "--no-h5ad",
               "--out", out] + extra
        wall, rss, _ = measure(cmd)
        info = json.load(open(os.path.join(out, "run.json")))
        ari = (info.get("metrics") or {}).get("ari")
    r = {"wall_s": round(wall, 2), "peak_rss_mb": round(rss), "ari": ari, "timings_s": info["timings_s"]}
    print(method, os.path.basename(path), r["wall_s"], "s", r["peak_rss_mb"], "MiB", "ARI", ari, flush=True)
    return r


VARIANTS = {"scmae": ("scmae", []), "consensus": ("consensus", []), "consensus_whole_read": ("consensus", ["--stream-min-nnz", "none"])}
# key in --out, cells, genes, epochs, options for every variant (on the wide input scMAE's
# kNN graph after 2 epochs falls apart into more pieces than k, which the auto rule's
# Leiden refuses: K-means for all there)
SIMS = {
    "100k": ("sim_100k_epochs2", 100_000, 2000, "2", []),
    "wide100k": ("wide_100k_x20000_epochs2", 100_000, 20_000, "2", ["--cluster", "kmeans"]),
    "1m": ("sim_1m_epochs1", 1_000_000, 2000, "1", []),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", default="pbmc,100k,wide100k", help="of pbmc, 100k, wide100k, 1m")
    ap.add_argument("--methods", default=",".join(VARIANTS), help="simulated sets only; pbmc runs scmae and consensus")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "consensus_speed.json"))
    a = ap.parse_args()
    sets, methods = a.sets.split(","), a.methods.split(",")
    res = json.load(open(a.out)) if os.path.exists(a.out) else {}
    res["threads"] = 1
    if "pbmc" in sets:
        res["pbmc"] = {m: run(PBMC, m, ["--label-key", "cell_type"]) for m in ["scmae", "consensus"]}
    for name, (key, cells, genes, epochs, opts) in SIMS.items():
        if name in sets:
            path, _ = simulate(cells, genes)
            extra = ["--label-key", "group", "-k", "8", "--epochs", epochs] + opts
            res.setdefault(key, {}).update({v: run(path, VARIANTS[v][0], extra + VARIANTS[v][1]) for v in methods})
    for v in res.values():
        if isinstance(v, dict) and "scmae" in v and "consensus" in v:
            v["ratio_wall"] = round(v["consensus"]["wall_s"] / v["scmae"]["wall_s"], 2)
            v["ratio_rss"] = round(v["consensus"]["peak_rss_mb"] / v["scmae"]["peak_rss_mb"], 2)
    json.dump(res, open(a.out, "w"), indent=1)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
