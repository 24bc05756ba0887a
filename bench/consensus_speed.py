#!/usr/bin/env python
"""Issue 24: wall time and peak RSS of `--method consensus` against scMAE, one after the
other in one script, 1 thread each:
- PBMC (10x_pbmc_top2000, k from the labels), every method's defaults;
- 100k simulated cells x 2000 genes (bench/scale.py's simulation, 8 groups, -k 8), with
  `--epochs 2` for both (scMAE's 81 default epochs take about half an hour at 100k on one
  CPU thread; the consensus's train.epochs reaches every deep member), so the comparison
  is of everything but the epochs: preprocessing per member, embedding, clustering.

- with --1m, 1M simulated cells (the same simulation) with `--epochs 1` for both (about 40
  minutes for the two runs; --only-1m keeps the other entries of --out and runs only it).

  .venv/bin/python bench/consensus_speed.py [--no-100k] [--1m | --only-1m]

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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-100k", action="store_true")
    ap.add_argument("--1m", dest="one_m", action="store_true")
    ap.add_argument("--only-1m", action="store_true")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "consensus_speed.json"))
    a = ap.parse_args()
    if a.only_1m:
        res = json.load(open(a.out))
    else:
        res = {"threads": 1, "pbmc": {m: run(PBMC, m, ["--label-key", "cell_type"]) for m in ["scmae", "consensus"]}}
    if a.one_m or a.only_1m:
        path, _ = simulate(1_000_000, 2000)
        res["sim_1m_epochs1"] = {m: run(path, m, ["--label-key", "group", "-k", "8", "--epochs", "1"]) for m in ["scmae", "consensus"]}
    if not a.no_100k and not a.only_1m:
        path, _ = simulate(100_000, 2000)
        res["sim_100k_epochs2"] = {m: run(path, m, ["--label-key", "group", "-k", "8", "--epochs", "2"]) for m in ["scmae", "consensus"]}
    for k, v in res.items():
        if isinstance(v, dict) and "scmae" in v:
            v["ratio_wall"] = round(v["consensus"]["wall_s"] / v["scmae"]["wall_s"], 2)
            v["ratio_rss"] = round(v["consensus"]["peak_rss_mb"] / v["scmae"]["peak_rss_mb"], 2)
    json.dump(res, open(a.out, "w"), indent=1)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
