import hashlib

import numpy as np
import pytest

from bnlab.data import mnist as data
from bnlab.data import splits
from bnlab.pipeline.stages import split as split_stage

from helpers import PROJECT, make_mnist


def test_stratified_split_sizes_classes_and_disjointness():
    labels = np.repeat(np.arange(10), [600, 700, 500, 550, 650, 450, 600, 620, 580, 750])
    train_idx, val_idx = splits.split_indices(labels, val_size=600, seed=3)
    assert len(val_idx) == 600 and len(train_idx) == len(labels) - 600
    assert np.intersect1d(train_idx, val_idx).size == 0
    assert np.array_equal(np.sort(np.concatenate([train_idx, val_idx])), np.arange(len(labels)))
    # each class's share of validation matches its share of the whole, within one image
    expected = np.bincount(labels) / len(labels) * 600
    assert np.all(np.abs(np.bincount(labels[val_idx]) - expected) <= 1)


def test_the_seed_decides_the_split():
    labels = np.arange(1000) % 10
    a = splits.split_indices(labels, 100, seed=0)[1]
    assert np.array_equal(a, splits.split_indices(labels, 100, seed=0)[1])
    assert not np.array_equal(a, splits.split_indices(labels, 100, seed=1)[1])


def test_first_method_reproduces_tf1_read_data_sets():
    train_idx, val_idx = splits.split_indices(np.arange(1000) % 10, 100, seed=7, method="first")
    assert np.array_equal(val_idx, np.arange(100))
    assert np.array_equal(train_idx, np.arange(100, 1000))


@pytest.mark.parametrize("val_size", [0, 1000])
def test_val_size_must_leave_both_parts_non_empty(val_size):
    with pytest.raises(data.DataError, match="val_size"):
        splits.split_indices(np.arange(1000) % 10, val_size, seed=0)


def digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.npz"))}


def test_split_stage_writes_the_contract_and_the_same_bytes_twice(tmp_path, monkeypatch):
    mnist = make_mnist(n_train=600, n_test=100)
    raw = tmp_path / "mnist.npz"
    data.save_npz(raw, mnist.arrays())
    params = tmp_path / "params.yaml"
    params.write_text((PROJECT / "params.yaml").read_text().replace("val_size: 5000", "val_size: 100"))
    split_stage.run(str(params), source=raw, out_dir=tmp_path / "a")
    split_stage.run(str(params), source=raw, out_dir=tmp_path / "b")
    assert digests(tmp_path / "a") == digests(tmp_path / "b")
    assert set(digests(tmp_path / "a")) == {"train.npz", "val.npz", "test.npz"}
    x_train, y_train = splits.load_split(tmp_path / "a" / "train.npz")
    x_val, y_val = splits.load_split(tmp_path / "a" / "val.npz")
    x_test, y_test = splits.load_split(tmp_path / "a" / "test.npz")
    assert (len(y_train), len(y_val)) == (500, 100)
    assert x_train.dtype == np.uint8 and x_train.shape[1:] == (28, 28)
    np.testing.assert_array_equal(x_test, mnist.x_test)  # test is untouched
    np.testing.assert_array_equal(y_test, mnist.y_test)
    assert np.all(np.bincount(y_val, minlength=10) == 10)  # 60 per class → 10 per class


def test_a_missing_or_truncated_input_is_a_named_data_error(tmp_path):
    with pytest.raises(data.DataError, match="missing.npz: file not found"):
        data.mnist_from_npz(tmp_path / "missing.npz")
    good = tmp_path / "good.npz"
    data.save_npz(good, make_mnist(60, 20).arrays())
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(data.DataError, match="cut.npz"):
        data.mnist_from_npz(cut)


def test_atomic_write_leaves_nothing_when_interrupted(tmp_path):
    target = tmp_path / "out" / "x.npz"

    class Interrupted:  # numpy converts arrays one by one: the second write is cut short
        def __array__(self, *args, **kwargs):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        data.save_npz(target, {"x": np.zeros(3), "y": Interrupted()})
    assert list((tmp_path / "out").iterdir()) == []


def test_a_process_reads_the_splits_of_the_project_it_is_in(tmp_path, monkeypatch):
    """Splits are kept for the process (a worker trains several jobs), but never across
    projects that use the same relative paths."""
    from bnlab.execution.job import clear_splits_cache, load_splits

    def write(project, n):
        mnist = make_mnist(n_train=n, n_test=10)
        x, y = mnist.x_train, mnist.y_train
        data.save_npz(project / "data" / "train.npz", {"x": x, "y": y})

    files = (("train", "data/train.npz"),)
    clear_splits_cache()
    write(tmp_path / "a", 50)
    write(tmp_path / "b", 70)
    monkeypatch.chdir(tmp_path / "a")
    assert len(load_splits(files)["train"][1]) == 50
    assert load_splits(files) is load_splits(files)  # read once
    monkeypatch.chdir(tmp_path / "b")
    assert len(load_splits(files)["train"][1]) == 70
    monkeypatch.chdir(tmp_path / "a")
    assert len(load_splits(files)["train"][1]) == 50
    clear_splits_cache()
