# Set-up installs the pinned CPU torch first (an unpinned resolve pulls a multi-GB CUDA
# build), then the project with the extras its tests use (dev, ode, tensorboard, mnist).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0

.PHONY: setup demo test lint docs bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev,docs,ode,tensorboard,mnist]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/dnwgraph demo

test: setup
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
