# The two commands of the README: `make train` and `make test`. Both run `make setup` first.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
ARGS   ?=

.PHONY: setup train test lint
setup: $(VENV)/.installed
	@bash scripts/install_gl.sh

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "needs $(PYTHON) (set PYTHON=...)"; exit 2; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

train: setup
	$(BIN)/slac train --task cheetah-run --seed 0 --run-dir runs/cheetah-run-seed0 $(ARGS)

test: setup
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m pytest -q tests
	$(BIN)/ruff check slac tests

lint: setup
	$(BIN)/ruff check slac tests
