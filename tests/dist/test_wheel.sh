#!/usr/bin/env bash
# The wheel from `make wheel` in a fresh venv whose PATH has no cargo or rustc: pip
# installs it from the local file and its dependencies (torch==2.13.0 and the rest) from
# the package registry; then `scdeep.tl.cluster` on PBMC (scMAE, a few epochs, so that
# libtorch trains) must score like the repository's build, and the wheel's `scdeep`
# console script must answer `version` and `run`. Usage: test_wheel.sh DIST_DIR DATA_DIR
set -euo pipefail
dist=$(cd "$1" && pwd) data=$(cd "$2" && pwd)
whl=$(ls "$dist"/scdeep-*.whl)
tmp=$(mktemp -d /tmp/scdeep-wheel.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
clean_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
if PATH=$clean_path command -v cargo > /dev/null || PATH=$clean_path command -v rustc > /dev/null; then
  echo "test_wheel: cargo or rustc is on $clean_path; this test needs a PATH without them" >&2
  exit 1
fi
/usr/bin/python3 -m venv "$tmp/venv"
start=$(date +%s)
env -i HOME="$HOME" PATH="$tmp/venv/bin:$clean_path" PIP_CERT="${PIP_CERT:-}" PIP_DEFAULT_TIMEOUT=180 \
  "$tmp/venv/bin/python" -m pip install -q --disable-pip-version-check "$whl"
echo "test_wheel: $(basename "$whl") ($(du -k "$whl" | cut -f1) KB) installed with its dependencies in $(( $(date +%s) - start )) s"
cd "$tmp"
run() { env -i HOME="$HOME" PATH="$tmp/venv/bin:$clean_path" "$@"; }
run python - "$data" <<'PY'
import sys, anndata, scdeep
pbmc = f"{sys.argv[1]}/10x_pbmc_top2000/10x_pbmc_top2000.h5ad"
a = anndata.read_h5ad(pbmc)
assert "/venv/" in scdeep.__file__, scdeep.__file__
scdeep.tl.cluster(a, method="scmae", label_key="cell_type", seed=0, threads=2, device="cpu", verbose=False, train={"epochs": 10})
m = a.uns["scdeep"]["scmae"]["metrics"]
print(f"test_wheel: scdeep.tl.cluster scmae 10 epochs on PBMC: ARI {m['ari']:.3f}, NMI {m['nmi']:.3f}")
assert m["ari"] > 0.4, m
PY
run scdeep version | tee "$tmp/version.txt"
grep -q '^scdeep ' "$tmp/version.txt"
run scdeep run -q -i "$data/pollen_top1000hvg/pollen_top1000hvg.h5ad" --method pca --label-key cell_type --seed 0 --no-h5ad --out "$tmp/run"
test -s "$tmp/run/labels.tsv"
python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print("test_wheel: console script scdeep run pca on pollen: ARI %.3f" % m["ari"]); assert m["ari"] > 0.8' "$tmp/run/metrics.json"
set +e; run scdeep run -q -i "$tmp/missing.h5ad" --out "$tmp/run2"; rc=$?; set -e
[ "$rc" -ne 0 ] && [ "$rc" -lt 128 ] || { echo "test_wheel: a missing input gave exit status $rc" >&2; exit 1; }
echo "test_wheel: ok"
