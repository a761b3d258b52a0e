"""BN's population statistics recomputed after training: each layer's mean and variance of its
inputs over the training rows in inference mode, layer by layer, against a float64 NumPy
forward pass; the estimator's ``bn_statistics`` setting; both kinds kept for evaluate."""

import numpy as np
import pytest

from bnlab import KerasMLPClassifier
from bnlab.ml import bn_statistics
from bnlab.ml.evaluation import accuracy_by_statistics, evaluate

from helpers import make_mnist

EPS = 1e-3  # Keras's BatchNormalization epsilon


@pytest.fixture(scope="module")
def data():
    mnist = make_mnist(n_train=1100, n_test=200)  # more rows than one inference block (1024)
    return mnist.x_train.reshape(1100, -1), mnist.y_train, mnist.x_test.reshape(200, -1), mnist.y_test


def fitted(data, **settings) -> KerasMLPClassifier:
    x, y, _, _ = data
    base = {"hidden_units": (16, 8), "epochs": 1, "random_state": 0, "rescale": 1 / 255}
    return KerasMLPClassifier(**{**base, **settings}).fit(x, y)


def numpy_statistics(model, x, activation) -> dict[str, np.ndarray]:
    """The same statistics by a float64 forward pass, each layer normalized with the ones found
    for it before the next layer's are measured."""
    weights = {layer.name: [w.numpy().astype(np.float64) for w in layer.weights] for layer in model.layers}
    h, found = x.astype(np.float64) / 255, {}
    for i in (1, 2):
        kernel, bias = weights[f"dense_{i}"]
        z = h @ kernel + bias
        found[f"bn_{i}/moving_mean"], found[f"bn_{i}/moving_variance"] = z.mean(axis=0), z.var(axis=0)
        gamma, beta = weights[f"bn_{i}"][:2]
        h = activation(gamma * (z - z.mean(axis=0)) / np.sqrt(z.var(axis=0) + EPS) + beta)
    return found


@pytest.mark.parametrize(
    "settings, activation",
    [
        ({}, lambda t: np.maximum(t, 0)),
        ({"activation": "sigmoid", "normalization": "batch_renorm"}, lambda t: 1 / (1 + np.exp(-t))),
    ],
    ids=["relu", "sigmoid-renorm"],
)
def test_each_layers_statistics_are_its_inputs_moments_with_the_layers_below_recomputed(data, settings, activation):
    estimator = fitted(data, **settings)
    before = bn_statistics.current_statistics(estimator.model_)
    found = bn_statistics.population_statistics(estimator.model_, data[0])
    reference = numpy_statistics(estimator.model_, data[0], activation)
    assert sorted(found) == sorted(reference) == sorted(before)
    for name, value in found.items():
        assert value.dtype == np.float32
        np.testing.assert_allclose(value, reference[name], rtol=2e-5, atol=1e-6, err_msg=name)
        np.testing.assert_array_equal(bn_statistics.current_statistics(estimator.model_)[name], before[name])
        assert not np.allclose(value, before[name], rtol=1e-3)  # after one epoch the averages lag


def test_recomputed_statistics_are_what_a_recomputed_estimator_predicts_with(data):
    x, _, x_test, y_test = data
    moving = fitted(data)
    recomputed = fitted(data, bn_statistics="recomputed")
    expected = bn_statistics.population_statistics(moving.model_, x)
    for name, value in bn_statistics.current_statistics(recomputed.model_).items():
        np.testing.assert_array_equal(value, expected[name])
        np.testing.assert_array_equal(
            recomputed.moving_statistics_[name], bn_statistics.current_statistics(moving.model_)[name]
        )
    # Both kinds, as a job keeps them: evaluate's accuracies are each kind's, whichever it predicts with.
    for estimator in (moving, recomputed):
        kinds = bn_statistics.both_kinds(estimator, x)
        scores = accuracy_by_statistics(estimator, kinds, x_test, y_test)
        assert scores["test_accuracy_moving"] == evaluate(moving, x_test, y_test)["test_accuracy"]
        assert scores["test_accuracy_recomputed"] == evaluate(recomputed, x_test, y_test)["test_accuracy"]
    assert not hasattr(moving, "moving_statistics_")


