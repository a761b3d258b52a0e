"""Fixtures every test gets; the helpers the tests import are in helpers.py."""

from __future__ import annotations

import os
import signal
import sys

import pytest

from bnlab.core.layout import XLA_CACHE
from bnlab.data.mnist import Mnist
from bnlab.ml import xla_cache

from helpers import PROJECT, make_mnist

# One XLA program cache for this process and every test's throwaway project (their processes
# inherit it): a program compiled once serves them all, the key keeps that right
# (bnlab.ml.xla_cache). Set before any test imports TensorFlow.
os.environ.setdefault(xla_cache.CACHE_ENV, str(PROJECT / XLA_CACHE))


@pytest.fixture(autouse=True)
def isolated_environment():
    """Every test starts from the same environment and MLflow state. mlflow.set_tracking_uri
    (and bnlab's connect) write MLFLOW_TRACKING_URI, even credentials, into os.environ, which
    later tests' subprocesses would inherit: a dead server's URI, for instance."""
    saved = dict(os.environ)
    yield
    if "mlflow" in sys.modules:
        sys.modules["mlflow"].set_tracking_uri(None)
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def small_mnist() -> Mnist:
    return make_mnist()


@pytest.fixture
def bnlab_in(monkeypatch, capsys):
    """``bnlab ARGS`` run in this process from a folder: ``call(folder, "train notebook")`` →
    (exit status, stderr). A check that refuses bad input before any work imports neither
    TensorFlow nor MLflow, so a new process would add only Python's start-up (the console
    script itself is run by tests/test_config.py)."""
    from bnlab.pipeline import cli

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    handler = signal.getsignal(signal.SIGTERM)  # a stage's command installs its own

    def call(folder, args: str) -> tuple[int, str]:
        monkeypatch.chdir(folder)
        status = cli.main(args.split())
        return status, capsys.readouterr().err

    yield call
    signal.signal(signal.SIGTERM, handler)
