"""Jobs and evaluations on worker processes (BNLAB_WORKERS): the same bytes as one at a time,
and every way a parallel stage can fail ends with one message, no RUNNING run, no output and no
process left."""

import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter

import numpy as np
import psutil
import pytest
import yaml

from bnlab.data.mnist import Mnist, save_npz
from bnlab.tracking.runs import EVALUATION_ROLE, ROLE_TAG

from helpers import make_mnist, make_project, run, split_project, store_env

TINY = {"epochs": 2, "seeds": [0, 1], "hidden_units": [8]}
ENDLESS = {"epochs": 1000, "seeds": [0], "hidden_units": [8]}


def workers_env(count) -> dict:
    return {**store_env(), "BNLAB_WORKERS": str(count)}


def statuses(root) -> list[str]:
    with sqlite3.connect(root / "mlflow.db") as db:
        return [status for (status,) in db.execute("select status from runs")]


def lock_outs(root, stage: str) -> dict:
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"][stage]
    return {out["path"]: out["md5"] for out in lock["outs"]}


def weights(root) -> dict:
    return {p.parent.name: p.read_bytes() for p in sorted((root / "models/notebook").glob("*/weights.npz"))}


@pytest.fixture(scope="module")
def endless(tmp_path_factory):
    """A project whose jobs train for minutes: long enough to stop one half-way."""
    root = split_project(tmp_path_factory.mktemp("workers") / "proj", make_mnist(300, 100), ENDLESS)
    return root


@pytest.mark.slow
def test_jobs_on_two_workers_give_the_bytes_and_lock_hashes_of_one_at_a_time(tmp_path):
    root = split_project(tmp_path / "proj", make_mnist(), TINY)
    done = run(["dvc", "repro", "train@notebook"], root, env=workers_env(1))
    assert "4 jobs: 4 trained, 0 restored from the runs that trained them before, on 1 worker(s)" in done.stdout
    one_at_a_time, serial_lock = weights(root), lock_outs(root, "train@notebook")
    (root / "mlflow.db").unlink()  # a fresh store: no earlier run to restore a job from
    done = run(["dvc", "repro", "--force", "train@notebook"], root, env=workers_env(2))
    assert "4 jobs: 4 trained, 0 restored from the runs that trained them before, on 2 worker(s)" in done.stdout
    assert weights(root) == one_at_a_time and len(one_at_a_time) == 4
    assert lock_outs(root, "train@notebook") == serial_lock
    assert statuses(root).count("FINISHED") == 5  # a parent and 4 jobs


def evaluation_runs(root) -> list[str]:
    with sqlite3.connect(root / "mlflow.db") as db:
        query = "select r.status from runs r join tags t on t.run_uuid = r.run_uuid where t.key = ? and t.value = ?"
        return [status for (status,) in db.execute(query, (ROLE_TAG, EVALUATION_ROLE))]


def eval_files(root) -> dict:
    return {p.name: p.read_bytes() for p in sorted((root / "eval/notebook").iterdir())}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A project whose four models are trained: what the evaluate stage tests."""
    root = split_project(tmp_path_factory.mktemp("evaluate") / "proj", make_mnist(), TINY)
    run(["dvc", "repro", "train@notebook"], root, env=workers_env(1))
    return root


@pytest.mark.slow
def test_models_tested_on_two_workers_give_the_files_of_one_at_a_time(trained):
    earlier = Counter(evaluation_runs(trained))  # the module's other tests share the store, in any order
    run(["bnlab", "evaluate", "notebook"], trained, env=workers_env(1))
    one_at_a_time = eval_files(trained)
    run(["bnlab", "evaluate", "notebook"], trained, env=workers_env(2))
    assert eval_files(trained) == one_at_a_time and set(one_at_a_time) == {"test_metrics.json", "predictions.csv"}
    assert Counter(evaluation_runs(trained)) - earlier == {"FINISHED": 8}  # each model's evaluation, twice
    assert "RUNNING" not in statuses(trained)


@pytest.mark.slow
@pytest.mark.parametrize("count", [1, 2])
def test_an_unreadable_model_fails_evaluation_with_its_name_and_leaves_no_run_open(trained, tmp_path, count):
    shutil.rmtree(trained / "eval", ignore_errors=True)
    weights = trained / "models/notebook/plain-seed1/weights.npz"
    saved = tmp_path / "weights.npz"
    shutil.copy(weights, saved)
    weights.write_bytes(saved.read_bytes()[:100])  # truncated
    try:
        done = run(["bnlab", "evaluate", "notebook"], trained, env=workers_env(count), check=False)
    finally:
        shutil.copy(saved, weights)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip() == (
        "bnlab evaluate: error: model notebook/plain-seed1 cannot be read from models/notebook/plain-seed1: "
        "BadZipFile: File is not a zip file (`dvc checkout models/notebook` restores the trained models)"
    )
    assert "RUNNING" not in statuses(trained)
    assert not (trained / "eval/notebook").exists() and not list(trained.glob("eval/.notebook.tmp-*"))


FORKSERVER_SCRIPT = """
import os, sys
from concurrent.futures import ProcessPoolExecutor
from bnlab.execution import job as job_runner, local as workers
files = (("train", sys.argv[1]),)
context = workers.start_forkserver(job_runner.splits_env(files))
assert job_runner.SPLITS_ENV not in os.environ  # the server's setting only
with ProcessPoolExecutor(1, mp_context=context) as pool:
    pool.submit(os.getpid).result()  # the server has forked a worker: it has read the files
    os.remove(sys.argv[1])
    x, y = pool.submit(job_runner.load_splits, files).result()["train"]
