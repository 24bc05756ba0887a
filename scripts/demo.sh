#!/usr/bin/env bash
# The demo: cluster real PBMC cells with the default method (the consensus), scMAE and the
# PCA baseline, print metrics; without ../shared/data, simulate labelled counts instead.
# Rerunning replaces the demo's own results. DEMO_OUT: where (target/demo); DEMO_ARGS: extra `scdeep run` flags (the
# test passes a few epochs).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/scdeep"
OUT="${DEMO_OUT:-$ROOT/target/demo}"
mkdir -p "$OUT"
"$BIN" version
INPUT="$ROOT/../shared/data/10x_pbmc_top2000/10x_pbmc_top2000.h5ad"
KEY=cell_type
if [ ! -f "$INPUT" ]; then
  INPUT="$OUT/sim.h5ad"
  KEY=group
  "$BIN" simulate --out "$INPUT" --n-cells 3000 --n-genes 2000 --groups 0.35,0.25,0.2,0.12,0.08 --seed 1
fi
for m in pca scmae consensus; do
  # shellcheck disable=SC2086
  "$BIN" run --input "$INPUT" --label-key "$KEY" --method "$m" --seed 0 --out "$OUT/$m" --save-model "$OUT/models/$m" ${DEMO_ARGS:-}
done
python3 - "$INPUT" "$OUT" <<'PY'
import json, os, sys
print("demo: %s" % os.path.basename(sys.argv[1]))
for m in ("pca", "scmae", "consensus"):
    r = json.load(open(os.path.join(sys.argv[2], m, "run.json")))
    s = r["metrics"]
    t = sum(r["timings_s"].values())
    print("  %-9s ARI %.3f  NMI %.3f  (%d clusters, %d types, %.1f s)" % (m, s["ari"], s["nmi"], s["n_clusters"], s["n_classes"], t))
PY
