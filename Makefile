# scdeep — the README's two commands: `make demo` and `make test`.
# Both install what is missing (Debian pkg-config, a .venv with torch==2.13.0, CMake and
# the reference tools), build the workspace against the venv's libtorch with an rpath,
# and are quick when everything is already there.

SHELL := /bin/bash
ROOT := $(CURDIR)
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
STAMPS := $(ROOT)/.stamps
export CARGO_TARGET_DIR ?= $(ROOT)/target
export VIRTUAL_ENV := $(VENV)
export PATH := $(VENV)/bin:$(PATH)
export LIBTORCH_USE_PYTORCH := 1
BIN := $(CARGO_TARGET_DIR)/release/scdeep

PREFIX ?= /usr/local
VERSION := $(shell grep -m1 '^version' Cargo.toml | cut -d'"' -f2)
CTEST := $(CARGO_TARGET_DIR)/ctest
PBMC := $(ROOT)/../shared/data/10x_pbmc_top2000/10x_pbmc_top2000.h5ad

.PHONY: help demo test test-python test-doors build setup fixtures bench clean header install c-test cpp-test python wheel valgrind r r-test r-check r-tarball dist-test fuzz fuzz-seeds fmt lint check

# `make help`: the targets a developer uses (docs/dev/testing.md says what each suite guards).
help:
	@echo "make demo        install what is missing, build, cluster a dataset, print metrics"
	@echo "make test        everything CI runs: lint, Rust suites, Python, C, C++, R, installs"
	@echo "make check       quick round before a commit: fmt check, clippy, rustdoc, unit and doc tests"
	@echo "make fmt         rustfmt every Rust file"
	@echo "make build       the workspace (release) against the venv's libtorch"
	@echo "make python      build the wheel and install it into .venv"
	@echo "make c-test / cpp-test / r-check / dist-test   one door's suite"
	@echo "make test-python the Python suites (package, hostile inputs, workflows)"
	@echo "make install PREFIX=...   CLI, C library, headers, pkg-config and CMake files"
	@echo "make fixtures    regenerate reference fixtures from scanpy / scikit-learn"
	@echo "make fuzz        fuzz the readers (FUZZ_SECONDS per target)"
	@echo "make bench       bench/run_benchmarks.py (see bench/README.md for the others)"
	@echo "make header      copy the generated C header into c-include/"

setup: $(STAMPS)/system $(STAMPS)/venv

SYSTEM_PKGS := pkg-config cmake
# What only the tests need: R and its packages (the R package's check) and Groovy (the
# Nextflow module harness; Nextflow itself cannot be fetched here).
TEST_PKGS := r-base-dev r-cran-seurat r-cran-seuratobject r-bioc-singlecellexperiment r-cran-testthat r-cran-matrix r-cran-jsonlite groovy

$(STAMPS)/system: scripts/setup-system.sh
	@mkdir -p $(STAMPS)
	bash scripts/setup-system.sh $(SYSTEM_PKGS)
	@touch $@

$(STAMPS)/venv: scripts/requirements.txt scripts/constraints.txt
	@mkdir -p $(STAMPS)
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r scripts/requirements.txt -c scripts/constraints.txt
	@touch $@

build: setup
	cargo build --release --workspace

demo: build
	bash scripts/demo.sh

test: build python $(STAMPS)/test-system
	$(MAKE) --no-print-directory lint
	cargo test --release --workspace
	$(MAKE) --no-print-directory -j2 --output-sync=target test-python test-doors

# The two halves of `make test` after the Rust suites, side by side on the 2 cores (each
# is mostly one busy process): the Python suites, and the C, C++ and R doors.
test-python:
	$(PY) -m pytest -q tests/python tests/hostile python-package/tests tests/workflows

test-doors:
	$(MAKE) --no-print-directory c-test cpp-test r-check dist-test

# Formatting (rustfmt.toml) and lints of every Rust file of the repository: the gates of
# `make test`. `make fmt` rewrites the files; `make check` is the quick round a developer
# runs before each commit (the gates and the library unit tests, a few minutes).
RS_FILES = $(shell git ls-files '*.rs' 2>/dev/null)
fmt:
	rustfmt --edition 2021 $(RS_FILES)

