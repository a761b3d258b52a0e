"""Scale invariance and the effective learning rate (bnlab.ml.weight_norms,
bnlab.analysis.weight_norm_tables): the angle against rotations made in NumPy, Wan et al.'s
equilibrium against an independent simulation of SGD with momentum and L2 decay, the probe on a
real BN network (a scale-invariant kernel's norm only grows under plain SGD), training untouched
by it, and the report's table."""

import math

import numpy as np
import pandas as pd
import pytest
import yaml

from bnlab import KerasMLPClassifier
from bnlab.analysis.weight_norm_tables import (
    LATE,
    angular_update_per_run,
    equilibrium_table,
    predicted_angular_update,
    weight_norm_markdown,
)
from bnlab.experiments.params import ParamsError, parse_params
from bnlab.experiments.probe_params import GeometryParams, ProbeParams
from bnlab.ml.probe_rows import WEIGHT_NORM_COLUMNS
from bnlab.ml.weight_norms import WeightNormProbe, angle, kernel_norm

from helpers import PROJECT


@pytest.mark.parametrize("theta", [1e-7, 1e-3, 0.3, 2.0])
def test_the_angle_is_the_rotation_made(theta):
    rng = np.random.default_rng(0)
    basis, _ = np.linalg.qr(rng.normal(size=(60, 2)))  # two orthonormal columns
    before = 3.0 * basis[:, 0]
    after = 0.5 * (math.cos(theta) * basis[:, 0] + math.sin(theta) * basis[:, 1])  # and rescaled
    assert angle(before.reshape(6, 10), after.reshape(6, 10)) == pytest.approx(theta, rel=1e-9)
    assert kernel_norm(before) == pytest.approx(3.0, rel=1e-12)


