"""The suite's isolation: what one test does to the process environment does not reach the next."""

import os

import mlflow

MARK = "BNLAB_ISOLATION_CHECK"


def test_a_test_may_change_the_environment_and_mlflows_uri(tmp_path):
    os.environ[MARK] = "set"
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'x.db'}")
    assert os.environ["MLFLOW_TRACKING_URI"].endswith("x.db")


def test_the_next_test_sees_none_of_it():
    """Runs after the one above (pytest keeps a module's order)."""
    assert MARK not in os.environ
    assert not os.environ.get("MLFLOW_TRACKING_URI", "").endswith("x.db")
    assert not mlflow.get_tracking_uri().endswith("x.db")
