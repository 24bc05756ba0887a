#!/usr/bin/env bash
# `make r-tarball`: the R source package scdeep_<version>.tar.gz as CRAN wants a Rust
# package: the Rust sources in src/rust (core and bindings/r) and every crate they use
# vendored (`cargo vendor`, checksums kept) into src/rust/vendor.tar.xz, which
# ./configure unpacks so that cargo builds --offline. Usage: r_tarball.sh BUILD_DIR OUT_DIR
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$1 out=$2
stage=$build/scdeep
rm -rf "$build" && mkdir -p "$stage/src/rust/core" "$stage/src/rust/bindings" "$out"
cp -r "$root/r-package/." "$stage/"
rm -f "$stage"/src/Makevars "$stage"/src/*.o "$stage"/src/*.so
cp -r "$root/core/Cargo.toml" "$root/core/build.rs" "$root/core/src" "$stage/src/rust/core/"
mkdir -p "$stage/src/rust/bindings/r"
cp -r "$root/bindings/r/Cargo.toml" "$root/bindings/r/Cargo.lock" "$root/bindings/r/src" "$stage/src/rust/bindings/r/"
sed -e 's|^members = .*|members = ["core"]|' -e '/^exclude = /d' "$root/Cargo.toml" > "$stage/src/rust/Cargo.toml"
(cd "$stage/src/rust/bindings/r" && cargo vendor --locked --versioned-dirs --quiet ../../vendor > /dev/null)
vendored=$(du -sm "$stage/src/rust/vendor" | cut -f1)
crates=$(ls "$stage/src/rust/vendor" | wc -l)
(cd "$stage/src/rust" && tar -cf - vendor | xz -T0 -6 > vendor.tar.xz && rm -rf vendor)
(cd "$build" && R CMD build --no-build-vignettes scdeep > build.log 2>&1) || { cat "$build/build.log"; exit 1; }
version=$(sed -n 's/^Version: //p' "$stage/DESCRIPTION")
mv "$build/scdeep_$version.tar.gz" "$out/"
echo "r_tarball: $out/scdeep_$version.tar.gz ($(du -m "$out/scdeep_$version.tar.gz" | cut -f1) MB): $crates crates vendored ($vendored MB unpacked, $(du -m "$stage/src/rust/vendor.tar.xz" | cut -f1) MB as vendor.tar.xz)"
