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


def test_a_network_without_batch_statistics_has_none_to_recompute(data):
    for settings in ({"batch_norm": False}, {"normalization": "layer"}):
        estimator = fitted(data, bn_statistics="recomputed", **settings)
        assert bn_statistics.both_kinds(estimator, data[0]) == {}
        assert not hasattr(estimator, "moving_statistics_")


def test_an_unknown_kind_of_statistics_is_refused(data):
    with pytest.raises(ValueError, match="bn_statistics"):
        fitted(data, bn_statistics="precise")
