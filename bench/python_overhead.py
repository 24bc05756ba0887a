#!/usr/bin/env python
"""The Python layer's overhead over the CLI on the same run (scMAE on 10x_pbmc_top2000,
seed 0, 1 thread, CPU): `scdeep run` vs `scdeep.tl.cluster` (read with anndata, results
written into the AnnData), each in its own process under /usr/bin/time, 3 repeats.

  .venv/bin/python bench/python_overhead.py   -> bench/results/python_overhead.json
"""
import json
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_benchmarks import BIN, DATA, RESULTS, measure  # noqa: E402

PBMC = os.path.join(DATA, "10x_pbmc_top2000", "10x_pbmc_top2000.h5ad")
PY = r"""
import sys, time, anndata as ad
t0 = time.perf_counter()
import scdeep
t1 = time.perf_counter()
a = ad.read_h5ad(sys.argv[1])
scdeep.tl.cluster(a, method="scmae", label_key="cell_type", seed=0, threads=1, device="cpu", verbose=False)
print(time.perf_counter() - t1, t1 - t0)
"""


def main():
    rows = []
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for rep in range(3):
        with tempfile.TemporaryDirectory() as out:
            cli, cli_rss, _ = measure([BIN, "run", "-q", "-i", PBMC, "--label-key", "cell_type", "-m", "scmae", "--seed", "0",
                                       "--threads", "1", "--device", "cpu", "--no-h5ad", "--out", out], env)
        py, py_rss, o = measure([sys.executable, "-c", PY, PBMC], env)
        work, imp = map(float, o.split())
        rows.append({"cli_wall_s": cli, "cli_rss_mb": round(cli_rss, 1), "python_wall_s": py, "python_rss_mb": round(py_rss, 1),
                     "python_after_import_s": round(work, 2), "python_import_s": round(imp, 2)})
        print(json.dumps(rows[-1]), file=sys.stderr)
    cli = statistics.median(r["cli_wall_s"] for r in rows)
    work = statistics.median(r["python_after_import_s"] for r in rows)
    wall = statistics.median(r["python_wall_s"] for r in rows)
    res = {"benchmark": "python layer overhead vs the CLI", "runs": rows,
           "overhead_after_import_pct": round(100 * (work - cli) / cli, 2),
           "overhead_whole_process_pct": round(100 * (wall - cli) / cli, 2)}
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "python_overhead.json"), "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps({k: v for k, v in res.items() if k != "runs"}, indent=1))


if __name__ == "__main__":
    main()
