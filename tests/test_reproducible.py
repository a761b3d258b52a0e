"""Two clean `dvc repro` runs give the same bytes; DVC experiments and metrics diff work."""

import csv
import io
import json

import pytest
import yaml

from helpers import make_mnist, make_project, run

SMALL = {"epochs": 2, "seeds": [0, 1], "hidden_units": [16]}


def lock_hashes(root):
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    return {out["path"]: out["md5"] for stage in lock["stages"].values()
            for kind in ("outs", "metrics", "plots") for out in stage.get(kind, [])}


@pytest.mark.slow
def test_two_clean_runs_give_identical_outputs(tmp_path):
    mnist = make_mnist(600, 200)
    first = make_project(tmp_path / "a", mnist, SMALL)
    second = make_project(tmp_path / "b", mnist, SMALL)
    for root in (first, second):
        run(["dvc", "repro"], root)
    for name in ("metrics.json", "probes.csv", "steps.csv"):
        assert (first / "reports/notebook" / name).read_bytes() == (second / "reports/notebook" / name).read_bytes()
    hashes = lock_hashes(first)
    assert {"models/notebook", "eval/notebook", "reports/notebook/figures", "reports/notebook/metrics.json",
            "data/raw/mnist.npz"} <= set(hashes)
    assert hashes == lock_hashes(second)


@pytest.mark.slow
def test_dvc_experiments_and_metrics_diff(tmp_path):
    root = make_project(tmp_path / "proj", make_mnist(600, 200), SMALL)
    run(["dvc", "repro"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "baseline"], root)

    run(["dvc", "exp", "run", "-S", "experiments.notebook.model.epochs=1"], root)
    table = list(csv.DictReader(io.StringIO(run(["dvc", "exp", "show", "--csv"], root).stdout)))
    epochs = "experiments.notebook.model.epochs"
    assert {"batchnorm.test_accuracy_mean", "plain.test_loss_mean", epochs} <= set(table[0])
    assert {row[epochs] for row in table} >= {"1", "2"}  # the baseline and the experiment

    diff = json.loads(run(["dvc", "metrics", "diff", "--json"], root).stdout)
    assert "batchnorm.test_loss_mean" in diff["reports/notebook/metrics.json"]
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "one epoch"], root)
    between = json.loads(run(["dvc", "metrics", "diff", "HEAD~1", "HEAD", "--json"], root).stdout)
    assert between["reports/notebook/metrics.json"]["plain.test_loss_mean"]["old"] != \
        between["reports/notebook/metrics.json"]["plain.test_loss_mean"]["new"]
