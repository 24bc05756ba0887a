#!/usr/bin/env python3
"""Run the reader fuzz targets (`make fuzz FUZZ_SECONDS=N [FUZZ_TARGETS="mtx csv"]`).

Each target of core/src/fuzz.rs runs under libFuzzer for N seconds, from the committed
corpus tests/fuzz/corpus/<target>/ (seeds cut from ../shared/data by scripts/fuzz_seeds.py,
plus inputs that once crashed) and a working corpus in target/fuzz/corpus/<target>/ that
grows from run to run. Executions, coverage, peak memory and crashes go to
bench/results/fuzz.json (targets not run keep their earlier entry). A crash leaves its
input in target/fuzz/artifacts/<target>/; after the fix, copy it into
tests/fuzz/corpus/<target>/ as crash-<what> so that `make test` replays it.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "fuzz.json"


def torch_lib() -> str:
    import torch

    return str(Path(torch.__file__).parent / "lib")


def run_target(binary: Path, target: str, seconds: int, work: Path) -> dict:
    seeds = ROOT / "tests" / "fuzz" / "corpus" / target
    corpus = work / "corpus" / target
    artifacts = work / "artifacts" / target
    corpus.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    before = set(artifacts.iterdir())
    env = dict(os.environ, SCDEEP_FUZZ_TARGET=target, LD_LIBRARY_PATH=torch_lib() + ":" + os.environ.get("LD_LIBRARY_PATH", ""))
    # Fork mode: jobs run in child processes, so the run goes on past a timeout, an
    # out-of-memory or a crash (each is counted and its input kept) instead of ending.
    cmd = [
        str(binary), str(corpus), str(seeds),
        f"-max_total_time={seconds}", "-fork=1", "-ignore_crashes=1", "-ignore_timeouts=1", "-ignore_ooms=1",
        f"-artifact_prefix={artifacts}/", "-rss_limit_mb=2048", "-timeout=10", "-max_len=262144", "-use_value_profile=1",
    ]
    t0 = time.time()
    p = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace")
    wall = time.time() - t0
    log = p.stderr
    (work / f"{target}.log").write_text(log)
    # fork-mode progress: "#N: cov: C ft: F corp: K exec/s: R oom/timeout/crash: a/b/c time: Ts ..."
    prog = re.findall(r"#(\d+): cov: (\d+) ft: (\d+) corp: (\d+) exec/s: (\d+) oom/timeout/crash: (\d+)/(\d+)/(\d+)", log)
    last = [int(v) for v in prog[-1]] if prog else [None] * 8
    execs = last[0]
    new = sorted(set(artifacts.iterdir()) - before)
    by_kind = {k: sum(1 for a in new if a.name.startswith(k + "-")) for k in ("crash", "oom", "timeout")}
    rss = [int(v) for v in re.findall(r"rss: (\d+)Mb", log)]
    stacks = {a.name: where(binary, target, a, env) for a in new}
    return {
        "executions": execs,
        "seconds": round(wall, 1),
        "executions_per_second": round(execs / wall) if execs and wall else None,
        "coverage_edges": last[1],
        "features": last[2],
        "corpus_files": sum(1 for _ in corpus.iterdir()),
        "peak_rss_mb": max(rss) if rss else None,
        "exit_code": p.returncode,
        "ooms": last[5],
        "timeouts": last[6],
        "crashes": last[7],
        "new_inputs": {k: v for k, v in by_kind.items() if v},
        "inputs": [str(a.relative_to(ROOT)) for a in new],
        # where each new input stops the reader (frames innermost first); all in libhdf5
        # (H5*) means a defect of the HDF5 library on a corrupt file, not of scdeep
        "where": stacks,
        "in_hdf5_library": sum(1 for w in stacks.values() if w.startswith("H5")),
    }


def where(binary: Path, target: str, path: Path, env: dict) -> str:
    """The innermost frames of the reader on `path`: the stack 2 s into a run that hangs or
    grows, or at the signal of one that crashes (gdb)."""
    p = subprocess.Popen([str(binary), "-rss_limit_mb=0", "-timeout=0", str(path)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2)
    if p.poll() is None:
        out = subprocess.run(["gdb", "-p", str(p.pid), "-batch", "-ex", "bt 40"], capture_output=True, text=True).stdout
        p.kill()
        p.wait()
    else:
        out = subprocess.run(["gdb", "-batch", "-ex", "run", "-ex", "bt 40", "--args", str(binary), "-runs=1", str(path)],
                             env=env, capture_output=True, text=True).stdout
    frames = [f for f in re.findall(r"^#\d+\s+(?:0x[0-9a-f]+ in )?([A-Za-z_][\w:]*)", out, re.M)
              if not f.startswith(("std::", "core::", "alloc::", "__GI_", "_int_", "__libc", "__mem", "malloc", "free"))]
    return " < ".join(frames[:4]) if frames else "(no stack: it did not reproduce)"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("targets", nargs="*", help="default: every target; NAME:SECONDS gives one target its own time")
    ap.add_argument("--bin", type=Path, required=True, help="the fuzz_readers binary (make fuzz builds it)")
    ap.add_argument("--seconds", type=int, default=60, help="per target")
    ap.add_argument("--work", type=Path, default=ROOT / "target" / "fuzz")
    ap.add_argument("--triage", action="store_true", help="no fuzzing: say again where the kept inputs of the targets stop the reader")
    a = ap.parse_args()
    # the targets as core/src/fuzz.rs names them (TARGETS), not a second list
    src = (ROOT / "core" / "src" / "fuzz.rs").read_text()
    known = re.findall(r'"(\w+)"', re.search(r"pub const TARGETS: \[&str; \d+\] = \[([^\]]*)\]", src).group(1))
    seconds = {}
    for spec in a.targets or known:
        name, _, secs = spec.partition(":")
        if name not in known:
            sys.exit(f"unknown target '{name}' (known: {', '.join(known)})")
        seconds[name] = int(secs) if secs else a.seconds
    targets = list(seconds)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results.setdefault("targets", {})
    if a.triage:
        for t in targets:
            r = results["targets"].get(t, {})
            env = dict(os.environ, SCDEEP_FUZZ_TARGET=t, LD_LIBRARY_PATH=torch_lib())
            kept = sorted(p for p in (a.work / "artifacts" / t).glob("*") if str(p.relative_to(ROOT)) in r.get("inputs", []))
            r["where"] = {p.name: where(a.bin, t, p, env) for p in kept}
            r["in_hdf5_library"] = sum(1 for w in r["where"].values() if w.startswith("H5"))
            print(f"{t}: {r['in_hdf5_library']} of {len(kept)} inputs stop inside libhdf5", flush=True)
        RESULTS.write_text(json.dumps(results, indent=1) + "\n")
        return
    for t in targets:
        print(f"fuzz {t}: {seconds[t]} s ...", flush=True)
        r = run_target(a.bin, t, seconds[t], a.work)
        r["date"] = time.strftime("%Y-%m-%d")
        results["targets"][t] = r
        print(f"  {r['executions']} executions ({r['executions_per_second']}/s), {r['coverage_edges']} edges, "
              f"crashes {r['crashes']}, timeouts {r['timeouts']}, out of memory {r['ooms']}, peak {r['peak_rss_mb']} MB", flush=True)
    results["harness"] = "libfuzzer-sys 0.4 on stable Rust, -Cpasses=sancov-module (inline 8-bit counters, pc table, trace-compares), debug assertions and overflow checks on; `make fuzz`"
    results["machine"] = f"{os.cpu_count()} cores, one target at a time on one core"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    bad = [t for t in targets if any(results["targets"][t][k] for k in ("crashes", "timeouts", "ooms"))]
    if bad:
        sys.exit(f"crashes, timeouts or out-of-memory in {', '.join(bad)}: inputs under {a.work}/artifacts/")


if __name__ == "__main__":
    main()
