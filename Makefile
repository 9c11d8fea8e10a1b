# Set-up installs the pinned CPU torch first (an unpinned resolve pulls a multi-GB CUDA
# build), then the project with the extras its tests use (dev, docs, ode, tensorboard, mnist, hub, onnx);
# pip's own output shows the progress of each step.
# `make test` runs the fast suite (tests not marked slow: tests/slow_modules.txt, measured by
# benchmarks/suite_timing.py); `make test-all` runs every test, as CI does.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0

.PHONY: setup demo test test-all lint docs bench clean

$(VENV)/.installed: pyproject.toml
	@echo "==> [1/4] creating the virtual environment $(VENV)"
	$(PYTHON) -m venv $(VENV)
	@echo "==> [2/4] upgrading pip"
	$(PY) -m pip install --progress-bar on --upgrade pip
	@echo "==> [3/4] installing $(TORCH) (the download takes a while)"
	$(PY) -m pip install --progress-bar on $(TORCH)
	@echo "==> [4/4] installing dnwgraph and its extras: dev, docs, ode, tensorboard, mnist, hub, onnx"
	$(PY) -m pip install --progress-bar on -e '.[dev,docs,ode,tensorboard,mnist,hub,onnx]'
	@echo "==> set-up done: $(VENV)"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/dnwgraph demo

# the fast suite (README: how long it takes); test-all is every test, what CI runs
test: setup
	$(PY) -m pytest -q -m "not slow"

test-all: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check dnwgraph tests examples benchmarks

# The API reference rendered from the docstrings (mkdocs + mkdocstrings, the 'docs' extra),
# built with --strict into site/.
docs: setup
	$(PY) -m pip install -q -e '.[docs]'
	$(PY) -m mkdocs build --strict

# Rewrites the measured tables of docs/benchmarks.md and docs/scaling.md (~15 min on 2 cores).
bench: setup
	for b in spmm wiring official models compact mobilenet scaling; do \
		$(PY) benchmarks/bench_$$b.py --write || exit 1; done

clean:
	rm -rf $(VENV) runs site .pytest_cache
