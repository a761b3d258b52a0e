"""Credentials in the tracking URI reach every job wherever it runs, and never show: a real
`mlflow server --app-name basic-auth` on 127.0.0.1 that refuses anonymous requests, the jobs on
two local workers and on a Dask cluster, the user and password given in the URI."""

import os
import sqlite3

import pytest
from mlflow import MlflowClient

from bnlab.tracking.store import experiment_name

from helpers import make_mnist, run, split_project, store_env
from servers import AUTH_ADMIN, dask_cluster, mlflow_server

SMALL = {"epochs": 1, "seeds": [0, 1], "hidden_units": [8], "probes": None}
PASSWORD = "s3cret-" + os.urandom(4).hex()


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = split_project(tmp_path_factory.mktemp("credentials") / "proj", make_mnist(300, 100), SMALL)
    return root


def check_runs_and_secrecy(url: str, done, server_db) -> None:
    assert PASSWORD not in done.stdout + done.stderr
    client = MlflowClient(url)
    os.environ.update(MLFLOW_TRACKING_USERNAME=AUTH_ADMIN, MLFLOW_TRACKING_PASSWORD=PASSWORD)  # reset after the test
    experiment = client.get_experiment_by_name(experiment_name())
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 5 and {r.info.status for r in runs} == {"FINISHED"}  # a parent and 4 jobs
    assert {r.info.run_name for r in runs} >= {f"notebook/{v}-seed{s}" for v in ("batchnorm", "plain") for s in (0, 1)}
    with sqlite3.connect(server_db) as db:  # nothing the server keeps holds the password
        for table in ("tags", "params", "runs", "experiment_tags"):
            assert all(PASSWORD not in str(row) for row in db.execute(f"select * from {table}")), table


@pytest.mark.slow
def test_credentials_in_the_uri_reach_two_local_workers(project, tmp_path):
    server_db = tmp_path / "server.db"
    with mlflow_server(f"sqlite:///{server_db}", tmp_path / "artifacts", admin_password=PASSWORD) as (url, _):
        anonymous = run(["bnlab", "train", "notebook"], project, env=store_env(url), check=False)
        assert anonymous.returncode == 1 and "401" in anonymous.stderr  # the server does refuse
        uri = url.replace("http://", f"http://{AUTH_ADMIN}:{PASSWORD}@")
        done = run(["bnlab", "train", "notebook"], project, env={**store_env(uri), "BNLAB_WORKERS": "2"})
        assert "4 jobs on 2 worker(s)" in done.stdout
        check_runs_and_secrecy(url, done, server_db)


@pytest.mark.slow
def test_credentials_in_the_uri_reach_the_dask_workers(project, tmp_path):
    server_db = tmp_path / "server.db"
    with (
        mlflow_server(f"sqlite:///{server_db}", tmp_path / "artifacts", admin_password=PASSWORD) as (url, _),
        dask_cluster(tmp_path) as (scheduler, _),
    ):
        uri = url.replace("http://", f"http://{AUTH_ADMIN}:{PASSWORD}@")
        done = run(["bnlab", "train", "notebook"], project, env={**store_env(uri), "BNLAB_DASK_SCHEDULER": scheduler})
        assert f"on the Dask cluster at {scheduler}" in done.stdout
        check_runs_and_secrecy(url, done, server_db)
        assert not any(PASSWORD in log.read_text() for log in tmp_path.glob("dask-*.log"))
