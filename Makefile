# The two commands of the README: `make train` and `make test`. Both run `make setup` first.
# `make test-fast` is the suite without its end-to-end tests.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
ARGS   ?=

.PHONY: setup train test test-fast lint
setup: $(VENV)/.installed
	@bash scripts/install_gl.sh

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "needs $(PYTHON) (set PYTHON=...)"; exit 2; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

# With a GPU: the paper's configuration on cheetah-run. Without one: the cpu preset (same method,
# smaller sizes and budgets) on ball_in_cup-catch, the task shown to learn within about an hour
# on 2 cores (docs/cpu-learning.md).
train: setup
	@if $(BIN)/python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then \
	  echo "make train: GPU found: the paper's configuration on cheetah-run"; \
	  $(BIN)/slac train --task cheetah-run --seed 0 --run-dir runs/cheetah-run-seed0 $(ARGS); \
	else \
	  echo "make train: no GPU: using --preset cpu ($$($(BIN)/python -c 'from slac.config import describe_preset; print(describe_preset("cpu"))')) on ball_in_cup-catch"; \
	  $(BIN)/slac train --preset cpu --task ball_in_cup-catch --seed 0 --run-dir runs/ball_in_cup-catch-seed0-cpu $(ARGS); \
	fi

# Two pytest workers, each taking a whole test file at a time (its module fixtures built once).
test: setup
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=25 tests
	$(BIN)/ruff check slac tests

# The suite without its end-to-end tests (subprocesses, CLI runs, kills): a few minutes.
test-fast: setup
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not e2e" tests
	$(BIN)/ruff check slac tests

lint: setup
	$(BIN)/ruff check slac tests
