"""A full disk under any stage's output, under MLflow's artifacts or under its database: one line
naming the path and the cause, exit status 1, nothing half-written, no run left RUNNING."""

import re
import sqlite3
from pathlib import Path
from urllib.parse import urlparse

import pytest

from disks import can_mount, full_disk
from helpers import make_mnist, run, split_project, store_env

pytestmark = [pytest.mark.slow, pytest.mark.skipif(can_mount() is not None, reason=str(can_mount()))]
FULL = "No space left on device"


def statuses(db) -> set[str]:
    with sqlite3.connect(db) as connection:
        return {status for (status,) in connection.execute("select status from runs")}


def failed_runs(db) -> int:
    with sqlite3.connect(db) as connection:
        return connection.execute("select count(*) from runs where status = 'FAILED'").fetchone()[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = split_project(
        tmp_path_factory.mktemp("full") / "proj",
        make_mnist(300, 100),
        {"epochs": 1, "seeds": [0], "hidden_units": [8], "probes": None},
    )
    run(["dvc", "repro", "evaluate@notebook"], root, env=store_env())  # report's inputs too
    return root


def only_line(done, stage: str) -> str:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1, done.stderr
    assert len(lines) == 1 and lines[0].startswith(f"bnlab {stage}: error: "), done.stderr
    return lines[0]


@pytest.mark.parametrize(
    "stage, folder, output",
    [
        ("split", "data/prepared", "data/prepared/train.npz"),
        ("train", "models", "models/notebook"),
        ("evaluate", "eval", "eval/notebook"),
        ("report", "reports", "reports/notebook/curves"),  # its first output
    ],
)
def test_a_full_output_disk_is_one_line_and_leaves_nothing(trained, stage, folder, output):
    failed_before = failed_runs(trained / "mlflow.db")
    command = ["bnlab", stage] + ([] if stage == "split" else ["notebook"])
    with full_disk(trained / folder) as full:
        done = run(command, trained, env=store_env(), check=False)
        left = sorted(str(p.relative_to(full)) for p in full.rglob("*") if p.is_file() and p.name != ".filler")
    assert only_line(done, stage) == f"bnlab {stage}: error: cannot write {output}: {FULL}"
    assert left == []  # no part of any output (an empty parent folder is no output)
    assert "RUNNING" not in statuses(trained / "mlflow.db")
    if stage == "train":  # its runs end FAILED
        assert failed_runs(trained / "mlflow.db") > failed_before


def finished_job_runs_without_their_files(db) -> list[str]:
    """Job runs that claim a cached model (FINISHED, with a cache key) but whose job/ is empty."""
    with sqlite3.connect(db) as connection:
        rows = connection.execute(
            "select r.name, r.artifact_uri from runs r join tags t on t.run_uuid = r.run_uuid "
            "and t.key = 'bnlab.job_key' where r.status = 'FINISHED'"
        ).fetchall()
    return [name for name, uri in rows if not any((Path(urlparse(uri).path) / "job").glob("*"))]


def test_a_full_artifact_store_names_the_file_mlflow_could_not_copy(trained):
    failed_before = failed_runs(trained / "mlflow.db")
    with full_disk(trained / "mlartifacts"):
        done = run(["bnlab", "train", "notebook"], trained, env=store_env(), check=False)
    line = only_line(done, "train")
    assert re.fullmatch(rf"bnlab train: error: cannot write {re.escape(str(trained))}/mlartifacts/\S+: {FULL}", line)
    assert "RUNNING" not in statuses(trained / "mlflow.db")
    assert failed_runs(trained / "mlflow.db") > failed_before
    assert finished_job_runs_without_their_files(trained / "mlflow.db") == []
    assert not list((trained / "models").glob(".notebook.tmp-*"))  # no part of the new models


def test_a_full_database_disk_names_the_store_and_the_drivers_message(trained, tmp_path):
    store = tmp_path / "store"
    uri = f"sqlite:///{store / 'mlflow.db'}"
    store.mkdir()
    run(["bnlab", "evaluate", "notebook"], trained, env=store_env(uri))  # a store with runs in it
    with full_disk(store, keep=True):
        done = run(["bnlab", "train", "notebook"], trained, env=store_env(uri), check=False)
        after = statuses(store / "mlflow.db")
    line = only_line(done, "train")
    assert line == (
        f"bnlab train: error: MLflow tracking store {uri} failed: (sqlite3.OperationalError) database or disk is full"
    )
    assert "RUNNING" not in after
