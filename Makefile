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

.PHONY: demo test build setup fixtures bench clean

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

test: build
	cargo test --release --workspace
	$(PY) -m pytest -q tests/python

# Regenerate the reference fixtures with scanpy / scikit-learn / skmisc.
fixtures: setup
	$(PY) scripts/make_fixtures.py

bench: build
	$(PY) bench/run_benchmarks.py

clean:
	cargo clean
	rm -rf $(STAMPS)
