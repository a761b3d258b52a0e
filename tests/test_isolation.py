"""The suite's isolation: what one test does to the process environment and MLflow's state does
not reach the next (conftest.py's ``isolated_environment``). The pair of tests runs in a pytest
of its own, in a fixed order, so the check holds whatever order this suite runs in; and without
the fixture the same pair fails, so the check can tell."""

import shutil

from helpers import PROJECT, run

PAIR = """
import os

import mlflow

MARK = "BNLAB_ISOLATION_CHECK"


def nothing_leaked():
    assert MARK not in os.environ
    assert not os.environ.get("MLFLOW_TRACKING_URI", "").endswith("x.db")
    assert not mlflow.get_tracking_uri().endswith("x.db")


def test_before():
    nothing_leaked()


def test_change(tmp_path):
    os.environ[MARK] = "set"
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'x.db'}")
    assert os.environ["MLFLOW_TRACKING_URI"].endswith("x.db")


def test_after():
    nothing_leaked()
"""


def pytest_pair(folder, conftest: bool):
    folder.mkdir()
    (folder / "test_pair.py").write_text(PAIR)
    if conftest:
        shutil.copy(PROJECT / "tests" / "conftest.py", folder / "conftest.py")
    return run(
        [
            "python",
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:randomly",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "--rootdir",
            str(folder),
            "-c",
            "/dev/null",
            "test_pair.py",
        ],
        folder,
        check=False,
    )


def test_what_one_test_changes_does_not_reach_the_next(tmp_path):
    isolated = pytest_pair(tmp_path / "isolated", conftest=True)
    assert isolated.returncode == 0 and "3 passed" in isolated.stdout, isolated.stdout[-2000:]
    leaking = pytest_pair(tmp_path / "leaking", conftest=False)
    assert leaking.returncode == 1 and "1 failed, 2 passed" in leaking.stdout, leaking.stdout[-2000:]
