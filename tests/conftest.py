"""Fixtures every test gets; the helpers the tests import are in helpers.py."""

from __future__ import annotations

import os
import sys

import pytest

from bnlab.data.mnist import Mnist

from helpers import make_mnist


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
