"""Probe values against an independent NumPy computation on a tiny network with known weights."""

import numpy as np
import pytest

from bnlab.ml.model import build_mlp
from bnlab.ml.probe_rows import PROBE_COLUMNS, STEP_COLUMNS
from bnlab.ml.probes import ProbeRecorder

RNG = np.random.default_rng(0)
X_VAL = RNG.normal(size=(40, 3)).astype(np.float32)
Y_VAL = RNG.integers(0, 2, size=40)
X_TEST = RNG.normal(size=(30, 3)).astype(np.float32)
Y_TEST = RNG.integers(0, 2, size=30)
EPS = 1e-3  # Keras's BatchNormalization epsilon


def known_weights(batch_norm: bool) -> list[np.ndarray]:
    """3 → 4 → 2 hidden units → 2 classes; BN statistics far from 0/1 so they matter."""
    rng = np.random.default_rng(1)
    weights = []
    for n_in, n_out in ((3, 4), (4, 2)):
        weights += [rng.normal(size=(n_in, n_out)).astype(np.float32), rng.normal(size=n_out).astype(np.float32)]
        if batch_norm:
            weights += [
                rng.uniform(0.5, 2, n_out),
                rng.normal(size=n_out),
                rng.normal(size=n_out),
                rng.uniform(0.5, 3, n_out),
            ]  # gamma, beta, moving mean, moving variance
    weights += [rng.normal(size=(2, 2)).astype(np.float32), rng.normal(size=2).astype(np.float32)]
    return [np.asarray(w, np.float32) for w in weights]


def numpy_forward(x: np.ndarray, weights: list, batch_norm: bool, batch_stats: bool = False):
    """Pre-activations (input to the ReLU) per hidden layer, and the logits."""
    w = iter(weights)
    h, pres = x, []
    for _ in range(2):
        pre = h @ next(w) + next(w)
        if batch_norm:
            gamma, beta, mean, var = next(w), next(w), next(w), next(w)
            if batch_stats:
                mean, var = pre.mean(axis=0), pre.var(axis=0)
            pre = gamma * (pre - mean) / np.sqrt(var + EPS) + beta
        pres.append(pre)
        h = np.maximum(pre, 0)
    return pres, h @ next(w) + next(w)


@pytest.fixture(params=[False, True], ids=["plain", "batchnorm"])
def recorded(request):
    batch_norm = request.param
    model = build_mlp(3, 2, (4, 2), batch_norm=batch_norm, activation="relu")
    weights = known_weights(batch_norm)
    model.set_weights(weights)
    recorder = ProbeRecorder(10, (X_VAL, Y_VAL), (X_TEST, Y_TEST), n_hidden=2, probe_images=25, unit=1, batch_size=8)
    recorder.set_model(model)
    recorder.on_step_end(10)
    return recorder, weights, batch_norm


def test_percentiles_and_dead_units_match_numpy(recorded):
    recorder, weights, batch_norm = recorded
    pres, _ = numpy_forward(X_VAL[:25], weights, batch_norm)
    rows = {(r["layer"], r["unit"]): r for r in recorder.probe_rows}
    assert set(rows) == {(1, "1"), (1, "all"), (2, "1"), (2, "all")}
    for layer, pre in enumerate(pres, start=1):
        for unit, values in (("1", pre[:, 1]), ("all", pre)):
            row = rows[(layer, unit)]
            assert row["step"] == 10
            np.testing.assert_allclose(
                [row["p15"], row["p50"], row["p85"]], np.percentile(values, [15, 50, 85]), rtol=1e-5, atol=1e-5
            )
        dead = (pre <= 0).all(axis=0)
        assert rows[(layer, "all")]["dead_fraction"] == pytest.approx(dead.mean())
        assert rows[(layer, "1")]["dead_fraction"] == float(dead[1])


def test_accuracies_match_numpy(recorded):
    recorder, weights, batch_norm = recorded
    (row,) = recorder.step_rows
    assert set(row) == set(STEP_COLUMNS)
    for x, y, key in ((X_VAL[:25], Y_VAL[:25], "val_accuracy"), (X_TEST, Y_TEST, "test_accuracy")):
        _, logits = numpy_forward(x, weights, batch_norm)
        assert row[key] == pytest.approx(np.mean(logits.argmax(axis=1) == y))
    if not batch_norm:
        assert row["train_mode_accuracy"] is None
        return
    # Training mode: each whole batch of 8 probe images (3 of the 25) normalized by its own statistics.
    correct = [
        numpy_forward(X_VAL[i : i + 8], weights, True, batch_stats=True)[1].argmax(axis=1) == Y_VAL[i : i + 8]
        for i in range(0, 24, 8)
    ]
    assert row["train_mode_accuracy"] == pytest.approx(np.mean(np.concatenate(correct)))


def test_measuring_in_training_mode_leaves_the_moving_averages_alone(recorded):
    recorder, weights, batch_norm = recorded
    for before, after in zip(weights, recorder.model.get_weights()):
        np.testing.assert_array_equal(before, after)


def test_a_dead_unit_is_one_that_never_fires():
    from bnlab.ml.probe_rows import layer_rows

    pre = np.array([[-1.0, 2.0, 0.0], [-3.0, -1.0, 0.0]])
    rows = layer_rows(5, 1, pre, np.maximum(pre, 0), unit=0)
    assert [r["unit"] for r in rows] == ["0", "all"] and set(rows[0]) == set(PROBE_COLUMNS)
    assert rows[0]["dead_fraction"] == 1.0 and rows[1]["dead_fraction"] == pytest.approx(2 / 3)


def test_probes_every_n_steps_during_fit_with_the_estimator():
    from bnlab import KerasMLPClassifier

    recorder = ProbeRecorder(4, (X_VAL, Y_VAL), (X_TEST, Y_TEST), n_hidden=2, probe_images=20, batch_size=8)
    KerasMLPClassifier(hidden_units=(4, 2), batch_size=8, steps=10, random_state=0, callbacks=[recorder]).fit(
        X_VAL, Y_VAL
    )
    assert [r["step"] for r in recorder.step_rows] == [4, 8]
    assert {r["step"] for r in recorder.probe_rows} == {4, 8} and len(recorder.probe_rows) == 2 * 2 * 2


def test_uint8_pixels_are_measured_as_their_float32_values():
    from bnlab import KerasMLPClassifier

    rng = np.random.default_rng(0)
    x_val, x_test = (rng.integers(0, 256, (n, 784), dtype=np.uint8) for n in (40, 30))
    y_val, y_test = rng.integers(0, 3, 40), rng.integers(0, 3, 30)
    rows = []
    for cast in (np.uint8, np.float32):
        recorder = ProbeRecorder(
            5, (x_val.astype(cast), y_val), (x_test.astype(cast), y_test), n_hidden=2, probe_images=20, batch_size=8
        )
        KerasMLPClassifier(
            hidden_units=(4, 2), batch_size=8, steps=10, rescale=1 / 255, random_state=0, callbacks=[recorder]
        ).fit(x_val.astype(cast), y_val)
        rows.append((recorder.probe_rows, recorder.step_rows))
    assert rows[0] == rows[1] and len(rows[0][1]) == 2
