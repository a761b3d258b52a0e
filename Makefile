# Two commands do all the set-up: `make run` (the pipeline on real MNIST) and `make test`.
# Each creates .venv from the pinned lock first, if it is missing or the lock changed.
# `make run` runs the default experiment; `make run-all` every experiment in params.yaml.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EXPERIMENT ?= notebook
# dvc.yaml's stage commands (`bnlab ...`) and the tests' subprocesses come from the venv.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: run run-all test test-slow test-all docs lock ui server clean-venv

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

## run: the default experiment's pipeline on real MNIST, then its comparison table
run: $(STAMP)
	$(BIN)/dvc repro report@$(EXPERIMENT)
	@$(BIN)/bnlab summary $(EXPERIMENT)

## run-all: every experiment declared in params.yaml (about 15 minutes on 2 cores)
run-all: $(STAMP)
	$(BIN)/dvc repro
	@$(BIN)/bnlab summary

## test: the fast tests (slow ones are marked and run by `make test-slow`)
test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q

## test-slow: the slow tests (real package index, real MNIST wheel, mlflow run)
test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow -q

test-all: test test-slow

## docs: copy the figures the README shows from reports/ (after `make run-all`)
DOC_FIGURES := notebook/val_accuracy notebook/input_median_by_layer notebook/dead_units \
	ioffe2015/test_accuracy_by_step ioffe2015_slow/test_accuracy_by_step \
	ioffe2015/percentiles_layer3_unit0 ioffe2015_slow/percentiles_layer3_unit0 \
	noisy_bn/test_accuracy_by_step
docs:
	@for figure in $(DOC_FIGURES); do \
	    cp reports/$${figure%%/*}/figures/$${figure#*/}.png docs/$$(echo $$figure | tr / _).png; done
	@mv docs/notebook_val_accuracy.png docs/val_accuracy.png

## lock: re-pin every dependency from pyproject.toml into requirements.lock
lock: $(STAMP)
	$(BIN)/pip-compile --quiet --extra dev --strip-extras --no-emit-index-url \
	    --no-emit-find-links -o requirements.lock pyproject.toml

## ui: browse the runs
ui: $(STAMP)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1

## server: a local tracking server (SQLite, proxied artifacts) on 127.0.0.1:5000
server: $(STAMP)
	$(BIN)/mlflow server --host 127.0.0.1 --port 5000 --backend-store-uri sqlite:///mlflow.db \
	    --artifacts-destination ./mlartifacts --serve-artifacts

clean-venv:
	rm -rf $(VENV)
