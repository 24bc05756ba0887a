# scdeep — the README's two commands: `make demo` and `make test`.
# Both install what is missing (Debian libhdf5, a .venv with torch==2.13.0 and the
# reference tools), build the workspace against the venv's libtorch with an rpath,
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

.PHONY: demo test build setup fixtures bench clean header install c-test cpp-test python valgrind

setup: $(STAMPS)/system $(STAMPS)/venv

$(STAMPS)/system: scripts/setup-system.sh
	@mkdir -p $(STAMPS)
	bash scripts/setup-system.sh
	@touch $@

$(STAMPS)/venv: scripts/requirements.txt
	@mkdir -p $(STAMPS)
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r scripts/requirements.txt
	@touch $@

build: setup
	cargo build --release --workspace

demo: build
	bash scripts/demo.sh

test: build python
	cargo test --release --workspace
	$(PY) -m pytest -q tests/python python-package/tests
	$(MAKE) --no-print-directory c-test cpp-test

# The Python package (maturin; the extension shares target/ with the workspace) in .venv.
python: build
	$(PY) -m pip install -q --disable-pip-version-check --no-build-isolation --no-deps ./python-package

# Copy the header cbindgen generated during the build into c-include/ (checked in).
header: build
	cp "$$(ls -t $(CARGO_TARGET_DIR)/release/build/scdeep-c-*/out/scdeep.h | head -1)" c-include/scdeep.h

# The C library, headers, pkg-config file and CMake package under $(PREFIX).
install: build
	install -d $(PREFIX)/lib/pkgconfig $(PREFIX)/lib/cmake/scdeep $(PREFIX)/include
	install -m 644 c-include/scdeep.h c-include/scdeep.hpp $(PREFIX)/include/
	install -m 755 $(CARGO_TARGET_DIR)/release/libscdeep.so $(PREFIX)/lib/
	install -m 644 $(CARGO_TARGET_DIR)/release/libscdeep.a $(PREFIX)/lib/
	sed -e 's|@PREFIX@|$(abspath $(PREFIX))|' -e 's|@VERSION@|$(VERSION)|' \
	    -e "s|@TORCHLIB@|$$($(PY) -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')|" \
	    scripts/scdeep.pc.in > $(PREFIX)/lib/pkgconfig/scdeep.pc
	sed -e 's|@VERSION@|$(VERSION)|' scripts/scdeepConfig.cmake.in > $(PREFIX)/lib/cmake/scdeep/scdeepConfig.cmake

# The C program (through pkg-config) against an install in target/ctest/prefix; it must
# get the labels `scdeep run` gets with the same seed and threads.
c-test:
	@$(MAKE) --no-print-directory install PREFIX=$(CTEST)/prefix > /dev/null
	gcc -Wall -Wextra -Werror -std=c11 -D_POSIX_C_SOURCE=200809L tests/c/test_api.c -o $(CTEST)/test_api \
	    $$(PKG_CONFIG_PATH=$(CTEST)/prefix/lib/pkgconfig pkg-config --cflags --libs scdeep) -lpthread -lm
	$(BIN) run -q -i $(PBMC) --label-key cell_type -m scmae --seed 0 --threads 1 --device cpu --no-h5ad --out $(CTEST)/cli
	$(CTEST)/test_api $(PBMC) $(CTEST)/cli/labels.tsv $(CTEST)

# Leak check of the C program on a small dataset (about 20 minutes under valgrind; not
# part of `make test`). Measured: 0 bytes definitely or indirectly lost.
valgrind: c-test
	valgrind --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect --error-exitcode=1 \
	    $(CTEST)/test_api $(ROOT)/../shared/data/pollen_top1000hvg/pollen_top1000hvg.h5ad - $(CTEST)

# The C++17 RAII wrapper, built through CMake's find_package(scdeep).
cpp-test:
	@$(MAKE) --no-print-directory install PREFIX=$(CTEST)/prefix > /dev/null
	cmake -S tests/cpp -B $(CTEST)/cpp -DCMAKE_PREFIX_PATH=$(CTEST)/prefix -DCMAKE_BUILD_TYPE=Release > /dev/null
	cmake --build $(CTEST)/cpp > /dev/null
	$(CTEST)/cpp/test_raii $(CTEST)

# Regenerate the reference fixtures with scanpy / scikit-learn / skmisc.
fixtures: setup
	$(PY) scripts/make_fixtures.py

bench: build
	$(PY) bench/run_benchmarks.py

clean:
	cargo clean
	rm -rf $(STAMPS)