lint: setup
	@command -v rustfmt > /dev/null && cargo clippy --version > /dev/null 2>&1 || { echo "rustfmt or clippy is missing: rustup component add rustfmt clippy"; exit 1; }
	rustfmt --check --edition 2021 $(RS_FILES)
	cargo clippy --release --workspace --all-targets --quiet -- -D warnings
	cd bindings/r && cargo clippy --release --quiet -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --release --no-deps --quiet -p scdeep-core -p scdeep-c -p scdeep-python

check: lint
	cargo test --release --workspace --lib --quiet --exclude scdeep-python
	cargo test --release -p scdeep-core --doc --quiet

# The Python wheel (abi3, no libtorch inside: it depends on torch==2.13.0 and finds its
# libraries at run time, scdeep/__init__.py importing torch first) and the sdist, built by
# maturin in the shared target/; `make python` installs the wheel into .venv.
DIST := $(CARGO_TARGET_DIR)/dist
wheel: build
	mkdir -p $(DIST) && rm -f $(DIST)/scdeep-*
	cd python-package && $(PY) -m maturin build --release --quiet --auditwheel warn --compatibility manylinux_2_34 --out $(DIST)
	cd python-package && $(PY) -m maturin sdist --out $(DIST)

python: wheel
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --force-reinstall $(DIST)/scdeep-*.whl

# Copy the header cbindgen generated during the build into c-include/ (checked in).
header: build
	cp "$$(ls -t $(CARGO_TARGET_DIR)/release/build/scdeep-c-*/out/scdeep.h | head -1)" c-include/scdeep.h

# The CLI, the C library, headers, pkg-config file and CMake package under $(PREFIX), with
# the libtorch libraries they load (scripts/install.sh; CUDA=1 adds the CUDA libraries):
# relocatable, and independent of this checkout and its .venv.
install: build
	bash scripts/install.sh "$(PREFIX)" "$(CARGO_TARGET_DIR)/release" "$(VERSION)"

# The C program (through pkg-config) against an install in target/ctest/prefix; it must
# get the labels `scdeep run` gets with the same seed and threads (both with the default method).
c-test:
	@$(MAKE) --no-print-directory install PREFIX=$(CTEST)/prefix > /dev/null
	for std in c99 c11 c17; do \
	    gcc -std=$$std -Wall -Wextra -Werror -c tests/c/header_alone.c -o $(CTEST)/header_alone_$$std.o \
	        $$(PKG_CONFIG_PATH=$(CTEST)/prefix/lib/pkgconfig pkg-config --cflags scdeep) || exit 1; \
	done
	gcc -Wall -Wextra -Werror -std=c11 -D_POSIX_C_SOURCE=200809L tests/c/test_api.c -o $(CTEST)/test_api \
	    $$(PKG_CONFIG_PATH=$(CTEST)/prefix/lib/pkgconfig pkg-config --cflags --libs scdeep) -lpthread -lm
	$(BIN) run -q -i $(PBMC) --label-key cell_type --seed 0 --threads 1 --device cpu --epochs 10 --no-h5ad --out $(CTEST)/cli
	echo '{"batch_fac_loc": 0.15, "batch_fac_scale": 0.15}' > $(CTEST)/batch_params.json
	$(BIN) simulate -q --n-cells 600 --n-genes 500 --groups 0.4,0.3,0.3 --batches 300,300 --de-prob 0.2 --seed 2 \
	    --params $(CTEST)/batch_params.json --no-true-counts --overwrite -o $(CTEST)/batches.h5ad
	$(BIN) run -q -i $(CTEST)/batches.h5ad --label-key group --batch-key batch -m pca --seed 0 --threads 1 --device cpu \
	    --no-h5ad --overwrite --out $(CTEST)/cli_batches
	$(CTEST)/test_api $(PBMC) $(CTEST)/cli/labels.tsv $(CTEST) $(CTEST)/batches.h5ad $(CTEST)/cli_batches/labels.tsv

# Leak check of the C program on a small dataset (about 20 minutes under valgrind; not
# part of `make test`). Measured: 0 bytes definitely or indirectly lost.
valgrind: c-test
	valgrind --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect --error-exitcode=1 \
	    $(CTEST)/test_api $(ROOT)/../shared/data/pollen_top1000hvg/pollen_top1000hvg.h5ad - $(CTEST)

