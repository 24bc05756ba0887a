#!/usr/bin/env bash
# The R source tarball from `make r-tarball` builds offline and works: R CMD check runs in
# a temporary folder outside the checkout (so the package is installed into an empty
# library there, scdeep.Rcheck/) with an empty CARGO_HOME (no registry index or crate
# cache to fall back on) and CARGO_NET_OFFLINE=true; its testthat suite runs RunScdeep on
# Seurat and SingleCellExperiment objects. Fails on any ERROR or WARNING (R CMD check
# itself exits 0 on warnings). Then the installed package, with its libtorch hidden (a
# private mount namespace), must stop with the error that names the fix.
# Usage: test_r_tarball.sh TARBALL   (environment: SCDEEP_PYTHON, SCDEEP_DATA, SCDEEP_CLI)
set -euo pipefail
tarball=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
tmp=$(mktemp -d /tmp/scdeep-rcheck.XXXXXX)
keep=${SCDEEP_KEEP_RCHECK:-}
trap '[ -n "$keep" ] || rm -rf "$tmp"' EXIT
mkdir -p "$tmp/cargo-home"
cd "$tmp"
start=$(date +%s)
status=0
CARGO_HOME="$tmp/cargo-home" CARGO_NET_OFFLINE=true RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}" \
  CARGO="${CARGO:-$(command -v cargo)}" R_LIBS= R_LIBS_USER=/nonexistent \
  R CMD check --no-manual "$tarball" || status=$?
log=$tmp/scdeep.Rcheck/00check.log
if [ "$status" -ne 0 ] || grep -qE '^Status: .*(ERROR|WARNING)' "$log"; then
  tail -40 "$tmp"/scdeep.Rcheck/00install.out 2> /dev/null || true
  echo "test_r_tarball: R CMD check failed (status $status)" >&2; exit 1
fi
grep -q 'building offline from the vendored crates' "$tmp/scdeep.Rcheck/00install.out" \
  || { echo "test_r_tarball: the install did not build from the vendored crates" >&2; exit 1; }
# cargo takes its lock file (.package-cache) there even offline; nothing else may appear
if [ -e "$tmp/cargo-home/registry" ] || [ -e "$tmp/cargo-home/git" ]; then
  echo "test_r_tarball: cargo fetched into the empty CARGO_HOME: $(ls -A "$tmp/cargo-home")" >&2; exit 1
fi
echo "test_r_tarball: R CMD check of $(basename "$tarball") ($(du -m "$tarball" | cut -f1) MB) offline: $(grep '^Status' "$log"), $(( $(date +%s) - start )) s"
torch_lib=$("$SCDEEP_PYTHON" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
if unshare -m true 2> /dev/null; then
  mkdir -p "$tmp/empty"
  set +e
  unshare -m sh -c "mount --bind $tmp/empty $torch_lib && Rscript -e 'library(scdeep, lib.loc = \"$tmp/scdeep.Rcheck\")'" > "$tmp/hidden.log" 2>&1
  rc=$?
  set -e
  if [ "$rc" -eq 0 ] || ! grep -q 'cannot load libtorch' "$tmp/hidden.log" || ! grep -q 'SCDEEP_PYTHON=' "$tmp/hidden.log"; then
    cat "$tmp/hidden.log"; echo "test_r_tarball: without its libtorch the package did not stop with the error naming the fix" >&2; exit 1
  fi
  echo "test_r_tarball: without libtorch, library(scdeep) stops with: $(grep -o 'cannot load libtorch[^.]*' "$tmp/hidden.log" | head -1)"
else
  echo "test_r_tarball: mount namespaces are not allowed here; the missing-libtorch error was not checked"
fi
echo "test_r_tarball: ok"
