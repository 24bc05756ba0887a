#!/usr/bin/env bash
# Installs the Debian packages given as arguments that are missing (with sudo when not
# root). The Makefile calls it with what the build needs (HDF5 for the hdf5-metno crate,
# pkg-config, CMake for the C++ test) and, for the R package, with R, Seurat,
# SingleCellExperiment and testthat (CRAN and Bioconductor are not reachable here;
# --no-install-recommends keeps R to about 780 MB).
set -euo pipefail
need=()
for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || need+=("$p"); done
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
echo "installing Debian packages: ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