def test_measure_rows_measures_the_training_set_on_its_first_rows_and_trains_the_same(data):
    """``measure_rows``: the per-epoch training metrics and BN's recomputed statistics come from
    the first rows only; the steps still draw from every row, so the weights do not change."""
    from bnlab.ml.inference import loss_accuracy

    x, y, _, _ = data
    rows = 300
    whole = fitted(data, bn_statistics="recomputed")
    part = fitted(data, bn_statistics="recomputed", measure_rows=rows)
    assert _kernels(part) == _kernels(whole)
    # Layer by layer, each from the layers below it recomputed: what was installed does not matter.
    first = bn_statistics.population_statistics(whole.model_, x[:rows])
    for name, value in bn_statistics.current_statistics(part.model_).items():
        np.testing.assert_array_equal(value, first[name])
    kinds = bn_statistics.both_kinds(part, x)  # as the job keeps them: over the same first rows
    for name, value in first.items():
        np.testing.assert_array_equal(kinds[f"recomputed/{name}"], value)
    # The last epoch's training metrics: the moving statistics' network, on the first rows.
    bn_statistics.install(part.model_, part.moving_statistics_)
    y_index = np.searchsorted(part.classes_, y)
    expected = loss_accuracy(part.predict_log_proba(x[:rows]), y_index[:rows])
    assert (part.history_["train_loss"][-1], part.history_["train_accuracy"][-1]) == expected
    assert part.history_["train_loss"][-1] != whole.history_["train_loss"][-1]


def _kernels(estimator) -> list[bytes]:
    return [w.numpy().tobytes() for w in estimator.model_.trainable_weights]


def test_a_network_without_batch_statistics_has_none_to_recompute(data):
    for settings in ({"batch_norm": False}, {"normalization": "layer"}):
        estimator = fitted(data, bn_statistics="recomputed", **settings)
        assert bn_statistics.both_kinds(estimator, data[0]) == {}
        assert not hasattr(estimator, "moving_statistics_")


def test_an_unknown_kind_of_statistics_is_refused(data):
    with pytest.raises(ValueError, match="bn_statistics"):
        fitted(data, bn_statistics="precise")


def test_moments_block_by_block_are_one_reduction_over_all_rows_bit_for_bit():
    """The statistics are summed block by block (no copy of a layer's whole inputs); the float64
    sums must still be those of one reduction over every row in order, as the committed numbers
    were made."""
    rng = np.random.default_rng(0)
    scales = 10.0 ** rng.uniform(-4, 6, size=(2500, 1))  # wide: the float64 sums round
    z = (rng.standard_normal((2500, 7)) * scales).astype(np.float32)  # 2 whole blocks and a part
    whole = z.astype(np.float64)
    squares = (whole - np.add.reduce(whole, axis=0) / len(z)) ** 2
    in_blocks = [squares[start : start + 1024].copy() for start in range(0, len(z), 1024)]
    per_block = sum(np.add.reduce(block, axis=0) for block in in_blocks)
    assert not np.array_equal(per_block, np.add.reduce(squares, axis=0))  # the order shows in the bits
    assert bn_statistics._sum_in_order(in_blocks).tobytes() == np.add.reduce(squares, axis=0).tobytes()

    mean, variance = bn_statistics._moments(bn_statistics._blocks(z, 1024))
    assert mean.tobytes() == (np.add.reduce(whole, axis=0) / len(z)).astype(np.float32).tobytes()
    assert variance.tobytes() == (np.add.reduce(squares, axis=0) / len(z)).astype(np.float32).tobytes()
