# Two commands do all the set-up: `make run` (the pipeline on real MNIST) and `make test`.
# Each creates .venv from the pinned lock first, if it is missing or the lock changed.
# `make run` runs the default experiment; `make run-all` every experiment in params.yaml.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EXPERIMENT ?= notebook
# Tests run in random order (pytest-randomly), so one test's leftovers cannot make another pass;
# `make test SEED=<n>` replays an order (every run prints its seed).
ifndef SEED
SEED := $(shell od -An -N2 -tu2 /dev/urandom | tr -d ' ')
endif
# Test files run side by side on TEST_WORKERS processes (pytest-xdist), a file's tests in one
# process so that its module fixtures (a trained project) are built once.
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -q -p randomly --randomly-seed=$(SEED) -n $(TEST_WORKERS) --dist loadfile --durations=15
# dvc.yaml's stage commands (`bnlab ...`) and the tests' subprocesses come from the venv.
export PATH := $(CURDIR)/$(BIN):$(PATH)

# `dvc plots show`'s page, with Vega inlined from npm (package-lock.json), so it draws offline.
PLOTS_PAGE := .dvc/plots/offline.html

.PHONY: run run-all test test-slow test-all lint format fingerprint lock ui server serve clean-venv

# uv installs the lock in a third of pip's time (it fetches, unpacks and compiles in parallel, and
# hard-links from its cache). Its own version is pinned in the lock. Bytecode is compiled at
# install, as pip does: where PYTHONDONTWRITEBYTECODE is set, nothing compiled later is kept,
# and every process would compile TensorFlow again (its import 11.5 s instead of 5.5).
UV := $(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$$(grep '^uv==' requirements.lock)"
	$(UV) -r requirements.lock "pip>=24"
	$(UV) --no-deps --no-build-isolation -e .
	touch $(STAMP)

$(PLOTS_PAGE): package-lock.json src/bnlab/pipeline/plots_page.py $(STAMP)
	npm ci --no-audit --no-fund --loglevel=error
	$(BIN)/python -m bnlab.pipeline.plots_page node_modules

## run: the default experiment's pipeline on real MNIST, then its comparison table
run: $(STAMP) $(PLOTS_PAGE)
	$(BIN)/dvc repro report@$(EXPERIMENT)
	@$(BIN)/bnlab summary $(EXPERIMENT)

## run-all: every experiment declared in params.yaml, then docs/results.md (128 min and 31 GB of disk on a 2-core AMD EPYC)
run-all: $(STAMP) $(PLOTS_PAGE)
	$(BIN)/dvc repro
	@$(BIN)/bnlab summary

## test: the fast tests (slow ones are marked and run by `make test-slow`)
test: $(STAMP) $(PLOTS_PAGE)
	@echo "tests in random order; replay it with: make test SEED=$(SEED)"
	$(PYTEST) -m "not slow"

## test-slow: the slow tests (real package index, real MNIST wheel, mlflow run)
test-slow: $(STAMP) $(PLOTS_PAGE)
	@echo "tests in random order; replay it with: make test-slow SEED=$(SEED)"
	$(PYTEST) -m slow

test-all: test test-slow

## lint: ruff's lint rules and format check, and the layer contract (pyproject.toml); CI runs it
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

## format: rewrite the tree as `make lint` wants it (ruff's import order and format)
format: $(STAMP)
	$(BIN)/ruff check --select I --fix .
	$(BIN)/ruff format .

## fingerprint: this CPU kind's tests/data/cpu_fingerprints/<vendor>-<family>-<model>.json
## (commit it when the folder has none for this CPU; CONTRIBUTING.md)
fingerprint: $(STAMP)
	$(BIN)/python tools/cpu_fingerprint.py


## lock: re-pin every dependency from pyproject.toml into requirements.lock
lock: $(STAMP)
	$(BIN)/pip-compile --quiet --extra dev --strip-extras --no-emit-index-url \
	    --no-emit-find-links -o requirements.lock pyproject.toml

## ui: browse the runs (it prints the address of the runs table)
ui: $(STAMP)
	@MLFLOW_TRACKING_URI=sqlite:///mlflow.db $(BIN)/bnlab summary --url
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000

## server: a local tracking server (SQLite, proxied artifacts) on 127.0.0.1:5000
server: $(STAMP)
	$(BIN)/mlflow server --host 127.0.0.1 --port 5000 --backend-store-uri sqlite:///mlflow.db \
	    --artifacts-destination ./mlartifacts --serve-artifacts

## serve: the registry's models:/bnlab-notebook-batchnorm@champion over HTTP on 127.0.0.1:5001
## (after `make run`); others with SERVE_ARGS="--variant plain --seed 1 --port 5002" (`bnlab serve --help`)
serve: $(STAMP)
	$(BIN)/bnlab serve $(EXPERIMENT) $(SERVE_ARGS)

clean-venv:
	rm -rf $(VENV)