# The C++17 RAII wrapper, built through CMake's find_package(scdeep).
cpp-test:
	@$(MAKE) --no-print-directory install PREFIX=$(CTEST)/prefix > /dev/null
	g++ -std=c++17 -Wall -Wextra -Werror -c tests/cpp/header_alone.cpp -o $(CTEST)/header_alone_cpp.o \
	    $$(PKG_CONFIG_PATH=$(CTEST)/prefix/lib/pkgconfig pkg-config --cflags scdeep)
	cmake -S tests/cpp -B $(CTEST)/cpp -DCMAKE_PREFIX_PATH=$(CTEST)/prefix -DCMAKE_BUILD_TYPE=Release > /dev/null
	cmake --build $(CTEST)/cpp > /dev/null
	$(CTEST)/cpp/test_raii $(CTEST)

# The R package (extendr), installed into a private library in the cargo target dir;
# its Rust crate (bindings/r) builds in the shared target directory.
R_LIB := $(CARGO_TARGET_DIR)/rlib
RBUILD := $(CARGO_TARGET_DIR)/rbuild
R_ENV := R_LIBS=$(R_LIB) SCDEEP_DATA=$(ROOT)/../shared/data SCDEEP_CLI=$(BIN) SCDEEP_PYTHON=$(PY) SCDEEP_CARGO_QUIET=1

$(STAMPS)/test-system: scripts/setup-system.sh
	@mkdir -p $(STAMPS)
	bash scripts/setup-system.sh $(TEST_PKGS)
	@touch $@

r: build $(STAMPS)/test-system
	@mkdir -p $(R_LIB)
	$(R_ENV) R CMD INSTALL --no-multiarch -l $(R_LIB) r-package > $(CARGO_TARGET_DIR)/r-install.log 2>&1 || { tail -40 $(CARGO_TARGET_DIR)/r-install.log; exit 1; }

r-test: r
	cd r-package/tests/testthat && $(R_ENV) Rscript -e 'testthat::test_dir(".", package = "scdeep", load_package = "installed", stop_on_failure = TRUE)'

# The R source package (scripts/r_tarball.sh): the Rust sources in src/rust and every
# crate vendored, so that R CMD INSTALL builds offline; R CMD check of it outside the
# checkout, offline, with the testthat suite (tests/dist/test_r_tarball.sh).
RTARBALL := $(DIST)/scdeep_$(VERSION).tar.gz
r-tarball: build $(STAMPS)/test-system
	bash scripts/r_tarball.sh $(RBUILD) $(DIST)

r-check: r-tarball
	CARGO_TARGET_DIR=$(CARGO_TARGET_DIR)/rcheck SCDEEP_DATA=$(ROOT)/../shared/data SCDEEP_CLI=$(BIN) SCDEEP_PYTHON=$(PY) SCDEEP_CARGO_QUIET=1 \
	  bash tests/dist/test_r_tarball.sh $(RTARBALL)

# The wheel in a fresh venv without Rust, and the installed CLI after its prefix moved
# with this checkout hidden.
dist-test: python
	bash tests/dist/test_wheel.sh $(DIST) $(ROOT)/../shared/data
	bash tests/dist/test_install.sh $(ROOT)/../shared/data

# Regenerate the reference fixtures with scanpy / scikit-learn / skmisc.
fixtures: setup
	$(PY) scripts/make_fixtures.py

# Coverage-guided fuzzing of the readers (core/src/fuzz.rs) with libFuzzer, on stable
# Rust: sancov instrumentation through RUSTFLAGS, for the target triple only (so build
# scripts and proc macros are not instrumented). Results in bench/results/fuzz.json.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=
HOST := $(shell rustc -vV | sed -n 's/^host: //p')
FUZZ_RUSTFLAGS := -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks
FUZZ_BIN := $(CARGO_TARGET_DIR)/fuzz/$(HOST)/release/fuzz_readers

fuzz: setup
	cd fuzz && RUSTFLAGS="$(FUZZ_RUSTFLAGS)" CARGO_TARGET_DIR=$(CARGO_TARGET_DIR)/fuzz cargo build --release --target $(HOST)
	$(PY) scripts/fuzz.py --bin $(FUZZ_BIN) --seconds $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# Rewrite the seed inputs of the fuzz corpus from ../shared/data.
fuzz-seeds: build
	$(PY) scripts/fuzz_seeds.py

bench: build
	$(PY) bench/run_benchmarks.py

clean:
	cargo clean
	rm -rf $(STAMPS)
