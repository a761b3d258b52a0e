"""Santurkar et al.'s measurements (bnlab.ml.geometry) against an independent NumPy computation
(forward and backward pass by hand) on a tiny network with known weights, and the probe's
promise: training goes on exactly as without it."""

import numpy as np
import pytest
import yaml

from bnlab import KerasMLPClassifier
from bnlab.experiments.params import ParamsError, load_params, parse_params
from bnlab.ml.geometry import GeometryProbe
from bnlab.ml.model import build_mlp
from bnlab.ml.probe_rows import LANDSCAPE_COLUMNS, landscape_summary

from helpers import PROJECT

EPS = 1e-3  # Keras's BatchNormalization epsilon
LEARNING_RATE = 0.05
MULTIPLES = tuple(np.geomspace(0.5, 4, 6))
RNG = np.random.default_rng(0)
X_BATCH = RNG.normal(size=(8, 3)).astype(np.float32)
Y_BATCH = RNG.integers(0, 2, size=8).astype(np.int32)


def known_trainable(batch_norm: bool, seed: int) -> list[np.ndarray]:
    """3 → 4 → 2 hidden units → 2 classes: kernels, biases (and BN's γ, β), in Keras's order."""
    rng = np.random.default_rng(seed)
    weights = []
    for n_in, n_out in ((3, 4), (4, 2), (2, 2)):
        weights += [rng.normal(size=(n_in, n_out)), rng.normal(scale=0.5, size=n_out)]
        if batch_norm and n_in != 2:
            weights += [rng.uniform(0.5, 2, n_out), rng.normal(size=n_out)]
    return [np.asarray(w, np.float64) for w in weights]


def numpy_loss_gradient(weights: list, x: np.ndarray, y: np.ndarray, batch_norm: bool):
    """Mean softmax cross-entropy and its gradient for every trainable variable; BN in training
    mode (the batch's mean and biased variance), before each ReLU."""
    loss, grads, _ = numpy_backward(weights, x, y, batch_norm)
    return loss, grads


def numpy_backward(weights: list, x: np.ndarray, y: np.ndarray, batch_norm: bool):
    """:func:`numpy_loss_gradient`, and the gradient with respect to each hidden layer's Dense
    output (its pre-activation), from the first hidden layer on."""
    w, h, cache = iter(weights), x.astype(np.float64), []
    for _ in range(2):
        kernel, bias = next(w), next(w)
        pre = h @ kernel + bias
        if batch_norm:
            gamma, beta = next(w), next(w)
            std = np.sqrt(pre.var(axis=0) + EPS)
            normed = (pre - pre.mean(axis=0)) / std
            out = gamma * normed + beta
            cache.append((h, kernel, gamma, normed, std, out))
        else:
            out = pre
            cache.append((h, kernel, None, None, None, out))
        h = np.maximum(out, 0)
    kernel, bias = next(w), next(w)
    logits = h @ kernel + bias
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    n = len(y)
    loss = -np.mean(np.log(p[np.arange(n), y]))
    d_logits = p.copy()
    d_logits[np.arange(n), y] -= 1
    d_logits /= n
    grads, d_pres = [h.T @ d_logits, d_logits.sum(axis=0)], []
    d_h = d_logits @ kernel.T
    for h_in, kernel, gamma, normed, std, out in reversed(cache):
        d_out = d_h * (out > 0)
        if batch_norm:
            d_normed = d_out * gamma
            d_pre = (n * d_normed - d_normed.sum(axis=0) - normed * (d_normed * normed).sum(axis=0)) / (n * std)
            layer = [h_in.T @ d_pre, d_pre.sum(axis=0), (d_out * normed).sum(axis=0), d_out.sum(axis=0)]
        else:
            d_pre = d_out
            layer = [h_in.T @ d_pre, d_pre.sum(axis=0)]
        grads, d_pres = layer + grads, [d_pre, *d_pres]
        d_h = d_pre @ kernel.T
    return loss, grads, d_pres


def norm(arrays) -> float:
    return float(np.sqrt(sum(np.sum(a**2) for a in arrays)))