def simulated_angular_update(eta, decay, momentum, steps=6000, size=200, seed=0):
    """SGD with heavy-ball momentum and L2 decay on a scale-invariant loss: gradients orthogonal
    to w with a 1/‖w‖ scale (random directions), as Wan et al. model a BN network's kernel. The
    mean angle per step over the second half."""
    rng = np.random.default_rng(seed)
    w, velocity, angles = 3.0 * rng.normal(size=size), np.zeros(size), []
    for _ in range(steps):
        unit = w / np.linalg.norm(w)
        noise = rng.normal(size=size)
        gradient = (noise - unit * (unit @ noise)) / np.linalg.norm(w)
        velocity = momentum * velocity + gradient + decay * w
        new = w - eta * velocity
        angles.append(angle(w, new))
        w = new
    return float(np.mean(angles[steps // 2 :]))


@pytest.mark.parametrize(("eta", "decay", "momentum"), [(0.1, 2e-3, 0.9), (0.1, 5e-4, 0.9), (0.5, 1e-3, 0.0)])
def test_the_predicted_equilibrium_is_what_sgd_with_momentum_and_decay_settles_at(eta, decay, momentum):
    predicted = predicted_angular_update("sgd", eta, decay, momentum)
    assert simulated_angular_update(eta, decay, momentum) == pytest.approx(predicted, rel=0.03)


def test_no_equilibrium_is_predicted_for_adam_and_none_without_decay():
    assert math.isnan(predicted_angular_update("adam", 0.01, 1e-3, 0.0))
    assert predicted_angular_update("sgd", 0.1, 0.0, 0.9) == 0.0


def fit(callbacks, batch_norm=True, **settings):
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(128, 12)).astype(np.float32), rng.integers(0, 3, 128)
    clf = KerasMLPClassifier(
        hidden_units=(8, 8),
        batch_norm=batch_norm,
        optimizer="sgd",
        learning_rate=0.5,
        batch_size=16,
        epochs=5,
        random_state=2,
        callbacks=callbacks,
        **settings,
    ).fit(x, y)
    return clf


def test_the_kernels_are_also_recorded_at_every_geometry_step_within_the_fit():
    geometry = GeometryParams(steps=[3, 8, 50], etas={"low": 1, "high": 2, "count": 2}, directions=["gradient"])
    probes = ProbeParams(every_steps=8, weight_norms=True, geometry=geometry)
    assert probes.weight_norm_steps(40) == [1, 3, 8, 16, 24, 32, 40]


def test_the_probe_reads_each_hidden_kernel_and_leaves_training_bit_identical():
    total = fit(None).total_steps(128)
    steps = ProbeParams(every_steps=8, weight_norms=True).weight_norm_steps(total)
    assert steps == [1, 8, 16, 24, 32, 40] and total == 40
    probe = WeightNormProbe(steps, 2)
    with_probe, without = fit([probe]), fit(None)
    for a, b in zip(with_probe.model_.get_weights(), without.model_.get_weights()):
        assert np.array_equal(a, b)
    rows = pd.DataFrame(probe.tables()["weight_norms.csv"], columns=WEIGHT_NORM_COLUMNS)
    assert len(rows) == len(steps) * 2 and list(rows["step"].unique()) == steps
    last = rows[rows["step"] == total].set_index("layer")["kernel_norm"]
    for layer in (1, 2):
        kernel = with_probe.model_.get_layer(f"dense_{layer}").kernel.numpy()
        assert last[layer] == kernel_norm(kernel)
    assert (rows["angular_update"] > 0).all()


def test_under_plain_sgd_a_kernel_bn_follows_only_grows():
    # Its gradient is orthogonal to it: ‖w − ηg‖² = ‖w‖² + η²‖g‖². The output layer's, which BN
    # does not follow, has no such law.
    probe = WeightNormProbe(range(1, 41), 2)
    fit([probe])
    for _, layer in pd.DataFrame(probe.rows).groupby("layer"):
        norms = layer["kernel_norm"].to_numpy()
        assert np.all(np.diff(norms) >= -1e-6 * norms[:-1]) and norms[-1] > norms[0] * 1.01


def test_weight_decay_shrinks_the_kernels_bn_follows():
    norms = {}
    for decay in (0.0, 0.05):
        probe = WeightNormProbe([40], 2)
        fit([probe], weight_decay=decay)
        norms[decay] = sum(row["kernel_norm"] for row in probe.rows)
    assert norms[0.05] < norms[0.0]


def test_the_table_measures_the_equilibrium_late_in_each_run():
    rows = [
        {"variant": v, "seed": s, "step": step, "layer": layer, "kernel_norm": 2.0, "angular_update": angle_}
        for v, late in (("decay", 0.007), ("no_decay", 0.002))
        for s in (0, 1, 2)
        for step, angle_ in ((1, 0.5), (100, 0.5), (300, late + 0.001 * s), (400, late + 0.001 * s))
        for layer in (1, 2)
    ]
    frame = pd.DataFrame(rows)
    settings = pd.DataFrame(
        {
            "variant": ["decay", "no_decay"],
            "optimizer": ["sgd", "sgd"],
            "learning_rate": [0.1, 0.1],
            "weight_decay": [5e-4, 0.0],
            "momentum": [0.9, 0.9],
        }
    )
    assert 300 > LATE * 400 > 100
    per_run = angular_update_per_run(frame).set_index(["variant", "seed"])["value"]
    assert per_run[("decay", 2)] == pytest.approx(0.009)
    table = equilibrium_table(frame, settings).set_index("variant")
    assert table.loc["decay", "measured"] == pytest.approx(0.008)
    assert table.loc["decay", "measured_low"] < 0.008 < table.loc["decay", "measured_high"]
    assert table.loc["decay", "ratio"] == pytest.approx(0.008 / math.sqrt(2 * 0.1 * 5e-4 / 1.9))
    assert math.isnan(table.loc["no_decay", "ratio"])
    assert table.loc["decay", "effective_rate_last"] == pytest.approx(0.1 / 4)
    text = weight_norm_markdown(frame, settings)
    assert "√(2ηλ/(1+μ))" in text and "0.007255" in text
    assert weight_norm_markdown(frame.iloc[:0], settings) == ""


def test_params_refuse_weight_norms_over_a_grid():
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    sweep = params["experiments"]["lr_sweep"]
    sweep["probes"] = {"every_steps": 100, "images": 100, "unit": 0, "weight_norms": True}
    with pytest.raises(ParamsError, match="weight_norms needs one setting per variant"):
        parse_params(params)
