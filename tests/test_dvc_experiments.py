"""`dvc exp run`, queued or not, puts its runs in the project's own store (mlflow.db at the
repository root), tagged with the DVC experiment's name and baseline commit; an experiment whose
stages DVC restored from its run cache gets copies of the runs that made its outputs; `dvc exp
show` and `dvc metrics diff` compare an experiment with its baseline."""

import csv
import io
import json
import shutil
import sqlite3
import subprocess
import time

import dvc.api
import pandas
import pytest

from helpers import make_mnist, run, split_project, store_env

TINY = {"epochs": 1, "seeds": [0], "hidden_units": [8]}
LEARNING_RATE = "experiments.notebook.model.learning_rate"


def runs_by_experiment(root) -> dict[str, list[tuple[str, str, str | None]]]:
    """DVC experiment name → (run name, status, provenance tag) of every run tagged with it but
    the evaluation runs."""
    with sqlite3.connect(root / "mlflow.db") as db:
        rows = db.execute(
            "select e.value, r.name, r.status, (select value from tags where run_uuid = r.run_uuid "
            "and key = 'bnlab.provenance') from runs r join tags e on e.run_uuid = r.run_uuid "
            "and e.key = 'dvc.exp_name' where not exists (select 1 from tags where run_uuid = r.run_uuid "
            "and key = 'bnlab.role' and value = 'evaluation')"
        ).fetchall()
    found = {}
    for exp, name, status, provenance in rows:
        found.setdefault(exp, []).append((name, status, provenance))
    return found


def baseline_revs(root) -> set[str]:
    with sqlite3.connect(root / "mlflow.db") as db:
        return {v for (v,) in db.execute("select value from tags where key = 'dvc.baseline_rev'")}


def exp_names(root) -> set[str]:
    shown = json.loads(run(["dvc", "exp", "show", "--json"], root, env=store_env()).stdout)
    return {
        exp["name"]
        for commit in shown
        for exp in (commit.get("experiments") or [])
        for exp in exp.get("revs", [])
        if exp.get("name")
    }


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """A committed baseline, trained once for the file's tests."""
    root = split_project(tmp_path_factory.mktemp("baseline") / "proj", make_mnist(300, 100), TINY)
    run(["dvc", "repro"], root, env=store_env())
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "baseline"], root)
    return root


@pytest.fixture()
def project(baseline, tmp_path):
    """A copy of the baseline of the test's own (DVC's runtime folder left behind)."""
    root = tmp_path / "proj"
    shutil.copytree(baseline, root, symlinks=True, ignore=lambda folder, _: ["tmp"] if folder.endswith(".dvc") else [])
    return root


@pytest.mark.slow
def test_two_queued_experiments_on_two_workers_land_in_the_project_store(project):
    root = project
    env = {**store_env(), "BNLAB_WORKERS": "1"}  # two experiments at once: one job each at a time
    for rate in ("0.005", "0.002"):
        run(["dvc", "exp", "run", "--queue", "-S", f"{LEARNING_RATE}={rate}"], root, env=env)
    run(["dvc", "queue", "start", "-j", "2"], root, env=env)
    try:
        wait_for_queue(root, env)
    finally:
        subprocess.run(["dvc", "queue", "stop", "--kill"], cwd=root, env=env, capture_output=True)
    status = run(["dvc", "queue", "status"], root, env=env).stdout
    assert status.count("Success") == 2, status
    names = exp_names(root)
    assert len(names) == 2
    found = runs_by_experiment(root)
    for name in names:  # a parent and two model runs each, all finished, all trained here
        assert [status for _, status, _ in found[name]] == ["FINISHED"] * 3
        assert sorted(n for n, _, _ in found[name])[1:] == ["notebook/batchnorm-seed0", "notebook/plain-seed0"]
        assert {provenance for _, _, provenance in found[name]} == {"trained"}
    head = run(["git", "rev-parse", "HEAD"], root).stdout.strip()
    assert baseline_revs(root) == {head}
    assert not list(root.glob(".dvc/tmp/exps/**/mlflow.db"))


def wait_for_queue(root, env, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = run(["dvc", "queue", "status"], root, env=env).stdout
        if "Queued" not in status and "Running" not in status:
            return
        time.sleep(2)
    raise AssertionError(f"the queue did not finish in {timeout} s:\n{status}")


@pytest.mark.slow
def test_an_experiment_restored_from_the_run_cache_has_its_runs(project):
    root = project
    done = run(["dvc", "exp", "run", "-n", "first", "-S", f"{LEARNING_RATE}=0.005"], root, env=store_env())
    assert_metrics_compare_with_the_baseline(root)
    # A DVC experiment is a variation: the registry keeps the baseline's models and aliases.
    assert "not registered: DVC experiment first" in done.stdout
    with sqlite3.connect(root / "mlflow.db") as db:
        versions = db.execute("select name, count(*) from model_versions group by name").fetchall()
    assert sorted(versions) == [("bnlab-notebook-batchnorm", 1), ("bnlab-notebook-plain", 1)]
    run(["git", "checkout", "--", "."], root)  # back to the baseline's params, lock and outputs
    run(["dvc", "checkout"], root, env=store_env())
    done = run(["dvc", "exp", "run", "-n", "second", "-S", f"{LEARNING_RATE}=0.005"], root, env=store_env())
    assert "Stage 'train@notebook' is cached - skipping run" in done.stdout + done.stderr
    found = runs_by_experiment(root)
    assert {"first", "second"} <= set(found) and {"first", "second"} <= exp_names(root)
    assert [status for _, status, _ in found["first"]] == ["FINISHED"] * 3
    second = found["second"]
    assert sorted(n for n, _, _ in second)[1:] == ["notebook/batchnorm-seed0", "notebook/plain-seed0"]
    assert [(status, provenance) for _, status, provenance in second] == [("FINISHED", "copied")] * 3
    with sqlite3.connect(root / "mlflow.db") as db:  # the copies carry the test metrics and history
        copied = db.execute(
            "select count(*) from runs r join tags t on t.run_uuid = r.run_uuid "
            "join latest_metrics m on m.run_uuid = r.run_uuid "
            "where t.key = 'bnlab.source_run' and m.key in ('test_accuracy', 'val_loss')"
        ).fetchone()[0]
    assert copied == 2 * 2


def assert_metrics_compare_with_the_baseline(root) -> None:
    """`dvc exp show --only-changed` lists the experiment's learning rate and metrics beside the
    baseline's and no setting they share, `dvc.api.exp_show()` gives pandas the same table, and
    `dvc metrics diff` sees its test metrics move (docs/scale.md's commands)."""
    shown = run(["dvc", "exp", "show", "--only-changed", "--csv"], root, env=store_env()).stdout
    table = list(csv.DictReader(io.StringIO(shown)))
    assert {"batchnorm.test_accuracy_mean", "plain.test_loss_mean", LEARNING_RATE} <= set(table[0])
    assert "experiments.notebook.model.epochs" not in table[0]  # the same in both: left out
    assert len({row[LEARNING_RATE] for row in table}) == 2  # the baseline's and the experiment's
    frame = pandas.DataFrame(dvc.api.exp_show(repo=str(root)))
    assert {"batchnorm.test_accuracy_mean", LEARNING_RATE} <= set(frame.columns)
    assert frame[LEARNING_RATE].nunique() == 2
    diff = json.loads(run(["dvc", "metrics", "diff", "--json"], root, env=store_env()).stdout)
    moved = diff["reports/notebook/metrics.json"]["plain.test_loss_mean"]
    assert moved["old"] != moved["new"]
