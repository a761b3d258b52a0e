"""Two clean `dvc repro` runs give the same bytes (`dvc exp show` and `dvc metrics diff`:
test_dvc_experiments.py)."""

import pytest
import yaml

from helpers import make_mnist, make_project, run

SMALL = {"epochs": 2, "seeds": [0, 1], "hidden_units": [16]}


def lock_hashes(root):
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    return {
        out["path"]: out["md5"]
        for stage in lock["stages"].values()
        for kind in ("outs", "metrics", "plots")
        for out in stage.get(kind, [])
    }


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
    assert {
        "models/notebook",
        "eval/notebook",
        "reports/notebook/figures",
        "reports/notebook/metrics.json",
        "data/raw/mnist.npz",
    } <= set(hashes)
    assert hashes == lock_hashes(second)
