"""Faults during a stage: interrupted training, an unreachable tracking server, bad data.
Each ends with a clear message, no RUNNING run and no partial output."""

import signal
import socket
import sqlite3
import subprocess
import time

import numpy as np
import pytest
import yaml

from conftest import make_mnist, make_project, project_env, run

TINY = {"epochs": 1000, "seeds": [0], "hidden_units": [8]}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("faults") / "proj", make_mnist(300, 100), TINY)
    run(["dvc", "repro", "split"], root)
    return root


def env_without_tracking_uri():
    env = project_env()
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def run_statuses(root) -> list[str]:
    with sqlite3.connect(root / "mlflow.db") as db:
        return [status for (status,) in db.execute("select status from runs")]


def epochs_logged(root) -> int:
    try:
        with sqlite3.connect(root / "mlflow.db") as db:
            return db.execute("select count(*) from metrics where key = 'train_loss'").fetchone()[0]
    except sqlite3.OperationalError:  # tables not created yet
        return 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_training_kills_the_runs_and_keeps_no_model(prepared, signum):
    root = prepared
    (root / "mlflow.db").unlink(missing_ok=True)
    process = subprocess.Popen(["bnlab", "train"], cwd=root, env=env_without_tracking_uri(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while epochs_logged(root) < 2 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    assert process.poll() is None, process.communicate()
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "interrupted; no output was kept" in stderr and "Traceback" not in stderr
    assert run_statuses(root) and set(run_statuses(root)) == {"KILLED"}
    assert not (root / "models").exists()
    assert not list(root.glob(".models.tmp-*"))


def test_an_unreachable_tracking_server_fails_fast_naming_the_uri(prepared):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = project_env()
    env["MLFLOW_TRACKING_URI"] = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    done = run(["bnlab", "train"], prepared, env=env, check=False)
    assert time.monotonic() - started < 30
    assert done.returncode == 1
    assert f"MLflow tracking server http://127.0.0.1:{port} is unreachable" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (prepared / "models").exists()


def test_a_corrupt_split_stops_training_before_any_run(prepared, tmp_path):
    prepared_file = prepared / "data/prepared/val.npz"
    original = prepared_file.read_bytes()
    (prepared / "mlflow.db").unlink(missing_ok=True)
    try:
        prepared_file.write_bytes(original[: len(original) // 3])
        done = run(["bnlab", "train"], prepared, env=env_without_tracking_uri(), check=False)
    finally:
        prepared_file.write_bytes(original)
    assert done.returncode == 1
    assert "data/prepared/val.npz" in done.stderr and "Traceback" not in done.stderr
    assert not (prepared / "mlflow.db").exists() or run_statuses(prepared) == []


def test_wrong_dtype_in_a_split_is_named(prepared):
    test_file = prepared / "data/prepared/test.npz"
    original = test_file.read_bytes()
    try:
        np.savez_compressed(test_file, x=np.zeros((10, 28, 28), np.float32), y=np.zeros(10, np.uint8))
        done = run(["bnlab", "evaluate"], prepared, env=env_without_tracking_uri(), check=False)
    finally:
        test_file.write_bytes(original)
    assert done.returncode == 1
    assert "test.npz: x must be uint8" in done.stderr


def test_a_bad_param_stops_every_stage_before_work(prepared):
    params_file = prepared / "params.yaml"
    original = params_file.read_text()
    params = yaml.safe_load(original)
    params["train"]["seeds"] = []
    try:
        params_file.write_text(yaml.safe_dump(params))
        for stage in ("download", "split", "train", "evaluate", "report"):
            done = run(["bnlab", stage], prepared, check=False)
            assert done.returncode == 2, stage
            assert "train.seeds" in done.stderr and "Traceback" not in done.stderr
    finally:
        params_file.write_text(original)
