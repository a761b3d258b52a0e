"""Faults during a stage: interrupted training, an unreachable tracking server, bad data.
Each ends with a clear message, no RUNNING run and no partial output."""

import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers import make_mnist, project_env, run, split_project

TINY = {"epochs": 1000, "seeds": [0], "hidden_units": [8]}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = split_project(tmp_path_factory.mktemp("faults") / "proj", make_mnist(300, 100), TINY)
    return root


def env_without_tracking_uri():
    env = project_env()
    env.pop("MLFLOW_TRACKING_URI", None)
    env["BNLAB_WORKERS"] = "1"  # jobs in the stage's own process (test_workers.py: on workers)
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


@pytest.mark.parametrize("signum", [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)])
def test_a_signal_during_training_kills_the_runs_and_keeps_no_model(prepared, signum):
    root = prepared
    (root / "mlflow.db").unlink(missing_ok=True)
    process = start_training_and_wait_for(root, epochs=2)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "interrupted; no output was kept" in stderr and "Traceback" not in stderr
    assert run_statuses(root) and set(run_statuses(root)) == {"KILLED"}
    assert not (root / "models/notebook").exists()
    assert not list(root.glob("models/.notebook.tmp-*"))


def start_training_and_wait_for(root, epochs: int) -> subprocess.Popen:
    process = subprocess.Popen(
        ["bnlab", "train", "notebook"],
        cwd=root,
        env=env_without_tracking_uri(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ctrl_c_as_in_a_terminal,
    )
    deadline = time.monotonic() + 120
    while epochs_logged(root) < epochs and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    assert process.poll() is None, process.communicate()
    return process


def ctrl_c_as_in_a_terminal() -> None:
    """SIGINT's default action for the stage, even when the tests run under nohup or in a
    background job, which ignore it (and the stage rightly inherits that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_runs_of_a_stage_killed_with_sigkill_are_ended_by_the_next_execution(prepared):
    root = prepared
    (root / "mlflow.db").unlink(missing_ok=True)
    process = start_training_and_wait_for(root, epochs=2)
    process.kill()  # SIGKILL: nothing in the process runs any more, as with the OOM killer
    process.communicate(timeout=30)
    assert set(run_statuses(root)) == {"RUNNING"}
    assert list(root.glob("models/.notebook.tmp-*"))  # what kill -9 leaves behind

    params_file = root / "params.yaml"
    original = params_file.read_text()
    params = yaml.safe_load(original)
    params["experiments"]["notebook"]["model"]["epochs"] = 1
    params_file.write_text(yaml.safe_dump(params))
    try:
        done = run(["bnlab", "train", "notebook"], root, env=env_without_tracking_uri())
    finally:
        params_file.write_text(original)
        shutil.rmtree(root / "models", ignore_errors=True)  # the other tests expect no models
    with sqlite3.connect(root / "mlflow.db") as db:
        rows = db.execute(
            "select r.status, t.value from runs r left join tags t "
            "on t.run_uuid = r.run_uuid and t.key = 'bnlab.ended_by'"
        ).fetchall()
    killed = [reason for status, reason in rows if status == "KILLED"]
    assert len(killed) == 2 and all(f"its process {process.pid} " in reason for reason in killed)  # parent + child
    assert sorted(status for status, _ in rows) == ["FINISHED"] * 3 + ["KILLED"] * 2  # re-run: parent + 2 jobs
    assert done.stdout.count("ended run ") == 2
    assert not list(root.glob("models/.notebook.tmp-*"))  # the leftover is gone too


def test_a_live_process_keeps_its_running_runs(prepared):
    """Another stage started meanwhile must not end the runs of one that is still training."""
    root = prepared
    (root / "mlflow.db").unlink(missing_ok=True)
    process = start_training_and_wait_for(root, epochs=1)
    try:
        from mlflow import MlflowClient

        from bnlab.tracking import runs as tracking

        client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
        experiment = client.get_experiment_by_name(tracking.experiment_name())
        assert tracking.end_orphaned_runs(client, experiment.experiment_id) == []
        assert set(run_statuses(root)) == {"RUNNING"}
    finally:
        process.terminate()
        process.communicate(timeout=60)


def test_an_unreachable_tracking_server_fails_fast_naming_the_uri(prepared):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = project_env()
    env["MLFLOW_TRACKING_URI"] = f"http://127.0.0.1:{port}"
    shutil.rmtree(prepared / "models", ignore_errors=True)  # another test's, in any order
    started = time.monotonic()
    done = run(["bnlab", "train", "notebook"], prepared, env=env, check=False)
    assert time.monotonic() - started < 30
    assert done.returncode == 1
    assert f"MLflow tracking server http://127.0.0.1:{port} is unreachable" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (prepared / "models/notebook").exists()


def test_a_corrupt_split_stops_training_before_any_run(prepared, bnlab_in):
    prepared_file = prepared / "data/prepared/val.npz"
    original = prepared_file.read_bytes()
    (prepared / "mlflow.db").unlink(missing_ok=True)
    try:
        prepared_file.write_bytes(original[: len(original) // 3])
        status, stderr = bnlab_in(prepared, "train notebook")
    finally:
        prepared_file.write_bytes(original)
    assert status == 1
    assert "data/prepared/val.npz" in stderr and "Traceback" not in stderr
    assert not (prepared / "mlflow.db").exists() or run_statuses(prepared) == []


def test_wrong_dtype_in_a_split_is_named(prepared, bnlab_in):
    test_file = prepared / "data/prepared/test.npz"
    original = test_file.read_bytes()
    try:
        np.savez_compressed(test_file, x=np.zeros((10, 28, 28), np.float32), y=np.zeros(10, np.uint8))
        (prepared / "models/notebook").mkdir(parents=True, exist_ok=True)
        status, stderr = bnlab_in(prepared, "evaluate notebook")
    finally:
        test_file.write_bytes(original)
        shutil.rmtree(prepared / "models", ignore_errors=True)  # the other tests expect no models
    assert status == 1
    assert "test.npz: x: expected uint8" in stderr


@pytest.fixture
def read_only_dir(tmp_path):
    """A read-only file system (tests run as root, for whom permissions are no obstacle)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if done.returncode != 0:
        import os

        if os.geteuid() != 0:
            folder.chmod(0o555)
            yield folder
            folder.chmod(0o755)
            return
        pytest.skip(f"cannot make a read-only folder here: {done.stderr.strip()}")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_an_unwritable_output_folder_is_a_clear_early_error(read_only_dir, tmp_path):
    from bnlab.data import mnist as data
    from bnlab.pipeline.stages import split as split_stage

    source = tmp_path / "mnist.npz"
    data.save_npz(source, make_mnist(60, 20).arrays())
    params = tmp_path / "params.yaml"
    params.write_text((Path(__file__).parents[1] / "params.yaml").read_text().replace("val_size: 5000", "val_size: 10"))
    with pytest.raises(OSError, match=f"output folder {read_only_dir / 'prepared'}"):
        split_stage.run(str(params), source=source, out_dir=read_only_dir / "prepared")
    with pytest.raises(OSError, match="not writable"):
        split_stage.run(str(params), source=source, out_dir=read_only_dir)


def corrupt(path, how: str) -> None:
    from bnlab.data import mnist as data

    arrays = dict(data.mnist_from_npz(path).arrays())
    raw = path.read_bytes()
    if how == "missing":
        path.unlink()
    elif how == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif how == "corrupted bytes":
        middle = len(raw) // 2
        path.write_bytes(raw[:middle] + bytes(b ^ 0xFF for b in raw[middle : middle + 64]) + raw[middle + 64 :])
    else:
        if how == "wrong shape":
            arrays["x_train"] = arrays["x_train"].reshape(-1, 14, 56)
        elif how == "wrong dtype":
            arrays["y_train"] = arrays["y_train"].astype(np.int64)
        elif how == "labels out of range":
            arrays["y_test"] = arrays["y_test"] + 10
        np.savez_compressed(path, **arrays)


@pytest.mark.parametrize(
    "how, message",
    [
        ("missing", "data/raw/mnist.npz: file not found"),
        ("truncated", "data/raw/mnist.npz"),
        ("corrupted bytes", "data/raw/mnist.npz"),
        ("wrong shape", "x_train: expected uint8 N×28×28"),
        ("wrong dtype", "y_train: expected uint8"),
        ("labels out of range", "y_test: labels must be digits 0..9"),
    ],
)
def test_a_bad_input_file_is_named_and_nothing_produced_is_lost(prepared, bnlab_in, how, message):
    raw_file = prepared / "data/raw/mnist.npz"
    original = raw_file.read_bytes()
    before = {p.name: p.read_bytes() for p in (prepared / "data/prepared").iterdir()}
    try:
        corrupt(raw_file, how)
        status, stderr = bnlab_in(prepared, "split")
    finally:
        raw_file.write_bytes(original)
    assert status == 1
    assert message in stderr and "Traceback" not in stderr
    after = {p.name: p.read_bytes() for p in (prepared / "data/prepared").iterdir()}
    assert after == before  # the earlier outputs are untouched, no temporary files left


CHECK_IMPORTS = """
import sys
from bnlab.pipeline.cli import main
code = main({argv!r})
print(code, "tensorflow" in sys.modules, "mlflow" in sys.modules)
"""


@pytest.mark.parametrize(
    "stage, damaged",
    [("train", "data/prepared/val.npz"), ("evaluate", "data/prepared/test.npz"), ("split", "data/raw/mnist.npz")],
)
def test_a_bad_data_file_is_reported_before_tensorflow_and_mlflow_are_imported(prepared, stage, damaged):
    path = prepared / damaged
    original = path.read_bytes()
    try:
        path.write_bytes(original[: len(original) // 3])
        argv = [stage, "notebook"] if stage != "split" else [stage]
        done = run([sys.executable, "-c", CHECK_IMPORTS.format(argv=argv)], prepared, check=False)
    finally:
        path.write_bytes(original)
    assert done.stdout.split() == ["1", "False", "False"], done.stderr
    assert damaged in done.stderr


def test_a_signal_during_an_mlflow_write_is_held_until_the_write_is_done():
    import os

    from bnlab.tracking.logged import signals_held

    done = []
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)  # SIGINT: ignored under nohup
    with pytest.raises(KeyboardInterrupt, match="signal 15"):
        with signals_held():
            os.kill(os.getpid(), signal.SIGTERM)
            done.append("write finished")
    assert done == ["write finished"]
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before  # the handlers restored


def test_an_ignored_signal_stays_ignored_during_an_mlflow_write():
    import os

    from bnlab.tracking.logged import signals_held

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as under nohup
    try:
        with signals_held():
            os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
