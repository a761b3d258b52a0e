"""Fixtures every test gets; the helpers the tests import are in helpers.py."""

from __future__ import annotations

import os
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
