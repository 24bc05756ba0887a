#!/usr/bin/env bash
# `make install PREFIX=...` gives a relocatable CLI and C library: install into a
# temporary prefix outside the checkout, move the prefix, and run the moved `scdeep`
# with the checkout (its .venv and target/ included) hidden behind an empty directory in
# a private mount namespace (unshare -m), so that nothing it loads can come from there.
# Where mount namespaces are not allowed, the run is checked instead with LD_DEBUG: no
# library may be loaded from the checkout. Usage: test_install.sh DATA_DIR
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd -P)
data=$(cd "$1" && pwd -P)
case "$data" in "$root"/*) echo "test_install: $data lies inside the checkout" >&2; exit 1 ;; esac
tmp=$(mktemp -d /tmp/scdeep-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
MAKEFLAGS= make -s -C "$root" install PREFIX="$tmp/prefix"
echo "test_install: installed in $(( $(date +%s) - start )) s, $(du -sh "$tmp/prefix" | cut -f1)"
mv "$tmp/prefix" "$tmp/moved"
bin=$tmp/moved/bin/scdeep
if readelf -d "$bin" "$tmp/moved/lib/libscdeep.so" | grep -E 'R(UN)?PATH' | grep -v '\$ORIGIN'; then
  echo "test_install: an rpath is not relative to \$ORIGIN" >&2; exit 1
fi
mkdir -p "$tmp/empty" "$tmp/out"
cat > "$tmp/check.sh" <<SH
set -e
$bin version
$bin run -q -i $data/pollen_top1000hvg/pollen_top1000hvg.h5ad --method pca --label-key cell_type --seed 0 --no-h5ad --out $tmp/out/run
SH
clean="env -i HOME=$tmp PATH=/usr/bin:/bin"
if unshare -m true 2> /dev/null; then
  $clean unshare -m sh -c "mount --bind $tmp/empty $root && test ! -e $root/Makefile && sh $tmp/check.sh" | tee "$tmp/out/log"
  echo "test_install: ran with $root hidden (mount namespace)"
else
  $clean LD_DEBUG=libs LD_DEBUG_OUTPUT="$tmp/out/ld" sh "$tmp/check.sh" | tee "$tmp/out/log"
  if grep -h 'calling init: ' "$tmp"/out/ld.* | grep -F "$root/"; then
    echo "test_install: the installed scdeep loaded a library from the checkout" >&2; exit 1
  fi
  echo "test_install: no library loaded from $root (LD_DEBUG; mount namespaces are not allowed here)"
fi
grep -q '^scdeep ' "$tmp/out/log"
python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print("test_install: moved install, scdeep run pca on pollen: ARI %.3f" % m["ari"]); assert m["ari"] > 0.8' "$tmp/out/run/metrics.json"
echo "test_install: ok"
