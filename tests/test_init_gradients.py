"""Yang et al. (2019)'s gradients at initialization: the probe (bnlab.ml.init_gradients) against
an independent NumPy backward pass on a tiny network with known weights, against the theory
(bnlab.analysis.mean_field) on wide random networks, the probe's promise that training goes on
as without it, and the settings that build deep networks (depth, initializer)."""

import math

import numpy as np
import pandas as pd
import pytest
import yaml
from test_geometry import X_BATCH, Y_BATCH, known_trainable, numpy_backward

from bnlab import KerasMLPClassifier
from bnlab.analysis.init_gradient_tables import FIT_MARGIN, rate_per_run
from bnlab.analysis.mean_field import (
    LARGE_BATCH_RATE,
    PLAIN_HE_RATE,
    bn_relu_gradient_rate,
    measured_rate,
    trainable_depth,
)
from bnlab.experiments.params import ParamsError, parse_params
from bnlab.ml.init_gradients import InitGradientProbe
from bnlab.ml.model import build_mlp
from bnlab.ml.probe_rows import INIT_GRADIENT_COLUMNS

from helpers import PROJECT

# The wide networks' factor, mean over seeds, within this of the theory's: finite width (512)
# and one batch per seed leave about 1% of noise (measured: 0.3–1.2% off at B = 8, 32, 128).
THEORY_TOLERANCE = 0.03


@pytest.mark.parametrize("batch_norm", [False, True], ids=["plain", "batchnorm"])
def test_the_gradients_match_numpy_on_a_tiny_network(batch_norm):
    model = build_mlp(3, 2, (4, 2), batch_norm=batch_norm, activation="relu")
    weights = known_trainable(batch_norm, 1)
    for variable, value in zip(model.trainable_variables, weights):
        variable.assign(value.astype(np.float32))
    probe = InitGradientProbe(n_hidden=2)
    probe.set_model(model)
    probe.on_train_batch_begin(1, {"x": X_BATCH, "y": Y_BATCH})
    _, _, d_pres = numpy_backward(weights, X_BATCH, Y_BATCH, batch_norm)
    assert [tuple(row) for row in probe.rows] == [INIT_GRADIENT_COLUMNS] * 2
    assert [row["layer"] for row in probe.rows] == [1, 2] and [row["width"] for row in probe.rows] == [4, 2]
    assert all(row["batch_size"] == len(Y_BATCH) and row["depth"] == 2 for row in probe.rows)
    for row, d_pre in zip(probe.rows, d_pres):
        assert row["grad_sq_norm"] == pytest.approx(float(np.sum(d_pre**2)), rel=1e-4)


def wide_rates(batch_norm: bool, batch_size: int, seeds=range(3), width=512, depth=30) -> list[float]:
    """The fitted factor of wide random networks on Gaussian inputs, one per seed."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4 * batch_size, 64)).astype(np.float32), rng.integers(0, 10, 4 * batch_size)
    rates = []
    for seed in seeds:
        probe = InitGradientProbe(depth)
        KerasMLPClassifier(
            hidden_units=(width,),
            depth=depth,
            batch_norm=batch_norm,
            initializer="he_normal",
            optimizer="sgd",
            batch_size=batch_size,
            steps=1,
            random_state=seed,
            callbacks=[probe],
        ).fit(x, y)
        frame = pd.DataFrame(probe.rows).assign(variant="v", seed=seed)
        rates += rate_per_run(frame)["value"].tolist()
    return rates


@pytest.mark.slow
@pytest.mark.parametrize("batch_size", [8, 32, 128])
def test_a_wide_bn_networks_gradients_grow_at_the_theorys_rate(batch_size):
    rates = wide_rates(True, batch_size)
    assert np.mean(rates) == pytest.approx(bn_relu_gradient_rate(batch_size), rel=THEORY_TOLERANCE)


@pytest.mark.slow
def test_a_wide_plain_he_networks_gradients_keep_their_size():
    assert np.mean(wide_rates(False, 32)) == pytest.approx(PLAIN_HE_RATE, rel=THEORY_TOLERANCE)


def test_the_theorys_rate_falls_with_the_batch_to_pi_over_pi_minus_one():
    rates = [bn_relu_gradient_rate(b) for b in (4, 8, 32, 128, 1024, 10**6)]
    assert all(a > b for a, b in zip(rates, rates[1:]))
    assert rates[-1] == pytest.approx(LARGE_BATCH_RATE, rel=1e-5) and LARGE_BATCH_RATE == pytest.approx(
        1.4669, abs=1e-4
    )
    assert trainable_depth(LARGE_BATCH_RATE) == pytest.approx(16 / math.log(LARGE_BATCH_RATE))
    assert trainable_depth(PLAIN_HE_RATE) == math.inf
    with pytest.raises(ValueError, match="from batch size 4"):
        bn_relu_gradient_rate(3)


def test_the_fitted_rate_recovers_a_known_growth():
    layers = np.arange(1, 41)
    assert measured_rate(layers, 3.0 * 1.5 ** (40 - layers)) == pytest.approx(1.5)
    frame = pd.DataFrame(
        {
            "variant": "bn",
            "seed": 0,
            "batch_size": 8,
            "depth": 40,
            "width": 4,
            "layer": layers,
            "grad_sq_norm": 1.5 ** (40 - layers) * np.where(layers <= FIT_MARGIN, 50.0, 1.0),
        }
    )
    (rate,) = rate_per_run(frame)["value"]  # the first layers' outliers are left out of the fit
    assert rate == pytest.approx(1.5)
    assert rate_per_run(frame[frame["layer"] <= 10].assign(depth=10)).empty  # too shallow to fit


def test_the_probe_leaves_training_bit_identical():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(96, 12)).astype(np.float32), rng.integers(0, 3, 96)

    def fit(callbacks):
        clf = KerasMLPClassifier(
            hidden_units=(8,), depth=3, batch_size=16, epochs=2, random_state=4, callbacks=callbacks
        ).fit(x, y)
        return [w.copy() for w in clf.model_.get_weights()]

    probe = InitGradientProbe(3)
    with_probe, without = fit([probe]), fit(None)
    assert len(probe.rows) == 3
    assert all(np.array_equal(a, b) for a, b in zip(with_probe, without))


def test_depth_repeats_one_width_and_initializer_chooses_the_draw():
    clf = KerasMLPClassifier(hidden_units=(16,), depth=4, initializer="he_normal")
    assert clf.layer_units() == (16, 16, 16, 16)
    assert KerasMLPClassifier(hidden_units=(16, 8)).layer_units() == (16, 8)
    with pytest.raises(ValueError, match="hidden_units must list one"):
        KerasMLPClassifier(hidden_units=(16, 8), depth=3).layer_units()
    kernel = build_mlp(400, 2, (400,) * 2, batch_norm=False, initializer="he_normal").get_layer("dense_2").kernel
    assert np.std(kernel.numpy()) == pytest.approx(math.sqrt(2 / 400), rel=0.05)
    with pytest.raises(ValueError, match="initializer must be one of"):
        build_mlp(4, 2, (4,), initializer="orthogonal")


def test_params_refuse_a_depth_over_several_widths():
    raw = yaml.safe_load((PROJECT / "params.yaml").read_text())
    raw["experiments"]["yang2019"]["model"]["hidden_units"] = [384, 100]
    with pytest.raises(ParamsError, match="yang2019.*variant 'batchnorm': depth 50 repeats one width"):
        parse_params(raw)