def measured(batch_norm: bool, directions=("gradient", "gradient_fixed_length", "update")) -> GeometryProbe:
    """The probe around one step of the tiny network, from known weights w to known w′."""
    model = build_mlp(3, 2, (4, 2), batch_norm=batch_norm, activation="relu")
    before, after = known_trainable(batch_norm, 1), known_trainable(batch_norm, 2)
    probe = GeometryProbe([7], LEARNING_RATE, MULTIPLES, directions, n_hidden=2, seed=3)
    probe.set_model(model)
    for variable, value in zip(model.trainable_variables, before):
        variable.assign(value.astype(np.float32))
    probe.on_train_batch_begin(7, {"x": X_BATCH, "y": Y_BATCH})
    for variable, value in zip(model.trainable_variables, after):
        variable.assign(value.astype(np.float32))
    probe.on_train_batch_end(7, {})
    return probe


@pytest.mark.parametrize("batch_norm", [False, True], ids=["plain", "batchnorm"])
def test_landscape_matches_numpy(batch_norm):
    probe = measured(batch_norm)
    w, w_after = known_trainable(batch_norm, 1), known_trainable(batch_norm, 2)
    _, g = numpy_loss_gradient(w, X_BATCH, Y_BATCH, batch_norm)
    fixed = np.sqrt(3 * 4 + 4 * 2 + 2 * 2)  # √(the Dense kernels' entries), whether BN is there or not
    directions = {
        "gradient": g,
        "gradient_fixed_length": [a * fixed / norm(g) for a in g],
        "update": [(a - b) / LEARNING_RATE for a, b in zip(w, w_after)],
    }
    rows = {(r["direction"], round(r["eta"], 6)): r for r in probe.landscape_rows}
    assert len(rows) == 3 * len(MULTIPLES) and set(probe.landscape_rows[0]) == set(LANDSCAPE_COLUMNS)
    for direction, d in directions.items():
        for multiple in MULTIPLES:
            eta = multiple * LEARNING_RATE
            loss, moved = numpy_loss_gradient([a - eta * b for a, b in zip(w, d)], X_BATCH, Y_BATCH, batch_norm)
            row = rows[(direction, round(multiple, 6))]
            assert row["step"] == 7
            assert row["loss"] == pytest.approx(loss, rel=1e-4)
            assert row["grad_change"] == pytest.approx(norm([m - a for m, a in zip(moved, g)]), rel=1e-3, abs=1e-6)
            assert row["distance"] == pytest.approx(eta * norm(d), rel=1e-4)


@pytest.mark.parametrize("batch_norm", [False, True], ids=["plain", "batchnorm"])
def test_covariate_shift_matches_numpy(batch_norm):
    """Layer i's kernel gradient before and after the layers below take their new weights."""
    probe = measured(batch_norm)
    w, w_after = known_trainable(batch_norm, 1), known_trainable(batch_norm, 2)
    per_block = 4 if batch_norm else 2  # kernel, bias (, γ, β) of each hidden layer
    _, g = numpy_loss_gradient(w, X_BATCH, Y_BATCH, batch_norm)
    assert [r["layer"] for r in probe.ics_rows] == [2, 3]
    for row, layer in zip(probe.ics_rows, (2, 3)):
        below = per_block * (layer - 1)
        _, shifted = numpy_loss_gradient(w_after[:below] + w[below:], X_BATCH, Y_BATCH, batch_norm)
        a, b = g[below], shifted[below]  # layer i's kernel
        assert row["ics_l2"] == pytest.approx(norm([a - b]), rel=1e-3)
        assert row["ics_cosine"] == pytest.approx(np.sum(a * b) / (norm([a]) * norm([b])), rel=1e-4)


