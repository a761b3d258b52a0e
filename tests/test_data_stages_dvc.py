"""The real `dvc repro` of the data stages, in a temporary git repository, on small data."""

import json

import numpy as np
import yaml

from bnlab.data import mnist as data
from bnlab.data import splits

from helpers import make_mnist, make_project, run


def lock_outs(root):
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    return {out["path"]: out["md5"] for stage in ("download", "split") for out in lock["stages"][stage]["outs"]}


def test_dvc_repro_downloads_and_splits_then_is_up_to_date(tmp_path):
    mnist = make_mnist(n_train=600, n_test=100)
    root = make_project(tmp_path / "proj", mnist)
    done = run(["dvc", "repro", "download", "split"], root)
    assert "source 1/1 ok: local" in done.stdout
    x_val, y_val = splits.load_split(root / "data/prepared/val.npz")
    assert len(y_val) == 100
    raw = data.mnist_from_npz(root / "data/raw/mnist.npz")
    np.testing.assert_array_equal(raw.x_train, mnist.x_train)
    first = lock_outs(root)

    again = run(["dvc", "status", "download", "split", "--json"], root)
    assert json.loads(again.stdout) == {}

    # Forced re-run writes the same bytes: dvc.lock does not change.
    run(["dvc", "repro", "--force", "download", "split"], root)
    assert lock_outs(root) == first


def test_a_failing_download_writes_nothing(tmp_path):
    root = make_project(tmp_path / "proj", make_mnist(n_train=60, n_test=20))
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["data"]["sources"] = [{"kind": "local", "path": str(tmp_path / "nowhere.npz")}]
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    done = run(["dvc", "repro", "download"], root, check=False)
    assert done.returncode != 0
    assert "could not get MNIST from any source" in done.stderr + done.stdout
    assert "nowhere.npz: no such file or folder" in done.stderr + done.stdout
    assert not (root / "data/raw/mnist.npz").exists()
