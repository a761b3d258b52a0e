"""Training jobs on a Dask cluster: a real `dask scheduler`, two `dask worker` processes started
the usual way (each under its nanny) and an `mlflow server`, all on 127.0.0.1. Same bytes as one
job at a time here; a worker killed mid-job fails the stage cleanly; a SQLite store or an
unreachable scheduler is refused before any job."""

import os
import signal
import sqlite3
import subprocess
import time

import pytest

from helpers import make_mnist, run, split_project, store_env
from servers import dask_cluster, mlflow_server

TINY = {"epochs": 3, "seeds": [0, 1], "hidden_units": [8]}


def weights(root) -> dict:
    return {p.parent.name: p.read_bytes() for p in sorted((root / "models/notebook").glob("*/weights.npz"))}


def statuses(database) -> list[str]:
    with sqlite3.connect(database) as db:
        return [status for (status,) in db.execute("select status from runs")]


@pytest.fixture()
def project(tmp_path):
    root = split_project(tmp_path / "proj", make_mnist(300, 100), TINY)
    return root


@pytest.mark.slow
def test_jobs_on_dask_workers_give_the_bytes_of_one_at_a_time(project, tmp_path):
    run(["bnlab", "train", "notebook"], project, env={**store_env(), "BNLAB_WORKERS": "1"})
    local = weights(project)
    server_db = tmp_path / "server.db"
    with (
        mlflow_server(f"sqlite:///{server_db}", tmp_path / "artifacts") as (url, _),
        dask_cluster(tmp_path) as (scheduler, _),
    ):
        done = run(["bnlab", "train", "notebook"], project, env={**store_env(url), "BNLAB_DASK_SCHEDULER": scheduler})
    assert (
        f"4 jobs: 4 trained, 0 restored from the runs that trained them before, on the Dask cluster at "
        f"{scheduler}" in done.stdout
    )
    assert weights(project) == local and len(local) == 4
    assert statuses(server_db) == ["FINISHED"] * 5  # a parent and 4 jobs, written by the workers


@pytest.mark.slow
def test_a_dask_worker_killed_mid_job_fails_the_stage_cleanly(project, tmp_path):
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("epochs: 3", "epochs: 1000"))  # minutes per job
    server_db = tmp_path / "server.db"
    with (
        mlflow_server(f"sqlite:///{server_db}", tmp_path / "artifacts") as (url, _),
        dask_cluster(tmp_path) as (scheduler, workers),
    ):
        stage = subprocess.Popen(
            ["bnlab", "train", "notebook"],
            cwd=project,
            text=True,
            env={**store_env(url), "BNLAB_DASK_SCHEDULER": scheduler},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and epochs_logged(server_db) < 2 and stage.poll() is None:
            time.sleep(0.5)
        os.killpg(workers[0].pid, signal.SIGKILL)  # the worker's machine gone: nanny, worker and its job
        _, stderr = stage.communicate(timeout=90)
    assert stage.returncode == 1, stderr
    assert stderr.strip().startswith("bnlab train: error: Dask workers died running"), stderr
    assert "RUNNING" not in statuses(server_db) and "FINISHED" not in statuses(server_db)
    assert not (project / "models/notebook").exists()


def epochs_logged(database) -> int:
    try:
        with sqlite3.connect(database) as db:
            return db.execute("select count(distinct run_uuid) from metrics where key = 'train_loss'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_a_local_sqlite_store_is_refused_for_a_cluster(project):
    done = run(
        ["bnlab", "train", "notebook"],
        project,
        env={**store_env(), "BNLAB_DASK_SCHEDULER": "tcp://127.0.0.1:8786"},
        check=False,
    )
    assert done.returncode == 1
    assert (
        "BNLAB_DASK_SCHEDULER=tcp://127.0.0.1:8786: Dask workers write their runs to the tracking store" in done.stderr
        and "sqlite:///" in done.stderr
    )
    assert not (project / "mlflow.db").exists()


@pytest.mark.slow
def test_an_unreachable_scheduler_fails_within_30_seconds_naming_it(project, tmp_path):
    # The scheduler is asked before the tracking server: a server nothing listens at is fine here.
    started = time.monotonic()
    done = run(
        ["bnlab", "train", "notebook"],
        project,
        env={**store_env("http://127.0.0.1:9"), "BNLAB_DASK_SCHEDULER": "tcp://127.0.0.1:9"},
        check=False,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(
        "bnlab train: error: BNLAB_DASK_SCHEDULER=tcp://127.0.0.1:9: the Dask scheduler is unreachable"
    )
    assert elapsed < 30 + 10  # 30 s as promised, plus starting Python and the imports
    assert not (project / "models/notebook").exists()
