# ferrule's one entry point for people and CI: `make help` lists the targets.
# Works on a fresh clone with Rust and Python 3 (with the venv module) installed.

PYTHON ?= python3
VENV := .venv
VENV_ABS := $(abspath $(VENV))
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.ferrule-requirements
BIND ?= 127.0.0.1:8000
APP ?= examples/hello.py
PYTEST_ARGS ?=
# Build pyo3 against the venv's interpreter for maturin and cargo alike, so the two never
# disagree about Python and rebuild each other's artifacts.
export PYO3_PYTHON := $(VENV_ABS)/bin/python

.DEFAULT_GOAL := help
.PHONY: help venv build serve test lint fmt bench fuzz clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VPY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): tests/requirements.txt | $(VPY)
	$(VPY) -m pip install -q -r tests/requirements.txt
	@touch $@

venv: $(STAMP) ## Create .venv (if missing) and install the build and test tools into it

build: venv ## Build the extension in release mode and install ferrule into .venv
	VIRTUAL_ENV=$(VENV_ABS) $(VENV)/bin/maturin develop --release

serve: build ## Build, then serve examples/hello.py on 127.0.0.1:8000 (BIND=, APP= to change)
	$(VENV)/bin/ferrule --bind $(BIND) $(APP)

test: build ## Build, then run the Rust tests and the Python suites (PYTEST_ARGS= to narrow)
	cargo test --workspace
	$(VPY) -m pytest $(PYTEST_ARGS)

lint: venv ## Check formatting and lints: cargo fmt, clippy (warnings are errors), ruff
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(VENV)/bin/ruff check $(wildcard python tests benchmarks examples)
	$(VPY) -m mypy.stubtest ferrule._ferrule

fmt: venv ## Format the Rust code and apply ruff's safe fixes
	cargo fmt --all
	$(VENV)/bin/ruff check --fix $(wildcard python tests benchmarks examples)

bench: build ## Run the benchmarks against peer servers (benchmarks/run.sh)
	@if [ -f benchmarks/run.sh ]; then bash benchmarks/run.sh; \
	else echo "benchmarks/run.sh is missing: nothing to run" >&2; exit 1; fi

fuzz: ## Fuzz the parser, chunked decoder and environ builder (FUZZ_SECONDS=60 each; not in CI)
	bash fuzz/run.sh $(or $(FUZZ_SECONDS),60)

clean: ## Remove build outputs and caches (keeps .venv)
	cargo clean
	rm -rf dist .pytest_cache .ruff_cache
	find python tests benchmarks examples -name __pycache__ -type d -prune -exec rm -rf {} +
	rm -f python/ferrule/*.so
