"""LayerNorm, GroupNorm and batch renormalization where BN sits: the layers built, what makes
them differ from BN (a sample's output does not depend on the rest of its batch), and bad
settings refused by name."""

import numpy as np
import pytest

from bnlab import KerasMLPClassifier
from bnlab.experiments.params import ParamsError, parse_params
from bnlab.ml.model import build_mlp
from bnlab.ml.tf_runtime import keras

from test_config import default_raw

RNG = np.random.default_rng(0)
BATCH = RNG.normal(size=(8, 5)).astype(np.float32)


@pytest.mark.parametrize(
    "kind, layer_type",
    [
        ("batch", keras.layers.BatchNormalization),
        ("batch_renorm", keras.layers.BatchNormalization),
        ("layer", keras.layers.LayerNormalization),
        ("group", keras.layers.GroupNormalization),
    ],
)
def test_each_normalization_sits_between_dense_and_activation(kind, layer_type):
    model = build_mlp(5, 3, (8, 4), normalization=kind, norm_groups=2)
    names = [layer.name for layer in model.layers]
    for i in (1, 2):
        norm = model.layers[names.index(f"dense_{i}") + 1]
        assert isinstance(norm, layer_type) and names[names.index(norm.name) + 1] == f"nonlinearity_{i}"
    if kind == "batch_renorm":
        assert norm.renorm and norm.renorm_clipping == {"rmax": 3.0, "rmin": 1 / 3, "dmax": 5.0}
    if kind == "group":
        assert norm.groups == 2


@pytest.mark.parametrize("kind, depends_on_batch", [("batch", True), ("layer", False), ("group", False)])
def test_only_batch_statistics_make_a_samples_output_depend_on_its_batch(kind, depends_on_batch):
    model = build_mlp(5, 3, (8,), normalization=kind, norm_groups=2)
    other = np.concatenate([BATCH[:1], RNG.normal(3.0, 2.0, size=(7, 5)).astype(np.float32)])
    first = model(BATCH, training=True).numpy()[0]
    again = model(other, training=True).numpy()[0]  # the same first sample among others
    assert (not np.allclose(first, again, atol=1e-5)) == depends_on_batch


@pytest.mark.parametrize("kind", ["batch_renorm", "layer", "group"])
def test_a_network_with_each_normalization_fits_saves_and_loads(kind, tmp_path):
    x, y = RNG.normal(size=(200, 5)).astype(np.float32), RNG.integers(0, 3, 200)
    clf = KerasMLPClassifier(
        hidden_units=(8,), normalization=kind, norm_groups=2, epochs=2, batch_size=4, random_state=0
    ).fit(x, y)
    loaded = KerasMLPClassifier.load(clf.save(tmp_path / kind, format="npz"))
    np.testing.assert_array_equal(loaded.predict_proba(x), clf.predict_proba(x))


def test_groups_that_leave_one_unit_or_do_not_divide_are_refused_by_name():
    raw = default_raw()
    raw["experiments"]["notebook"]["variants"]["batchnorm"] |= {"normalization": "group", "norm_groups": 32}
    with pytest.raises(
        ParamsError,
        match="variant 'batchnorm': norm_groups 32 must divide every hidden layer's "
        r"units \[32, 32\] into groups of at least 2",
    ):
        parse_params(raw)
    with pytest.raises(ValueError, match="norm_groups=3 must divide"):
        build_mlp(5, 3, (8,), normalization="group", norm_groups=3)
    raw["experiments"]["notebook"]["variants"]["batchnorm"] |= {"normalization": "instance"}
    with pytest.raises(ParamsError, match="normalization"):
        parse_params(raw)