print(int(x.sum()), y.tolist())
"""


def test_workers_get_the_splits_their_forkserver_read_before_forking_them(tmp_path):
    # Read once, shared by every worker: the file is gone by the time the worker asks for it.
    mnist = make_mnist(30, 10)
    save_npz(tmp_path / "train.npz", {"x": mnist.x_train, "y": mnist.y_train})
    done = run([sys.executable, "-c", FORKSERVER_SCRIPT, str(tmp_path / "train.npz")], tmp_path)
    assert done.stdout.split(maxsplit=1) == [str(int(mnist.x_train.sum())), f"{mnist.y_train.tolist()}\n"]


def test_a_failing_job_fails_the_stage_with_its_own_message(tmp_path):
    # Every 9 among the first training images, which the "first" split makes the validation
    # set: the training set has no 9, and fitting refuses validation labels it never saw.
    mnist = make_mnist()
    order = np.argsort(mnist.y_train != 9, kind="stable")
    root = make_project(
        tmp_path / "proj", Mnist(mnist.x_train[order], mnist.y_train[order], mnist.x_test, mnist.y_test), TINY
    )
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["split"]["method"] = "first"
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["dvc", "repro", "split"], root)
    done = run(["bnlab", "train", "notebook"], root, env=workers_env(2), check=False)
    assert done.returncode == 1
    message = done.stderr.strip().splitlines()
    assert len(message) == 1 and "Traceback" not in done.stderr
    assert message[0].startswith("bnlab train: error: job notebook/")
    assert "failed: ValueError: validation_data has labels not seen in y: [9]" in message[0]
    assert "RUNNING" not in statuses(root) and "FAILED" in statuses(root)
    assert not (root / "models/notebook").exists() and not list(root.glob("models/.notebook.tmp-*"))


def forkserver_of(stage: subprocess.Popen) -> psutil.Process:
    """The process the stage's workers are forked from (bnlab.execution.local.start_forkserver)."""
    servers = [p for p in psutil.Process(stage.pid).children() if "forkserver" in " ".join(p.cmdline())]
    assert len(servers) == 1
    return servers[0]


def start_and_wait_for_workers(root, count: int = 2) -> tuple[subprocess.Popen, list[psutil.Process]]:
    """The stage, training; and its processes: the forkserver first, then the workers."""
    stage = subprocess.Popen(
        ["bnlab", "train", "notebook"],
        cwd=root,
        env=workers_env(count),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and stage.poll() is None:
        if training_runs(root) >= count:
            break
        time.sleep(0.5)
    assert stage.poll() is None, stage.communicate()
    workers = forkserver_of(stage).children()
    assert len(workers) == count
    return stage, [forkserver_of(stage), *workers]


def training_runs(root) -> int:
    """Job runs that have logged an epoch: their workers are past start-up."""
    try:
        with sqlite3.connect(root / "mlflow.db") as db:
            return db.execute("select count(distinct run_uuid) from metrics where key = 'train_loss'").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


@pytest.mark.slow
def test_a_worker_killed_mid_job_fails_the_stage_cleanly(endless):
    (endless / "mlflow.db").unlink(missing_ok=True)
    stage, workers = start_and_wait_for_workers(endless)
    workers[1].kill()  # a worker, as the out-of-memory killer would
    _, stderr = stage.communicate(timeout=60)
    assert stage.returncode == 1
    assert stderr.strip() == (
        "bnlab train: error: a worker process died while training (killed, or out of "
        "memory); the jobs it was running did not finish"
    )
    assert "RUNNING" not in statuses(endless) and "FINISHED" not in statuses(endless)
    assert not (endless / "models/notebook").exists() and not list(endless.glob("models/.notebook.tmp-*"))
    assert not psutil.wait_procs(workers, timeout=15)[1]  # the other worker and the forkserver too


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_stopping_the_stage_stops_its_workers(endless, signum):
    (endless / "mlflow.db").unlink(missing_ok=True)
    stage, workers = start_and_wait_for_workers(endless)
    stage.send_signal(signum)
    stage.communicate(timeout=60)
    _, alive = psutil.wait_procs(workers, timeout=15)
    assert not alive  # SIGKILL included: the workers and their forkserver die with the stage
    if signum == signal.SIGTERM:
        assert stage.returncode == 130 and set(statuses(endless)) == {"KILLED"}
    else:  # nothing ran to end them: the next execution will (test_faults.py)
        assert set(statuses(endless)) == {"RUNNING"}
    for leftover in endless.glob("models/.notebook.tmp-*"):  # kill -9 leaves its temporary folder
        subprocess.run(["rm", "-rf", str(leftover)], check=True)


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_a_bad_worker_count_is_refused_before_any_work(endless, value):
    (endless / "mlflow.db").unlink(missing_ok=True)
    done = run(["bnlab", "train", "notebook"], endless, env=workers_env(value), check=False)
    assert done.returncode == 1
    assert done.stderr.strip().startswith(
        f"bnlab train: error: BNLAB_WORKERS={value!r}: expected the number "
        f"of worker processes, a whole number of at least 1"
    )
    assert not (endless / "mlflow.db").exists() and not (endless / "models/notebook").exists()