def test_random_direction_has_the_gradients_length_variable_by_variable():
    probe = measured(True, ("gradient", "random"))
    rows = {(r["direction"], round(r["eta"], 6)): r for r in probe.landscape_rows}
    for multiple in MULTIPLES:
        gradient, random = rows[("gradient", round(multiple, 6))], rows[("random", round(multiple, 6))]
        assert random["distance"] == pytest.approx(gradient["distance"], rel=1e-4)
        assert random["loss"] != pytest.approx(gradient["loss"], rel=1e-6)
    again = measured(True, ("gradient", "random"))
    assert again.landscape_rows == probe.landscape_rows  # drawn from the seed and step: reproducible


def test_summary_is_santurkars_three_numbers():
    found = landscape_summary([1.0, 0.5, 2.0], [0.1, 0.4, 0.3], [1.0, 2.0, 4.0])
    assert found == {"loss_variation": 1.5, "grad_predictiveness": 0.4, "beta_smoothness": 0.2}


def data(n=300):
    rng = np.random.default_rng(5)
    return rng.normal(size=(n, 6)).astype(np.float32), rng.integers(0, 3, n)


def fit(probe=None, **settings):
    x, y = data()
    est = KerasMLPClassifier(
        hidden_units=(5, 4), epochs=2, batch_size=16, random_state=0, callbacks=[probe] if probe else None, **settings
    )
    return est.fit(x, y)


@pytest.mark.parametrize(
    "settings",
    [{"batch_norm": True}, {"batch_norm": False}, {"batch_norm": True, "noise_shift": 1.0, "noise_scale": 2.0}],
    ids=["batchnorm", "plain", "noisy_bn"],
)
def test_the_probe_leaves_training_bit_identical(settings):
    """Moving statistics, the noise's random state and the weights: all as without the probe."""
    probe = GeometryProbe([1, 2, 9, 19, 25], 0.01, MULTIPLES, n_hidden=2, seed=0)
    with_probe, without = fit(probe, **settings), fit(**settings)
    for a, b in zip(with_probe.model_.get_weights(), without.model_.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert sorted({r["step"] for r in probe.landscape_rows}) == [1, 2, 9, 19, 25]


@pytest.mark.parametrize("noise", [{}, {"noise_shift": 1.0, "noise_scale": 2.0}], ids=["batchnorm", "noisy_bn"])
def test_under_sgd_the_update_is_the_gradient_of_the_probed_batch(noise):
    """With SGD, w′ = w − lr·g: the probe saw the batch the step trained on, in training mode,
    with the step's own noise."""
    probe = GeometryProbe([3, 19], 0.1, MULTIPLES, ("gradient", "update"), n_hidden=2, seed=0)
    fit(probe, optimizer="sgd", learning_rate=0.1, **noise)
    rows = {(r["step"], r["direction"], round(r["eta"], 6)): r for r in probe.landscape_rows}
    for (step, direction, eta), row in rows.items():
        if direction == "update":
            twin = rows[(step, "gradient", eta)]
            assert row["loss"] == pytest.approx(twin["loss"], rel=1e-4)
            assert row["distance"] == pytest.approx(twin["distance"], rel=1e-3)


def test_steps_beyond_the_fit_are_refused_before_training():
    probe = GeometryProbe([5, 10_000], 0.01, MULTIPLES)
    with pytest.raises(ValueError, match=r"probe steps \[10000\] are outside the fit's optimizer steps 1\.\.38"):
        fit(probe)
    assert probe.landscape_rows == []


def test_params_refuse_probe_steps_beyond_a_variants_training_by_name():
    raw = yaml.safe_load((PROJECT / "params.yaml").read_text())
    assert load_params(PROJECT / "params.yaml").experiment("santurkar").probes.geometry.steps[-1] == 17000
    raw["experiments"]["santurkar"]["probes"]["geometry"]["steps"].append(20000)
    with pytest.raises(
        ParamsError,
        match=r"experiments\.santurkar\.probes\.geometry\.steps: step 20000 is beyond "
        r"the 17190 optimizer steps of variant 'batchnorm'",
    ):
        parse_params(raw)
    raw["experiments"]["santurkar"]["probes"]["geometry"]["directions"] = ["gradient", "sideways"]
    with pytest.raises(ParamsError, match="directions"):
        parse_params(raw)
