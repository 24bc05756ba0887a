#!/usr/bin/env bash
# Builds the scdeep CLI here for a device machine that has torch but no cargo, and packs
# what bench/gpu_check.sh needs there into one folder (ignored by git, carried by the
# device tool):
#   bash bench/gpu_build.sh            # TORCH=2.11.0 (the device image's), PACK=.gpu
# The build links the device's torch version (downloaded from PyPI as a wheel, only its
# lib/ and include/ unpacked) with LIBTORCH_BYPASS_VERSION_CHECK=1, since tch 0.26 is
# written for 2.13.0: a copy of torch-sys whose generated wrappers of ops that version
# lacks are stubbed (bench/stub_torch_sys.py, which checks scdeep calls none of them) is
# patched in, in a copy of the sources with a target directory of its own, so the
# workspace and its Cargo.lock stay linked to the venv's torch. On the device:
#   BIN=.gpu/scdeep DATA=.gpu/data bash bench/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH=${TORCH:-2.11.0}
PACK=${PACK:-.gpu}
WHEELS=${WHEELS:-/tmp/scdeep_torch_$TORCH}
TARGET=${TARGET:-target/gpu_torch_$TORCH}
PY=${PY:-python3}
mkdir -p "$WHEELS"
if [ ! -d "$WHEELS/torch/lib" ]; then
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d "$WHEELS" "torch==$TORCH"
  (cd "$WHEELS" && unzip -q -o torch-"$TORCH"-*.whl 'torch/lib/*' 'torch/include/*' 'torch/share/*')
fi
SYS=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/torch-sys-0.26.0 | head -1)
if [ ! -f "$WHEELS/torch-sys/.stubbed" ]; then
  rm -rf "$WHEELS/torch-sys" && cp -r "$SYS" "$WHEELS/torch-sys"
  "$PY" bench/stub_torch_sys.py "$WHEELS/torch-sys" "$WHEELS/torch" .
  touch "$WHEELS/torch-sys/.stubbed"
fi
SRC=$WHEELS/src
rm -rf "$SRC" && mkdir -p "$SRC"
git ls-files -co --exclude-standard | grep -v "^$PACK/" | while read -r f; do [ -e "$f" ] && echo "$f"; done | tar -cf - -T - | tar -xf - -C "$SRC"
TARGET=$(realpath -m "$TARGET")
(cd "$SRC" && env -u LIBTORCH_USE_PYTORCH LIBTORCH="$WHEELS/torch" LIBTORCH_BYPASS_VERSION_CHECK=1 \
  CARGO_TARGET_DIR="$TARGET" cargo build --release -p scdeep-cli \
  --config "patch.crates-io.torch-sys.path=\"$WHEELS/torch-sys\"")
mkdir -p "$PACK/data/10x_pbmc_top2000"
cp "$TARGET/release/scdeep" "$PACK/scdeep"
strip "$PACK/scdeep"
for d in ../shared/data shared/data; do
  if [ -f "$d/10x_pbmc_top2000/10x_pbmc_top2000.h5ad" ]; then
    cp "$d/10x_pbmc_top2000/10x_pbmc_top2000.h5ad" "$PACK/data/10x_pbmc_top2000/"
    break
  fi
done
grep -qx "/$PACK/" .git/info/exclude 2>/dev/null || echo "/$PACK/" >> .git/info/exclude
du -sh "$PACK"
