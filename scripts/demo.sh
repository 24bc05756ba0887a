#!/usr/bin/env bash
# The demo: simulate labelled counts, cluster them with PCA + K-means, print metrics.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/scdeep"
OUT="${DEMO_OUT:-$ROOT/target/demo}"
mkdir -p "$OUT"
"$BIN" version
"$BIN" simulate --out "$OUT/sim.h5ad" --n-cells 3000 --n-genes 2000 --groups 0.35,0.25,0.2,0.12,0.08 --seed 1
"$BIN" run --input "$OUT/sim.h5ad" --label-key group --method pca --seed 0 --out "$OUT/pca"
python3 - "$OUT/pca/metrics.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
print("demo: PCA + K-means on simulated data: ARI %.3f  NMI %.3f  (%d clusters, %d groups)" % (m["ari"], m["nmi"], m["n_clusters"], m["n_classes"]))
PY
